#include "agentroot/attestation/session_binding.h"

#include <chrono>
#include <set>

#include "agentroot/attestation/dpop.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/jwt.h"

namespace agentroot::attestation {
namespace {

using common::Json;
using common::Result;

constexpr std::size_t kThumbprintLength = 43;  // base64url of SHA-256

bool IsThumbprint(const Json& value) {
  if (!value.is_string()) return false;
  const std::string& s = value.get_ref<const std::string&>();
  if (s.size() != kThumbprintLength) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

common::Status Refused(common::StatusCode code, std::string_view why) {
  return OAuthError(code, oauth_error::kInvalidGrant, "session binding: " + std::string(why));
}

}  // namespace

Result<std::string> CreateSessionBinding(const common::Signer& tpm_key, std::string_view agent_id,
                                         const common::Jwk& session_key, int64_t issued_at, int64_t lifetime) {
  if (lifetime <= 0 || lifetime > kMaxSessionBindingLifetime) {
    return common::InvalidArgumentError("session binding: lifetime must be in (0, 3600] seconds");
  }
  Json claims = {{"iss", agent_id},
                 {"jkt", session_key.Thumbprint()},
                 {"tpm_jkt", tpm_key.public_jwk().Thumbprint()},
                 {"iat", issued_at},
                 {"exp", issued_at + lifetime}};
  return common::SignJwt(claims, tpm_key, kSessionBindingTyp);
}

Result<SessionBinding> VerifySessionBinding(std::string_view binding, const Json& tpm_key_jwk,
                                            std::string_view agent_id, const common::Clock& clock) {
  auto jwk = common::Jwk::FromJson(tpm_key_jwk);
  if (!jwk.ok()) return Refused(common::StatusCode::kFailedPrecondition, "the registered agent key is not a usable JWK");
  // A key registered from its TPM2B_PUBLIC has no kid, while the binding's
  // header names its signer however the signer labels itself. Only this one
  // key is trusted, so it takes the header's label: the signature decides.
  if (auto parsed = common::ParseJwsCompact(binding); parsed.ok()) {
    if (auto kid = parsed->header.find("kid"); kid != parsed->header.end() && kid->is_string()) {
      jwk = jwk->WithKid(kid->get<std::string>());
    }
  }
  std::set<common::JwsAlgorithm> algorithms;
  if (jwk->type() == common::JwkKeyType::kEcP256) {
    algorithms = {common::JwsAlgorithm::kEs256};
  } else {
    algorithms = {common::JwsAlgorithm::kRs256, common::JwsAlgorithm::kPs256};
  }
  auto key = common::VerificationKey::Create(*jwk, algorithms);
  if (!key.ok()) return Refused(common::StatusCode::kFailedPrecondition, "the registered agent key cannot verify");
  common::JwtValidationOptions options;
  options.issuer = std::string(agent_id);
  options.typ = std::string(kSessionBindingTyp);
  options.max_lifetime = std::chrono::seconds(kMaxSessionBindingLifetime);
  options.clock = &clock;
  auto verified = common::VerifyJwt(binding, std::span<const common::VerificationKey>(&*key, 1), options);
  if (!verified.ok()) return Refused(verified.status().code(), verified.status().message());
  const Json& claims = verified->claims;
  if (!claims.contains("iat")) return Refused(common::StatusCode::kInvalidArgument, "iat is required");
  if (!claims.contains("jkt") || !IsThumbprint(claims["jkt"])) {
    return Refused(common::StatusCode::kInvalidArgument, "jkt must be a JWK SHA-256 thumbprint");
  }
  const std::string tpm_jkt = jwk->Thumbprint();
  if (!claims.contains("tpm_jkt") || claims["tpm_jkt"] != tpm_jkt) {
    return Refused(common::StatusCode::kUnauthenticated, "tpm_jkt does not name the key that signed it");
  }
  SessionBinding out;
  out.agent_id = std::string(agent_id);
  out.session_jkt = claims["jkt"].get<std::string>();
  out.tpm_jkt = tpm_jkt;
  out.issued_at = claims["iat"].get<int64_t>();
  out.expires_at = claims["exp"].get<int64_t>();
  return out;
}

}  // namespace agentroot::attestation
