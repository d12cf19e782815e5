// DPoP proofs (RFC 9449): the check that makes a stolen token useless.
//
// A DPoP proof is a JWT signed by the client's private key, carried in the
// `DPoP` header, that names the HTTP method and URL of the request it
// accompanies, a fresh `jti`, an `iat`, and (with an access token) `ath`, the
// SHA-256 of that token. The key is in the proof's own header (`jwk`); the
// token's `cnf.jkt` binds the token to that key's RFC 7638 thumbprint. An
// attacker holding a copied token but not the TPM-held key cannot make a
// proof that matches `cnf.jkt`.
//
// VerifyDpopProof performs RFC 9449 §4.3's checks: one well-formed JWS;
// `typ` = `dpop+jwt`; an asymmetric `alg` from the allowlist (never `none`,
// never HMAC); a public `jwk` (private members refused) that verifies the
// signature; `htm` equal to the method; `htu` equal to the request URL after
// RFC 3986 syntax- and scheme-based normalization, without query and
// fragment; `iat` inside the acceptance window; `ath` when a token is
// presented; the server nonce when one is required; `jti` never seen before
// (through a ReplayCache).
//
// Errors carry an OAuth error code as the first word of the Status message
// ("invalid_dpop_proof: htm does not match"); OAuthErrorOf extracts it.
//
// Thread safety: the functions are pure; InMemoryReplayCache is thread-safe.
#ifndef AGENTROOT_ATTESTATION_DPOP_H_
#define AGENTROOT_ATTESTATION_DPOP_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "agentroot/common/clock.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

// OAuth error codes used by the token endpoint and resource servers.
namespace oauth_error {
inline constexpr std::string_view kInvalidRequest = "invalid_request";
inline constexpr std::string_view kInvalidToken = "invalid_token";
inline constexpr std::string_view kInvalidDpopProof = "invalid_dpop_proof";
inline constexpr std::string_view kUseDpopNonce = "use_dpop_nonce";
inline constexpr std::string_view kInsufficientScope = "insufficient_scope";
inline constexpr std::string_view kInvalidGrant = "invalid_grant";
inline constexpr std::string_view kInvalidScope = "invalid_scope";
inline constexpr std::string_view kInvalidTarget = "invalid_target";
inline constexpr std::string_view kUnauthorizedClient = "unauthorized_client";
inline constexpr std::string_view kAccessDenied = "access_denied";
inline constexpr std::string_view kUnsupportedGrantType = "unsupported_grant_type";
}  // namespace oauth_error

// A Status with code `code` whose message is "<oauth_error>: <detail>".
common::Status OAuthError(common::StatusCode code, std::string_view error, std::string_view detail);
// The OAuth error code at the start of `status`'s message, or
// "invalid_request" when there is none.
std::string_view OAuthErrorOf(const common::Status& status);

// `url` with scheme and host lower-cased, the default port removed, an empty
// path made "/", percent-encodings upper-cased and unreserved ones decoded,
// dot segments removed, and query and fragment dropped. INVALID_ARGUMENT for
// anything that is not an absolute http(s) URL, or that has userinfo.
common::Result<std::string> NormalizeHtu(std::string_view url);

// Remembers proof identifiers until they expire so a proof is accepted once.
class ReplayCache {
 public:
  virtual ~ReplayCache() = default;
  // OK the first time `id` is seen; ALREADY_EXISTS after. `expires_at` (Unix
  // seconds) is when the entry may be forgotten. RESOURCE_EXHAUSTED when the
  // cache cannot remember another entry: the caller must refuse the proof
  // (fail closed), not skip the check.
  virtual common::Status CheckAndRecord(std::string_view id, int64_t expires_at) = 0;
};

// A bounded in-process ReplayCache. Entries past their expiry (by `clock`)
// are dropped on demand; when `capacity` live entries exist, new ones are
// refused. For a single process; replicas share the SQL store's cache.
class InMemoryReplayCache final : public ReplayCache {
 public:
  InMemoryReplayCache(std::size_t capacity, const common::Clock& clock)
      : capacity_(capacity), clock_(clock) {}
  common::Status CheckAndRecord(std::string_view id, int64_t expires_at) override;
  std::size_t size() const;

 private:
  void PurgeExpiredLocked(int64_t now);

  const std::size_t capacity_;
  const common::Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, int64_t, std::less<>> entries_;  // id -> expires_at
  std::multimap<int64_t, std::string> by_expiry_;
};

struct DpopRequirements {
  std::string method;  // the request's HTTP method, e.g. "POST"
  std::string url;     // the request's absolute URL
  // The access token presented with the proof (Authorization: DPoP <token>);
  // when set, the proof must carry a matching `ath`.
  std::optional<std::string> access_token;
  // When the server requires nonces: the one it issued. A proof without it,
  // or with another, fails with use_dpop_nonce.
  std::optional<std::string> nonce;
  // Accepted `iat`: from now - max_age to now + max_future.
  std::chrono::seconds max_age{60};
  std::chrono::seconds max_future{5};
  std::set<common::JwsAlgorithm> allowed_algorithms = {common::JwsAlgorithm::kEs256,
                                                       common::JwsAlgorithm::kPs256,
                                                       common::JwsAlgorithm::kRs256};
  std::size_t max_proof_bytes = 8 * 1024;
  const common::Clock* clock = nullptr;  // defaults to the system clock
};

struct VerifiedDpopProof {
  common::Jwk key;
  std::string jkt;  // RFC 7638 thumbprint of `key`
  std::string jti;
  int64_t iat = 0;
  common::JwsAlgorithm algorithm = common::JwsAlgorithm::kEs256;
};

// Verifies `proof` (the DPoP header value) against `requirements`; when
// `replay` is non-null, records `jkt:jti` and refuses a proof seen before.
common::Result<VerifiedDpopProof> VerifyDpopProof(std::string_view proof,
                                                  const DpopRequirements& requirements,
                                                  ReplayCache* replay);

// Splits and decodes `proof` WITHOUT VERIFYING IT (common::ParseJwsCompact
// with the proof's limits: requirements.max_proof_bytes, a JSON-object
// payload). For a caller that must read a claim before verification (the
// token endpoint's nonce, re-checked by VerifyDpopProof) and then verify the
// same parse. Errors are invalid_dpop_proof. The result points into `proof`.
common::Result<common::UnverifiedJws> ParseDpopProof(std::string_view proof,
                                                     const DpopRequirements& requirements);

// VerifyDpopProof for a proof from ParseDpopProof; consumes it.
common::Result<VerifiedDpopProof> VerifyDpopProof(common::UnverifiedJws proof,
                                                  const DpopRequirements& requirements,
                                                  ReplayCache* replay);

// Builds and signs a proof (the client side: hostd signs for its agents).
// `access_token` adds `ath`; `nonce` adds the server nonce.
common::Result<std::string> CreateDpopProof(const common::Signer& signer, std::string_view method,
                                            std::string_view url, int64_t iat,
                                            std::optional<std::string_view> access_token = {},
                                            std::optional<std::string_view> nonce = {});

// base64url(SHA-256(access_token)), the `ath` value.
std::string AccessTokenHash(std::string_view access_token);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_DPOP_H_
