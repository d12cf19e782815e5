// Private to hsm/tpm: object templates, marshalling, names, public keys and
// the key blob file format shared by TpmKeyManager and TpmAttestor.
#ifndef AGENTROOT_HSM_TPM_TPM_OBJECTS_H_
#define AGENTROOT_HSM_TPM_TPM_OBJECTS_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/tpm/ek_profile.h"

namespace agentroot::hsm::tpm {

using common::ByteView;
using common::Bytes;
using common::Result;
using common::Status;

// TCG Provisioning Guidance ECC P-256 storage root key template.
TPM2B_PUBLIC SrkTemplate();

// Unrestricted signing key for `alg` (ES256: ECC P-256 + ECDSA-SHA256; RS256:
// RSA 2048 + RSASSA-SHA256; PS256: RSA 2048 + RSAPSS-SHA256):
// fixedTPM|fixedParent|sensitiveDataOrigin|sign, plus userWithAuth unless an
// authPolicy is given (a PCR-bound key must only be usable through its
// policy, never with the empty password).
TPM2B_PUBLIC AgentKeyTemplate(common::JwsAlgorithm alg, ByteView auth_policy);

// Restricted signing attestation key: ECC P-256 + ECDSA-SHA256 or RSA 2048 +
// RSASSA-SHA256; fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|
// restricted|sign.
TPM2B_PUBLIC AkTemplate(bool rsa);

// The TCG EK Credential Profile default templates: L-1 (RSA 2048), L-2 (ECC
// P-256) and the high-range ECC P-384 template (SHA-384, AES-256-CFB,
// userWithAuth, PolicyB) that swtpm manufactures.
TPM2B_PUBLIC EkTemplate(EkKind kind);
// The persistent handle where the EK of `kind` lives by convention.
uint32_t EkPersistentHandle(EkKind kind);

// Tss2_MU wrappers; Unmarshal requires the whole input to be consumed.
Result<Bytes> MarshalPublic(const TPM2B_PUBLIC& pub);
Result<TPM2B_PUBLIC> UnmarshalPublic(ByteView bytes);
Result<Bytes> MarshalPrivate(const TPM2B_PRIVATE& priv);
Result<TPM2B_PRIVATE> UnmarshalPrivate(ByteView bytes);
Result<Bytes> MarshalSignature(const TPMT_SIGNATURE& sig);
Result<TPM2B_ID_OBJECT> UnmarshalIdObject(ByteView bytes);
Result<TPM2B_ENCRYPTED_SECRET> UnmarshalEncryptedSecret(ByteView bytes);

// nameAlg || H_nameAlg(marshalled TPMT_PUBLIC) (SHA-256/384/512).
Result<Bytes> ObjectName(const TPMT_PUBLIC& pub);

// The public key of an RSA or ECC (P-256/P-384) public area.
Result<common::EvpPkeyPtr> PublicToEvp(const TPMT_PUBLIC& pub);

// TPML_PCR_SELECTION of SHA-256 PCRs (24 PCRs, 3 select bytes).
// INVALID_ARGUMENT for an index > 23 or a duplicate.
Result<TPML_PCR_SELECTION> Sha256PcrSelection(const std::vector<uint32_t>& pcrs);

// The key blob file: "ARTPMKEY" | version 1 | kind | algorithm | PCR count |
// PCR indices (1 byte each) | TPM2B_PUBLIC | TPM2B_PRIVATE. Exactly that,
// nothing after it.
enum class BlobKind : uint8_t { kAgentKey = 1, kAttestationKey = 2 };

struct KeyFile {
  BlobKind kind = BlobKind::kAgentKey;
  uint8_t algorithm = 0;  // agent keys: JwsAlgorithm + 1; AKs: 1 ECC, 2 RSA
  std::vector<uint32_t> pcrs;
  Bytes public_area;   // marshalled TPM2B_PUBLIC
  Bytes private_area;  // marshalled TPM2B_PRIVATE
};

Result<Bytes> SerializeKeyFile(const KeyFile& file);
// DATA_LOSS for a file that is not exactly one well-formed key blob.
Result<KeyFile> ParseKeyFile(ByteView bytes);

// Writes `data` to `path` atomically: a temporary file in the same directory
// (mode 0600), fsync, rename over `path`, fsync of the directory.
Status WriteFileAtomic(const std::filesystem::path& path, ByteView data);
// NOT_FOUND when absent.
Result<Bytes> ReadWholeFile(const std::filesystem::path& path);
// Creates `dir` (mode 0700) if missing.
Status EnsurePrivateDirectory(const std::filesystem::path& dir);

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_OBJECTS_H_
