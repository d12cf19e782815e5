#include "agentroot/common/jwt.h"

#include <cctype>
#include <cmath>
#include <limits>

namespace agentroot::common {
namespace {

constexpr std::chrono::seconds kMaxLeeway{300};
// Year 9999: anything larger is not a plausible NumericDate.
constexpr double kMaxNumericDate = 253402300799.0;

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// RFC 7515 §4.1.9: "typ" is a media type; "application/" may be omitted and
// comparison is case-insensitive.
std::string NormalizeTyp(std::string_view typ) {
  std::string lower = Lower(typ);
  constexpr std::string_view kPrefix = "application/";
  if (lower.rfind(kPrefix, 0) == 0) lower.erase(0, kPrefix.size());
  return lower;
}

// Reads an optional NumericDate claim. nullopt when absent.
Result<std::optional<int64_t>> NumericDate(const Json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::optional<int64_t>();
  if (!it->is_number()) {
    return InvalidArgumentError(std::string("jwt: \"") + name + "\" is not a number");
  }
  double value = it->get<double>();
  if (!std::isfinite(value) || value < 0 || value > kMaxNumericDate) {
    return InvalidArgumentError(std::string("jwt: \"") + name + "\" is out of range");
  }
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  return std::optional<int64_t>(static_cast<int64_t>(std::floor(value)));
}

Status CheckAudience(const Json& claims, const std::string& audience) {
  auto it = claims.find("aud");
  if (it == claims.end()) return UnauthenticatedError("jwt: \"aud\" is missing");
  if (it->is_string()) {
    if (it->get<std::string>() == audience) return Status::Ok();
  } else if (it->is_array()) {
    for (const Json& entry : *it) {
      if (!entry.is_string()) return InvalidArgumentError("jwt: \"aud\" has a non-string entry");
      if (entry.get<std::string>() == audience) return Status::Ok();
    }
  } else {
    return InvalidArgumentError("jwt: \"aud\" is neither a string nor an array");
  }
  return UnauthenticatedError("jwt: audience does not include the expected value");
}

}  // namespace

Result<std::string> SignJwt(const Json& claims, const Signer& signer, std::string_view typ) {
  if (!claims.is_object()) return InvalidArgumentError("jwt: claims must be a JSON object");
  Json header = Json::object();
  if (!typ.empty()) header["typ"] = std::string(typ);
  return SignJwsCompact(header, AsBytes(claims.dump()), signer);
}

Result<VerifiedJwt> VerifyJwt(std::string_view token, std::span<const VerificationKey> keys,
                              const JwtValidationOptions& options) {
  AR_ASSIGN_OR_RETURN(UnverifiedJws parsed,
                      ParseJwsCompact(token, JwsPayload::kJsonObject, options.limits));
  return VerifyJwt(std::move(parsed), keys, options);
}

Result<VerifiedJwt> VerifyJwt(UnverifiedJws token, std::span<const VerificationKey> keys,
                              const JwtValidationOptions& options) {
  if (options.issuer.empty()) return FailedPreconditionError("jwt: no expected issuer configured");
  if (options.leeway < std::chrono::seconds(0) || options.leeway > kMaxLeeway) {
    return FailedPreconditionError("jwt: leeway must be between 0 and 300 seconds");
  }
  AR_ASSIGN_OR_RETURN(VerifiedJws jws, VerifyJwsCompact(std::move(token), keys));

  if (!options.typ.empty()) {
    auto typ = jws.header.find("typ");
    if (typ == jws.header.end() || !typ->is_string()) {
      return UnauthenticatedError("jwt: header \"typ\" is missing; expected " + options.typ);
    }
    if (NormalizeTyp(typ->get<std::string>()) != NormalizeTyp(options.typ)) {
      return UnauthenticatedError("jwt: header \"typ\" is not " + options.typ);
    }
  }

  // Parsed with the token unless the caller parsed it as bytes.
  Json claims = std::move(jws.payload_json);
  if (claims.is_null()) {
    AR_ASSIGN_OR_RETURN(claims, ParseJsonStrict(ToString(jws.payload),
                                                JsonLimits{options.limits.max_compact_bytes,
                                                           options.limits.max_payload_depth}));
  }
  if (!claims.is_object()) return InvalidArgumentError("jwt: claims are not a JSON object");

  auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string() || iss->get<std::string>() != options.issuer) {
    return UnauthenticatedError("jwt: issuer is missing or not the expected one");
  }
  if (options.audience) AR_RETURN_IF_ERROR(CheckAudience(claims, *options.audience));

  const Clock& clock = options.clock != nullptr ? *options.clock : Clock::System();
  const int64_t now = clock.NowUnixSeconds();
  const int64_t leeway = options.leeway.count();

  AR_ASSIGN_OR_RETURN(std::optional<int64_t> exp, NumericDate(claims, "exp"));
  AR_ASSIGN_OR_RETURN(std::optional<int64_t> nbf, NumericDate(claims, "nbf"));
  AR_ASSIGN_OR_RETURN(std::optional<int64_t> iat, NumericDate(claims, "iat"));
  if (!exp) return UnauthenticatedError("jwt: \"exp\" is missing");
  // RFC 7519 §4.1.4: the token must not be accepted on or after exp.
  if (now >= *exp + leeway) return UnauthenticatedError("jwt: token has expired");
  if (nbf && now + leeway < *nbf) return UnauthenticatedError("jwt: token is not yet valid");
  if (iat && *iat > now + leeway) return UnauthenticatedError("jwt: token was issued in the future");
  if (options.max_lifetime) {
    if (!iat) return UnauthenticatedError("jwt: \"iat\" is required");
    if (*exp - *iat > options.max_lifetime->count()) {
      return UnauthenticatedError("jwt: lifetime exceeds the maximum");
    }
  }
  return VerifiedJwt{std::move(jws.header), std::move(claims), jws.algorithm, std::move(jws.kid)};
}

}  // namespace agentroot::common
