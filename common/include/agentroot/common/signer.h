// JWS signature algorithms and the abstract Signer.
//
// A Signer signs the SHA-256 digest of a JWS signing input and returns the
// signature in its JOSE encoding (RFC 7518 §3): raw r||s (64 bytes) for
// ES256, the k-byte RSA signature for RS256/PS256. The JOSE code never sees
// where the key lives: an OpenSSL key in memory (OpenSslSigner, for tests and
// development), a TPM key or a PKCS#11 key (hsm backends) all implement it.
// Backends that produce DER ECDSA signatures convert with EcdsaDerToJose.
//
// Thread safety: implementations must allow concurrent SignDigest calls.
#ifndef AGENTROOT_COMMON_SIGNER_H_
#define AGENTROOT_COMMON_SIGNER_H_

#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

// The algorithms agentroot accepts. There is deliberately no "none" and no
// HMAC algorithm: every token is verified with a public key.
enum class JwsAlgorithm { kEs256, kRs256, kPs256 };

inline constexpr std::size_t kSha256Size = 32;
inline constexpr std::size_t kEs256SignatureSize = 64;

std::string_view JwsAlgorithmName(JwsAlgorithm alg);
// UNIMPLEMENTED for a registered algorithm agentroot does not accept
// ("none", "HS256", "ES384", ...), INVALID_ARGUMENT for anything else.
Result<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name);

// OK when `key` can be used with `alg` (ES256 needs EC P-256, RS256/PS256 an
// RSA key of at least 2048 bits); FAILED_PRECONDITION otherwise.
Status CheckAlgorithmMatchesKey(JwsAlgorithm alg, const Jwk& key);

// ECDSA P-256 signature conversions between DER (X9.62 ECDSA-Sig-Value) and
// the fixed 64-byte JOSE form. Both reject r or s outside [1, n-1].
Result<Bytes> EcdsaDerToJose(ByteView der);
Result<Bytes> EcdsaJoseToDer(ByteView jose);

class Signer {
 public:
  virtual ~Signer() = default;

  virtual JwsAlgorithm algorithm() const = 0;
  // The public key, with its kid set when the signer has one.
  virtual const Jwk& public_jwk() const = 0;
  // `digest` is the 32-byte SHA-256 of the data to sign; returns the JOSE
  // encoded signature.
  virtual Result<Bytes> SignDigest(ByteView digest) const = 0;
};

// A Signer over an OpenSSL private key held in this process's memory. For
// tests, benchmarks and development only: production keys live in an hsm
// backend (TPM, PKCS#11, appliance) that implements Signer itself.
class OpenSslSigner final : public Signer {
 public:
  // Takes ownership of `private_key`; checks it fits `alg`. The JWK's kid is
  // `kid` when non-empty, otherwise the key's RFC 7638 thumbprint.
  static Result<std::unique_ptr<OpenSslSigner>> Create(EvpPkeyPtr private_key, JwsAlgorithm alg,
                                                       std::string kid = "");
  // Generates a fresh key for `alg` (P-256, or RSA 2048 for RS256/PS256).
  static Result<std::unique_ptr<OpenSslSigner>> Generate(JwsAlgorithm alg, std::string kid = "");

  JwsAlgorithm algorithm() const override { return alg_; }
  const Jwk& public_jwk() const override { return jwk_; }
  Result<Bytes> SignDigest(ByteView digest) const override;

 private:
  OpenSslSigner(EvpPkeyPtr key, JwsAlgorithm alg, Jwk jwk)
      : key_(std::move(key)), alg_(alg), jwk_(std::move(jwk)) {}

  EvpPkeyPtr key_;
  JwsAlgorithm alg_;
  Jwk jwk_;
};

// SHA-256 of `data`.
Bytes Sha256(ByteView data);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_SIGNER_H_
