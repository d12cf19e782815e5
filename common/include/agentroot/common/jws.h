// JWS compact serialization (RFC 7515) signing and verification.
//
// Verification is key-driven, never header-driven: the caller supplies the
// trusted keys, each with an explicit allowlist of algorithms. The header's
// "alg" must be in the selected key's allowlist and match its type, so
// "alg":"none", HS256 keyed with a public key, and switching RS256<->ES256
// all fail. Header members that name keys by reference or by value ("jku",
// "x5u", "jwk", "x5c") are never used to find a key. "crit" is rejected
// because agentroot understands no extensions. All parsing is strict: exact
// base64url, JSON without duplicate members, bounded sizes.
//
// Thread safety: pure functions over immutable inputs; VerificationKey is
// immutable and shareable.
#ifndef AGENTROOT_COMMON_JWS_H_
#define AGENTROOT_COMMON_JWS_H_

#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

// A trusted public key and the algorithms it may be used with.
class VerificationKey {
 public:
  // FAILED_PRECONDITION when `allowed` is empty or names an algorithm the key
  // cannot be used with. The kid is the JWK's kid (may be empty).
  static Result<VerificationKey> Create(const Jwk& jwk, std::set<JwsAlgorithm> allowed);

  const Jwk& jwk() const { return jwk_; }
  const std::string& kid() const { return jwk_.kid(); }
  bool Allows(JwsAlgorithm alg) const { return allowed_.count(alg) != 0; }
  const EVP_PKEY* pkey() const { return pkey_.get(); }

 private:
  VerificationKey(Jwk jwk, std::shared_ptr<EVP_PKEY> pkey, std::set<JwsAlgorithm> allowed)
      : jwk_(std::move(jwk)), pkey_(std::move(pkey)), allowed_(std::move(allowed)) {}

  Jwk jwk_;
  std::shared_ptr<EVP_PKEY> pkey_;
  std::set<JwsAlgorithm> allowed_;
};

struct JwsLimits {
  std::size_t max_compact_bytes = 64 * 1024;
  // Of the base64url-encoded header.
  std::size_t max_header_bytes = 8 * 1024;
  // JSON nesting depth of the header and (when parsed) the payload.
  std::size_t max_header_depth = 8;
  std::size_t max_payload_depth = 32;
};

// What the payload of a compact JWS is expected to be.
enum class JwsPayload {
  kBytes,       // opaque bytes: only base64url-decoded
  kJsonObject,  // also parsed (strictly) into UnverifiedJws::payload_json
};

// *** NOTHING IN HERE IS TRUSTED. ***
//
// A compact JWS split and decoded, but NOT VERIFIED: every member is exactly
// what the sender wrote, and anyone can write anything. Use it only to pick
// a verification key (header "kid"), to find the key a DPoP proof carries,
// or to read a value that is re-checked once the signature verifies (the
// DPoP nonce). Never make a decision on it. Hand it to VerifyJwsCompact,
// VerifyJwt or VerifyDpopProof, which verify it and return the verified
// form; it exists so each token is split, decoded and parsed once.
struct UnverifiedJws {
  Json header;        // a JSON object (checked), UNVERIFIED
  Bytes payload;      // decoded payload bytes, UNVERIFIED
  Json payload_json;  // JwsPayload::kJsonObject: the payload, a JSON object,
                      // UNVERIFIED; JwsPayload::kBytes: null
  // "<header>.<payload>" exactly as received: a view into the string given
  // to ParseJwsCompact, which must outlive this object.
  std::string_view signing_input;
  Bytes signature;  // decoded, any length: checked by VerifySignature
};

// Splits, base64url-decodes and JSON-parses a compact JWS WITHOUT VERIFYING
// ANYTHING (see UnverifiedJws). Strict: exactly three parts, a non-empty
// header and signature, canonical unpadded base64url in every part, a header
// that is a JSON object without duplicate members, `compact` at most
// limits.max_compact_bytes and the encoded header at most
// limits.max_header_bytes. With JwsPayload::kJsonObject the payload must be
// a JSON object too. INVALID_ARGUMENT naming the failed check.
Result<UnverifiedJws> ParseJwsCompact(std::string_view compact,
                                      JwsPayload payload = JwsPayload::kBytes,
                                      const JwsLimits& limits = {});

struct VerifiedJws {
  Json header;
  Bytes payload;
  Json payload_json;  // as in UnverifiedJws: null unless parsed
  JwsAlgorithm algorithm;
  std::string kid;  // of the key that verified it
};

// Signs `payload`. `extra_header` (an object, may be empty) is merged into
// the protected header; it must not contain "alg" (set from the signer) and
// may contain "kid"/"typ". When it has no "kid" and the signer's JWK has one,
// that kid is added.
Result<std::string> SignJwsCompact(const Json& extra_header, ByteView payload,
                                   const Signer& signer);

// Verifies a compact JWS against `keys`. Key selection: when the header has a
// "kid", the key with that kid; without one, the only key (an error when
// several are given). Returns UNAUTHENTICATED for a bad signature and
// INVALID_ARGUMENT for malformed input; the message says which check failed.
Result<VerifiedJws> VerifyJwsCompact(std::string_view compact,
                                     std::span<const VerificationKey> keys,
                                     const JwsLimits& limits = {});

// The same for a JWS the caller has already parsed (e.g. to read its kid):
// consumes it, so nothing is decoded or parsed twice. Its signing_input must
// still point into live memory.
Result<VerifiedJws> VerifyJwsCompact(UnverifiedJws jws, std::span<const VerificationKey> keys);

// The single verification primitive, exposed for callers that verify a
// signature over bytes of their own (DPoP with an embedded key, TPM data).
Status VerifySignature(const VerificationKey& key, JwsAlgorithm alg, ByteView signing_input,
                       ByteView signature);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_JWS_H_
