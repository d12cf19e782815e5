// JSON Web Keys (RFC 7517/7518) for public keys, and RFC 7638 thumbprints.
//
// Only the key types agentroot signs with are accepted: EC P-256 and RSA with
// a modulus of at least 2048 bits. A Jwk is always a *public* key: parsing
// rejects any private member ("d", "p", "q", "dp", "dq", "qi", "oth", "k"),
// so a private key pasted into a JWKS or a DPoP header is an error, not a
// silently-accepted public key. Parsing also checks EC points are on the
// curve and RSA parameters are minimally encoded.
//
// Thread safety: immutable value type.
#ifndef AGENTROOT_COMMON_JWK_H_
#define AGENTROOT_COMMON_JWK_H_

#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

enum class JwkKeyType { kEcP256, kRsa };

// The smallest RSA modulus accepted anywhere (NIST SP 800-131A).
inline constexpr int kMinRsaBits = 2048;

class Jwk {
 public:
  // From a JSON object. Optional members "kid", "alg", "use" are kept as
  // metadata; unknown public members are ignored (RFC 7517 §4).
  static Result<Jwk> FromJson(const Json& json);
  static Result<Jwk> Parse(std::string_view text);

  // From an OpenSSL public (or private: only the public half is read) key.
  static Result<Jwk> FromPublicKey(const EVP_PKEY* key);

  // An OpenSSL public key for this JWK (a new reference to the key built and
  // validated when the Jwk was made; copies of a Jwk share it).
  Result<EvpPkeyPtr> ToPublicKey() const;

  // The public members, plus kid/alg/use when set.
  Json ToJson() const;

  // RFC 7638 SHA-256 thumbprint, base64url: the stable identity of the key
  // (used as `cnf.jkt`).
  // Computed once per key material (cached with the built key).
  std::string Thumbprint() const { return thumbprint_; }

  JwkKeyType type() const { return type_; }
  // EC: x and y (32 bytes each); RSA: n and e, minimal big-endian.
  const Bytes& x() const { return a_; }
  const Bytes& y() const { return b_; }
  const Bytes& n() const { return a_; }
  const Bytes& e() const { return b_; }
  // RSA modulus size in bits; 256 for EC.
  int bits() const;

  const std::string& kid() const { return kid_; }
  const std::string& alg() const { return alg_; }
  Jwk WithKid(std::string kid) const;

  // Equal public key material (metadata ignored).
  bool SameKey(const Jwk& other) const {
    return type_ == other.type_ && a_ == other.a_ && b_ == other.b_;
  }

 private:
  Jwk(JwkKeyType type, Bytes a, Bytes b) : type_(type), a_(std::move(a)), b_(std::move(b)) {}
  // Builds and validates the OpenSSL key; called once by every factory.
  Status BuildKey();
  std::string ComputeThumbprint() const;

  JwkKeyType type_;
  Bytes a_;  // EC x | RSA n
  Bytes b_;  // EC y | RSA e
  std::string kid_;
  std::string alg_;
  std::string use_;
  std::shared_ptr<EVP_PKEY> pkey_;  // immutable once built
  std::string thumbprint_;          // RFC 7638, set with pkey_
};

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_JWK_H_
