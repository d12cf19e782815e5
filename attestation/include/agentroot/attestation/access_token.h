// Access-token validation for resource servers: RFC 9068 JWT access tokens
// bound to a key with DPoP (RFC 9449).
//
// A request is authorized only when all of these hold:
// - `Authorization: DPoP <token>` (the Bearer scheme is refused: every
//   agentroot token is sender-constrained);
// - the token is a JWS by a current issuer key from the JWKS (`kid`
//   selected, per-key alg allowlist), `typ` at+jwt, with the expected `iss`
//   and `aud`, and with `exp`, `iat`, `sub`, `client_id`, `jti` and `cnf.jkt`;
// - exactly one `DPoP` header, whose proof verifies (VerifyDpopProof) for
//   this method and URL, carries `ath` for this token, has a never-seen
//   `jti`, and whose key's thumbprint equals the token's `cnf.jkt`;
// - the token is not revoked (when a revocation check is configured) and
//   carries the required scope.
// A stolen token presented without the TPM-held key fails the last checks:
// no proof → invalid_token, a proof by another key → invalid_dpop_proof.
//
// Thread safety: JwksCache and AccessTokenValidator are thread-safe.
#ifndef AGENTROOT_ATTESTATION_ACCESS_TOKEN_H_
#define AGENTROOT_ATTESTATION_ACCESS_TOKEN_H_

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/dpop.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

// Parses a JWKS document ({"keys": [...]}) into verification keys. Every
// usable key needs a "kid" and an "alg" (ES256, RS256 or PS256), which becomes
// its only allowed algorithm; keys with "use" other than "sig" are skipped.
// INVALID_ARGUMENT for malformed input, duplicate kids, or no usable key.
common::Result<std::vector<common::VerificationKey>> ParseJwks(std::string_view json);

// Serialises public keys as a JWKS document (what the issuer publishes).
common::Json JwksDocument(std::span<const common::Jwk> keys);

// Issuer keys fetched on demand and cached. Keys older than `max_age` are
// refetched; a token naming an unknown kid triggers one refetch, at most
// every `min_refresh_interval` (key rotation without letting a flood of bogus
// kids hammer the issuer). A failed refresh keeps serving the last good keys
// until they are older than `max_stale`.
class JwksCache {
 public:
  using Fetcher = std::function<common::Result<std::string>()>;
  struct Options {
    std::chrono::seconds max_age{300};
    std::chrono::seconds min_refresh_interval{30};
    std::chrono::seconds max_stale{3600};
  };

  JwksCache(Fetcher fetcher, const common::Clock& clock, Options options);

  // The keys, refreshed if needed; `kid` (when non-empty) not among them
  // triggers a rate-limited refresh.
  common::Result<std::shared_ptr<const std::vector<common::VerificationKey>>> Keys(std::string_view kid = {});
  int fetch_count() const;

 private:
  common::Status RefreshLocked(int64_t now);

  Fetcher fetcher_;
  const common::Clock& clock_;
  Options options_;
  mutable std::mutex mu_;
  std::shared_ptr<const std::vector<common::VerificationKey>> keys_;
  int64_t fetched_at_ = 0;
  int64_t last_attempt_ = 0;
  int fetch_count_ = 0;
};

struct AccessTokenPolicy {
  std::string issuer;
  std::string audience;  // this resource server's identifier
  std::chrono::seconds leeway{30};
  std::chrono::seconds max_token_lifetime{3600};
  std::chrono::seconds proof_max_age{60};
  // Optional: return true when the token's jti has been revoked.
  std::function<bool(std::string_view jti)> is_revoked;
};

struct AuthorizedRequest {
  common::Json claims;
  std::string subject;
  std::string client_id;
  std::string jti;
  std::string jkt;
  std::vector<std::string> scopes;
  VerifiedDpopProof proof;
};

class AccessTokenValidator {
 public:
  // `replay` remembers proof jtis (shared with other validators of this
  // resource server so a proof is accepted once across them).
  static common::Result<std::unique_ptr<AccessTokenValidator>> Create(AccessTokenPolicy policy,
                                                                      std::shared_ptr<JwksCache> jwks,
                                                                      std::shared_ptr<ReplayCache> replay,
                                                                      const common::Clock* clock = nullptr);

  // `authorization`: the Authorization header value; `dpop_headers`: every
  // DPoP header value of the request (exactly one is required). Errors carry
  // invalid_token (UNAUTHENTICATED), invalid_dpop_proof (UNAUTHENTICATED) or
  // insufficient_scope (PERMISSION_DENIED); OAuthErrorOf extracts the code.
  common::Result<AuthorizedRequest> Validate(std::string_view authorization,
                                             std::span<const std::string> dpop_headers,
                                             std::string_view method, std::string_view url,
                                             std::string_view required_scope = {}) const;

 private:
  AccessTokenValidator(AccessTokenPolicy policy, std::shared_ptr<JwksCache> jwks,
                       std::shared_ptr<ReplayCache> replay, const common::Clock& clock)
      : policy_(std::move(policy)), jwks_(std::move(jwks)), replay_(std::move(replay)), clock_(clock) {}

  AccessTokenPolicy policy_;
  std::shared_ptr<JwksCache> jwks_;
  std::shared_ptr<ReplayCache> replay_;
  const common::Clock& clock_;
};

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_ACCESS_TOKEN_H_
