// TPM public areas (TPM2B_PUBLIC) as the verifier sees them.
//
// A TpmPublic is parsed from the TPM-marshalled TPM2B_PUBLIC a host sends
// (base64url on the wire), using tss2-mu. Parsing is strict: the bytes must
// be exactly one canonical TPM2B_PUBLIC with nothing after it, so the TPM
// Name computed here, nameAlg || H_nameAlg(TPMT_PUBLIC), is the Name of
// exactly those bytes. Only RSA and ECC (P-256, P-384) keys with SHA-256/384/512
// name algorithms are accepted; anything else is INVALID_ARGUMENT, and so is
// a key OpenSSL rejects (an ECC point off its curve).
//
// Thread safety: immutable value type; copies share the parsed structure.
#ifndef AGENTROOT_ATTESTATION_TPM_PUBLIC_H_
#define AGENTROOT_ATTESTATION_TPM_PUBLIC_H_

#include <cstdint>
#include <memory>
#include <string>

#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/status.h"

struct TPMT_PUBLIC;  // tss2; kept out of this header

namespace agentroot::attestation {

using common::ByteView;
using common::Bytes;
using common::Result;
using common::Status;

// TPM_ALG_ID values used by the verifier (TPM 2.0 Part 2, Table 9).
namespace tpm_alg {
inline constexpr uint16_t kRsa = 0x0001;
inline constexpr uint16_t kSha1 = 0x0004;
inline constexpr uint16_t kAes = 0x0006;
inline constexpr uint16_t kSha256 = 0x000B;
inline constexpr uint16_t kSha384 = 0x000C;
inline constexpr uint16_t kSha512 = 0x000D;
inline constexpr uint16_t kNull = 0x0010;
inline constexpr uint16_t kRsaSsa = 0x0014;
inline constexpr uint16_t kRsaPss = 0x0016;
inline constexpr uint16_t kEcdsa = 0x0018;
inline constexpr uint16_t kEcc = 0x0023;
inline constexpr uint16_t kCfb = 0x0043;
}  // namespace tpm_alg

// TPMA_OBJECT bits (TPM 2.0 Part 2, §8.3).
namespace tpma_object {
inline constexpr uint32_t kFixedTpm = 0x00000002;
inline constexpr uint32_t kFixedParent = 0x00000010;
inline constexpr uint32_t kSensitiveDataOrigin = 0x00000020;
inline constexpr uint32_t kUserWithAuth = 0x00000040;
inline constexpr uint32_t kAdminWithPolicy = 0x00000080;
inline constexpr uint32_t kRestricted = 0x00010000;
inline constexpr uint32_t kDecrypt = 0x00020000;
inline constexpr uint32_t kSign = 0x00040000;
}  // namespace tpma_object

// TPM_ECC_CURVE values.
inline constexpr uint16_t kTpmEccNistP256 = 0x0003;
inline constexpr uint16_t kTpmEccNistP384 = 0x0004;

// The OpenSSL digest for a TPM hash algorithm; INVALID_ARGUMENT for SHA-1
// (never accepted for attestation) and unknown ids.
Result<const EVP_MD*> DigestForTpmHash(uint16_t hash_alg);

// Digest size of a TPM hash algorithm, 0 if unknown.
std::size_t TpmHashSize(uint16_t hash_alg);

class TpmPublic {
 public:
  // Parses a marshalled TPM2B_PUBLIC (2-byte size, then TPMT_PUBLIC).
  static Result<TpmPublic> Parse(ByteView tpm2b_public);

  uint16_t type() const;       // tpm_alg::kRsa or tpm_alg::kEcc
  uint16_t name_alg() const;
  uint32_t attributes() const;
  bool HasAttributes(uint32_t mask) const { return (attributes() & mask) == mask; }

  // For ECC keys the curve (kTpmEccNistP256/P384); 0 for RSA.
  uint16_t ecc_curve() const;
  // For RSA keys the modulus size in bits; 0 for ECC.
  uint16_t rsa_bits() const;
  // The signing scheme in the parameters (tpm_alg::kNull when unset) and its
  // hash (0 when the scheme is NULL).
  uint16_t scheme() const;
  uint16_t scheme_hash() const;
  // Symmetric definition for restricted decryption keys (EK, SRK):
  // algorithm (tpm_alg::kAes or kNull), key bits and mode.
  uint16_t symmetric_alg() const;
  uint16_t symmetric_bits() const;
  uint16_t symmetric_mode() const;
  // ECC public point coordinates (padded to the field size); empty for RSA.
  Bytes ecc_x() const;
  Bytes ecc_y() const;

  // nameAlg (2 bytes, big-endian) || H_nameAlg(marshalled TPMT_PUBLIC).
  const Bytes& name() const { return name_; }
  // The exact TPM2B_PUBLIC bytes parsed.
  const Bytes& marshalled() const { return marshalled_; }

  // The key as an OpenSSL public key (RSA exponent 0 means 65537): a new
  // reference to the key built and validated once, in Parse.
  Result<common::EvpPkeyPtr> ToOpenSslKey() const;
  // The same key without taking a reference; valid while this TpmPublic (or
  // a copy) lives.
  const EVP_PKEY* openssl_key() const { return pkey_.get(); }

  // True when both have the same Name (same public area).
  bool operator==(const TpmPublic& other) const { return name_ == other.name_; }

 private:
  TpmPublic() = default;

  Result<common::EvpPkeyPtr> BuildOpenSslKey() const;

  std::shared_ptr<const TPMT_PUBLIC> public_;
  std::shared_ptr<EVP_PKEY> pkey_;
  Bytes marshalled_;
  Bytes name_;
};

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_TPM_PUBLIC_H_
