// JSON Web Tokens (RFC 7519) on top of JWS, with the claim checks of RFC 8725
// (JWT BCP): issuer, audience, explicit typ, exp/nbf/iat against a Clock with
// a bounded leeway, and an optional maximum lifetime.
//
// Thread safety: pure functions.
#ifndef AGENTROOT_COMMON_JWT_H_
#define AGENTROOT_COMMON_JWT_H_

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

struct JwtValidationOptions {
  // Required: the exact "iss" value.
  std::string issuer;
  // When set, "aud" (a string or an array of strings) must contain it.
  std::optional<std::string> audience;
  // When non-empty, the header "typ" must equal it, compared
  // case-insensitively with an optional "application/" prefix (RFC 7515
  // §4.1.9). E.g. "at+jwt" (RFC 9068), "dpop+jwt" (RFC 9449).
  std::string typ;
  // Allowed clock skew for exp, nbf and iat. Must be in [0, 5 min].
  std::chrono::seconds leeway{30};
  // "exp" is always required. When set, "iat" is required too and
  // exp - iat may not exceed this.
  std::optional<std::chrono::seconds> max_lifetime;
  // Defaults to Clock::System().
  const Clock* clock = nullptr;
  JwsLimits limits;
};

struct VerifiedJwt {
  Json header;
  Json claims;  // a JSON object
  JwsAlgorithm algorithm;
  std::string kid;
};

// Serialises `claims` (must be an object) and signs it; the header carries
// "typ" when non-empty.
Result<std::string> SignJwt(const Json& claims, const Signer& signer, std::string_view typ);

// Verifies signature (see VerifyJwsCompact) then claims. Expired, not yet
// valid, issued in the future: UNAUTHENTICATED, with the reason in the
// message. Wrong issuer, audience or typ: UNAUTHENTICATED. Malformed claims:
// INVALID_ARGUMENT.
Result<VerifiedJwt> VerifyJwt(std::string_view token, std::span<const VerificationKey> keys,
                              const JwtValidationOptions& options);

// The same for a token the caller has already parsed (ParseJwsCompact with
// JwsPayload::kJsonObject and options.limits, e.g. to read its kid first);
// consumes it so the token is decoded and parsed once.
Result<VerifiedJwt> VerifyJwt(UnverifiedJws token, std::span<const VerificationKey> keys,
                              const JwtValidationOptions& options);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_JWT_H_
