#include "agentroot/attestation/ear.h"

#include "agentroot/common/jwt.h"

namespace agentroot::attestation {

using common::Json;
using common::Result;

namespace {

constexpr char kTyp[] = "ear+jwt";

Json VectorToJson(const TrustVector& v) {
  Json out = Json::object();
  auto put = [&](const char* name, int value) {
    if (value != 0) out[name] = value;
  };
  put("instance-identity", v.instance_identity);
  put("configuration", v.configuration);
  put("executables", v.executables);
  put("file-system", v.file_system);
  put("hardware", v.hardware);
  put("runtime-opaque", v.runtime_opaque);
  put("storage-opaque", v.storage_opaque);
  put("sourced-data", v.sourced_data);
  return out;
}

Result<TrustVector> VectorFromJson(const Json& j) {
  if (!j.is_object()) return common::InvalidArgumentError("ear: trustworthiness vector is not an object");
  TrustVector v;
  auto get = [&](const char* name, int& field) -> common::Status {
    auto it = j.find(name);
    if (it == j.end()) return common::Status::Ok();
    if (!it->is_number_integer() || it->get<int64_t>() < -128 || it->get<int64_t>() > 127) {
      return common::InvalidArgumentError(std::string("ear: bad trust claim ") + name);
    }
    field = it->get<int>();
    return common::Status::Ok();
  };
  AR_RETURN_IF_ERROR(get("instance-identity", v.instance_identity));
  AR_RETURN_IF_ERROR(get("configuration", v.configuration));
  AR_RETURN_IF_ERROR(get("executables", v.executables));
  AR_RETURN_IF_ERROR(get("file-system", v.file_system));
  AR_RETURN_IF_ERROR(get("hardware", v.hardware));
  AR_RETURN_IF_ERROR(get("runtime-opaque", v.runtime_opaque));
  AR_RETURN_IF_ERROR(get("storage-opaque", v.storage_opaque));
  AR_RETURN_IF_ERROR(get("sourced-data", v.sourced_data));
  return v;
}

Result<EarStatus> ParseStatus(std::string_view name) {
  if (name == "none") return EarStatus::kNone;
  if (name == "affirming") return EarStatus::kAffirming;
  if (name == "warning") return EarStatus::kWarning;
  if (name == "contraindicated") return EarStatus::kContraindicated;
  return common::InvalidArgumentError("ear: unknown ear.status");
}

}  // namespace

std::string_view EarStatusName(EarStatus status) {
  switch (status) {
    case EarStatus::kNone: return "none";
    case EarStatus::kAffirming: return "affirming";
    case EarStatus::kWarning: return "warning";
    case EarStatus::kContraindicated: return "contraindicated";
  }
  return "none";
}

EarStatus DeriveStatus(const TrustVector& v) {
  const int claims[] = {v.instance_identity, v.configuration,  v.executables,    v.file_system,
                        v.hardware,          v.runtime_opaque, v.storage_opaque, v.sourced_data};
  EarStatus status = EarStatus::kNone;
  for (int c : claims) {
    if (c >= 96 || c < 0) return EarStatus::kContraindicated;
    if (c >= 32) {
      status = EarStatus::kWarning;
    } else if (c >= 2 && status == EarStatus::kNone) {
      status = EarStatus::kAffirming;
    }
  }
  return status;
}

Result<std::string> SignEar(const AttestationResult& r, const common::Signer& signer) {
  if (r.nonce.empty() || r.jkt.empty() || r.agent_id.empty() || r.host_id.empty() || r.exp <= r.iat) {
    return common::InvalidArgumentError("ear: nonce, jkt, agent, host and a positive lifetime are required");
  }
  Json submod = {{"ear.status", EarStatusName(DeriveStatus(r.trust))},
                 {"ear.trustworthiness-vector", VectorToJson(r.trust)},
                 {"ear.appraisal-policy-id", r.policy_id}};
  Json claims = {{"eat_profile", kEarProfile},
                 {"iss", r.issuer},
                 {"iat", r.iat},
                 {"exp", r.exp},
                 {"eat_nonce", common::Base64UrlEncode(r.nonce)},
                 {"ear.verifier-id", {{"developer", "agentroot"}, {"build", r.verifier_build}}},
                 {"submods", {{std::string(kEarSubmodule), submod}}},
                 {"cnf", {{"jkt", r.jkt}}},
                 {"agentroot.agent", r.agent_id},
                 {"agentroot.host", r.host_id},
                 {"agentroot.manifest_version", r.manifest_version}};
  return common::SignJwt(claims, signer, kTyp);
}

Result<AttestationResult> VerifyEar(std::string_view jwt, std::span<const common::VerificationKey> keys,
                                    std::string_view issuer, const common::Clock& clock) {
  common::JwtValidationOptions options;
  options.issuer = std::string(issuer);
  options.typ = kTyp;
  options.leeway = std::chrono::seconds(5);
  options.max_lifetime = std::chrono::seconds(600);
  options.clock = &clock;
  AR_ASSIGN_OR_RETURN(common::VerifiedJwt verified, common::VerifyJwt(jwt, keys, options));
  const Json& c = verified.claims;
  AttestationResult r;
  try {
    if (c.at("eat_profile").get<std::string>() != kEarProfile) {
      return common::InvalidArgumentError("ear: unexpected eat_profile");
    }
    r.issuer = c.at("iss").get<std::string>();
    r.iat = c.at("iat").get<int64_t>();
    r.exp = c.at("exp").get<int64_t>();
    AR_ASSIGN_OR_RETURN(r.nonce, common::Base64UrlDecode(c.at("eat_nonce").get<std::string>()));
    r.verifier_build = c.at("ear.verifier-id").at("build").get<std::string>();
    const Json& submods = c.at("submods");
    if (!submods.is_object() || submods.size() != 1) {
      return common::InvalidArgumentError("ear: exactly one submodule expected");
    }
    const Json& submod = submods.at(std::string(kEarSubmodule));
    AR_ASSIGN_OR_RETURN(r.status, ParseStatus(submod.at("ear.status").get<std::string>()));
    AR_ASSIGN_OR_RETURN(r.trust, VectorFromJson(submod.at("ear.trustworthiness-vector")));
    r.policy_id = submod.at("ear.appraisal-policy-id").get<std::string>();
    r.jkt = c.at("cnf").at("jkt").get<std::string>();
    r.agent_id = c.at("agentroot.agent").get<std::string>();
    r.host_id = c.at("agentroot.host").get<std::string>();
    r.manifest_version = c.at("agentroot.manifest_version").get<int>();
  } catch (const Json::exception& ex) {
    return common::InvalidArgumentError(std::string("ear: malformed claims (") + ex.what() + ")");
  }
  if (r.status != DeriveStatus(r.trust)) {
    return common::InvalidArgumentError("ear: ear.status contradicts the trustworthiness vector");
  }
  return r;
}

}  // namespace agentroot::attestation
