#include "agentroot/attestation/access_token.h"

#include <cctype>
#include <set>

#include "agentroot/attestation/token_policy.h"
#include "agentroot/common/jwt.h"

namespace agentroot::attestation {

using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;

namespace {

Status TokenError(std::string_view detail) {
  return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidToken, detail);
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::vector<common::VerificationKey>> ParseJwks(std::string_view text) {
  AR_ASSIGN_OR_RETURN(Json doc, common::ParseJsonStrict(text, common::JsonLimits{256 * 1024, 8}));
  auto keys = doc.find("keys");
  if (!doc.is_object() || keys == doc.end() || !keys->is_array()) {
    return common::InvalidArgumentError("jwks: expected {\"keys\": [...]}");
  }
  std::vector<common::VerificationKey> out;
  std::set<std::string> kids;
  for (const Json& entry : *keys) {
    if (!entry.is_object()) return common::InvalidArgumentError("jwks: key is not an object");
    auto use = entry.find("use");
    if (use != entry.end() && (!use->is_string() || use->get<std::string>() != "sig")) continue;
    AR_ASSIGN_OR_RETURN(common::Jwk jwk, common::Jwk::FromJson(entry));
    if (jwk.kid().empty()) return common::InvalidArgumentError("jwks: a signing key without kid");
    if (!kids.insert(jwk.kid()).second) return common::InvalidArgumentError("jwks: duplicate kid");
    AR_ASSIGN_OR_RETURN(common::JwsAlgorithm alg, common::ParseJwsAlgorithm(jwk.alg()));
    AR_ASSIGN_OR_RETURN(common::VerificationKey key, common::VerificationKey::Create(jwk, {alg}));
    out.push_back(std::move(key));
  }
  if (out.empty()) return common::InvalidArgumentError("jwks: no usable signing key");
  return out;
}

Json JwksDocument(std::span<const common::Jwk> keys) {
  Json list = Json::array();
  for (const common::Jwk& key : keys) {
    Json entry = key.ToJson();
    entry["use"] = "sig";
    list.push_back(std::move(entry));
  }
  return Json{{"keys", std::move(list)}};
}

JwksCache::JwksCache(Fetcher fetcher, const common::Clock& clock, Options options)
    : fetcher_(std::move(fetcher)), clock_(clock), options_(options) {}

Status JwksCache::RefreshLocked(int64_t now) {
  last_attempt_ = now;
  ++fetch_count_;
  auto text = fetcher_();
  if (!text.ok()) return text.status().WithContext("jwks fetch");
  auto keys = ParseJwks(*text);
  if (!keys.ok()) return keys.status().WithContext("jwks fetch");
  keys_ = std::make_shared<const std::vector<common::VerificationKey>>(std::move(keys).value());
  fetched_at_ = now;
  return Status::Ok();
}

Result<std::shared_ptr<const std::vector<common::VerificationKey>>> JwksCache::Keys(std::string_view kid) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.NowUnixSeconds();
  const bool may_refresh = now - last_attempt_ >= options_.min_refresh_interval.count() || !keys_;
  bool want = !keys_ || now - fetched_at_ >= options_.max_age.count();
  if (!want && !kid.empty()) {
    want = std::none_of(keys_->begin(), keys_->end(), [&](const auto& k) { return k.kid() == kid; });
  }
  if (want && may_refresh) {
    Status refreshed = RefreshLocked(now);
    if (!refreshed.ok() && (!keys_ || now - fetched_at_ > options_.max_stale.count())) {
      return common::UnavailableError(refreshed.message());
    }
  }
  if (!keys_) return common::UnavailableError("jwks: no keys fetched yet");
  return keys_;
}

int JwksCache::fetch_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetch_count_;
}

Result<std::unique_ptr<AccessTokenValidator>> AccessTokenValidator::Create(AccessTokenPolicy policy,
                                                                           std::shared_ptr<JwksCache> jwks,
                                                                           std::shared_ptr<ReplayCache> replay,
                                                                           const common::Clock* clock) {
  if (policy.issuer.empty() || policy.audience.empty()) {
    return common::InvalidArgumentError("access token policy needs an issuer and an audience");
  }
  if (!jwks || !replay) return common::InvalidArgumentError("access token validator needs a JWKS and a replay cache");
  const common::Clock& c = clock != nullptr ? *clock : common::Clock::System();
  return std::unique_ptr<AccessTokenValidator>(
      new AccessTokenValidator(std::move(policy), std::move(jwks), std::move(replay), c));
}

Result<AuthorizedRequest> AccessTokenValidator::Validate(std::string_view authorization,
                                                         std::span<const std::string> dpop_headers,
                                                         std::string_view method, std::string_view url,
                                                         std::string_view required_scope) const {
  if (authorization.empty()) return TokenError("no access token");
  if (StartsWithNoCase(authorization, "Bearer ")) {
    return TokenError("agentroot tokens are DPoP-bound; the Bearer scheme is refused");
  }
  if (!StartsWithNoCase(authorization, "DPoP ")) return TokenError("Authorization scheme must be DPoP");
  std::string_view token = authorization.substr(5);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty()) return TokenError("empty access token");

  common::JwtValidationOptions options;
  options.issuer = policy_.issuer;
  options.audience = policy_.audience;
  options.typ = "at+jwt";
  options.leeway = policy_.leeway;
  options.max_lifetime = policy_.max_token_lifetime;
  options.clock = &clock_;
  // The token first, parsed once (unverified): its kid decides which issuer
  // key, which may trigger a rate-limited JWKS refresh on rotation. A token
  // that does not even parse is refused before the JWKS is consulted.
  auto parsed = common::ParseJwsCompact(token, common::JwsPayload::kJsonObject, options.limits);
  if (!parsed.ok()) return TokenError(parsed.status().message());
  std::string_view kid;
  if (auto it = parsed->header.find("kid"); it != parsed->header.end() && it->is_string()) {
    kid = it->get_ref<const std::string&>();
  }
  auto keys = jwks_->Keys(kid);
  if (!keys.ok()) return common::UnavailableError("issuer keys unavailable: " + keys.status().message());
  auto jwt = common::VerifyJwt(std::move(parsed).value(), **keys, options);
  if (!jwt.ok()) return TokenError(jwt.status().message());
  const Json& claims = jwt->claims;
  for (const char* required : {"sub", "client_id", "jti"}) {
    auto it = claims.find(required);
    if (it == claims.end() || !it->is_string() || it->get<std::string>().empty()) {
      return TokenError(std::string("claim \"") + required + "\" missing");
    }
  }
  auto cnf = claims.find("cnf");
  if (cnf == claims.end() || !cnf->is_object() || !cnf->contains("jkt") || !(*cnf)["jkt"].is_string()) {
    return TokenError("token is not DPoP-bound (cnf.jkt missing)");
  }
  const std::string jkt = (*cnf)["jkt"].get<std::string>();
  const std::string jti = claims["jti"].get<std::string>();
  if (policy_.is_revoked && policy_.is_revoked(jti)) return TokenError("token has been revoked");

  if (dpop_headers.empty()) return TokenError("DPoP-bound token presented without a DPoP proof");
  if (dpop_headers.size() != 1) {
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof, "exactly one DPoP header is required");
  }
  DpopRequirements requirements;
  requirements.method = std::string(method);
  requirements.url = std::string(url);
  requirements.access_token = std::string(token);
  requirements.max_age = policy_.proof_max_age;
  requirements.clock = &clock_;
  // Check the binding before recording the jti, so a proof by a foreign key
  // cannot burn identifiers; then verify fully with the replay cache.
  AR_ASSIGN_OR_RETURN(VerifiedDpopProof proof, VerifyDpopProof(dpop_headers.front(), requirements, nullptr));
  if (!common::ConstantTimeEquals(common::AsBytes(proof.jkt), common::AsBytes(jkt))) {
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof,
                      "proof key is not the key the token is bound to (cnf.jkt)");
  }
  Status fresh = replay_->CheckAndRecord(proof.jkt + ":" + proof.jti, proof.iat + policy_.proof_max_age.count() + 1);
  if (fresh.code() == StatusCode::kAlreadyExists) {
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof, "proof replayed (jti already used)");
  }
  if (!fresh.ok()) {
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof, "replay check unavailable");
  }

  std::vector<std::string> scopes;
  if (auto scope = claims.find("scope"); scope != claims.end() && scope->is_string()) {
    scopes = ParseScope(scope->get<std::string>());
  }
  AuthorizedRequest out{claims,          claims["sub"].get<std::string>(), claims["client_id"].get<std::string>(),
                        jti,             jkt,                              std::move(scopes),
                        std::move(proof)};
  if (!required_scope.empty() &&
      std::find(out.scopes.begin(), out.scopes.end(), required_scope) == out.scopes.end()) {
    return OAuthError(StatusCode::kPermissionDenied, oauth_error::kInsufficientScope,
                      "token lacks scope " + std::string(required_scope));
  }
  return out;
}

}  // namespace agentroot::attestation
