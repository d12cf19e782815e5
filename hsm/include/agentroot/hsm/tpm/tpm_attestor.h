// TpmAttestor: the TPM side of attestation — EK public areas, attestation
// keys, credential activation, certification of agent keys, quotes and PCRs.
//
// Every TPM structure goes out as its TPM-marshalled bytes (Tss2_MU): what
// agentroot::attestation parses (TpmPublic::Parse, ParseTpmsAttest,
// ParseTpmtSignature) and what tpm2-tools writes with `-f tss` / `-m` / `-s`.
//
// Attestation keys (AKs) are created under the device's SRK (see
// tpm_device.h) with fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|
// restricted|sign: ECC P-256 + ECDSA-SHA256 by default, RSA 2048 +
// RSASSA-SHA256 on request. Their blobs live in <state_dir>/aks/<id>.tpmkey
// (same format and atomic write as agent keys), so they reload after a
// daemon or TPM restart.
//
// EKs: ReadEkPublic reads the persistent EK (0x81010001 RSA 2048, 0x81010002
// ECC P-256, 0x81010016 ECC P-384, where swtpm puts it) and, when none is
// persisted there, recreates it with TPM2_CreatePrimary from the TCG EK
// Credential Profile template (L-1, L-2, or the high-range P-384 template).
// ActivateCredential authorizes the EK with a policy session running
// PolicySecret(TPM_RH_ENDORSEMENT) when the EK has no userWithAuth (L-1,
// L-2), else with its (empty) auth value (high-range templates).
//
// Thread safety: all methods may be called from several threads (TPM
// commands serialize on the device mutex). Errors keep the TSS2_RC and its
// decoded text; INVALID_ARGUMENT for malformed input structures, NOT_FOUND
// for an unknown AK id or EK, PERMISSION_DENIED when the TPM refuses the
// credential (wrong EK, wrong AK name, tampered blob: TPM2_RC_INTEGRITY etc.
// are reported with their code).
#ifndef AGENTROOT_HSM_TPM_TPM_ATTESTOR_H_
#define AGENTROOT_HSM_TPM_TPM_ATTESTOR_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/key_manager.h"
#include "agentroot/hsm/tpm/ek_profile.h"
#include "agentroot/hsm/tpm/tpm_device.h"

namespace agentroot::hsm::tpm {

enum class AkAlgorithm { kEccP256, kRsa2048 };

struct AttestationKeyInfo {
  std::string id;
  AkAlgorithm algorithm = AkAlgorithm::kEccP256;
  Bytes tpm2b_public;  // marshalled TPM2B_PUBLIC
  Bytes name;          // nameAlg || H(TPMT_PUBLIC)
};

// TPM_ALG_ID of SHA-256, the bank agentroot quotes by default.
inline constexpr uint16_t kTpmAlgSha256 = 0x000B;

// One PCR bank of a selection (same shape as attestation::PcrBankSelection).
struct PcrBank {
  uint16_t hash_alg = kTpmAlgSha256;
  std::vector<uint32_t> pcrs;  // 0-23
};

// PCR values by (hash algorithm, index) (same type as attestation::PcrValues).
using PcrValues = std::map<std::pair<uint16_t, uint32_t>, Bytes>;

// A TPM-signed statement: marshalled TPMS_ATTEST and TPMT_SIGNATURE.
struct SignedAttestation {
  Bytes tpms_attest;
  Bytes tpmt_signature;
};

class TpmAttestor {
 public:
  // Creates <state_dir>/aks if needed. INVALID_ARGUMENT for a null device.
  static Result<std::unique_ptr<TpmAttestor>> Create(std::shared_ptr<TpmDevice> device,
                                                     std::filesystem::path state_dir);

  // The EK public area as marshalled TPM2B_PUBLIC.
  Result<Bytes> ReadEkPublic(EkKind kind);
  // The EK certificate (DER) from its NV index.
  Result<Bytes> ReadEkCertificate(EkKind kind);

  // Creates and saves an AK. ALREADY_EXISTS / INVALID_ARGUMENT (id rules of
  // hsm::ValidateKeyId).
  Result<AttestationKeyInfo> CreateAk(std::string_view id,
                                      AkAlgorithm algorithm = AkAlgorithm::kEccP256);
  Result<AttestationKeyInfo> GetAk(std::string_view id);
  Status DeleteAk(std::string_view id);

  // TPM2_ActivateCredential with the AK `ak_id` and the EK of `ek`.
  // `credential_blob` is a marshalled TPM2B_ID_OBJECT, `encrypted_secret` a
  // marshalled TPM2B_ENCRYPTED_SECRET (exactly, nothing after them).
  Result<common::SecretBytes> ActivateCredential(std::string_view ak_id, EkKind ek,
                                                 ByteView credential_blob,
                                                 ByteView encrypted_secret);

  // TPM2_Certify of `key` (a Key of a TpmKeyManager on the same device, else
  // INVALID_ARGUMENT) by the AK. `qualifying_data` at most 64 bytes.
  Result<SignedAttestation> Certify(std::string_view ak_id, const Key& key,
                                    ByteView qualifying_data);

  // TPM2_Quote over `selection` with `qualifying_data` (at most 64 bytes).
  Result<SignedAttestation> Quote(std::string_view ak_id, const std::vector<PcrBank>& selection,
                                  ByteView qualifying_data);

  // Current values of every selected PCR (several TPM2_PCR_Read as needed).
  Result<PcrValues> PcrRead(const std::vector<PcrBank>& selection);

  // TPM2_PCR_Extend of SHA-256 PCR `pcr` (0-23) with a 32-byte digest.
  Status PcrExtend(uint32_t pcr, ByteView sha256_digest);

  const std::shared_ptr<TpmDevice>& device() const { return device_; }

 private:
  TpmAttestor(std::shared_ptr<TpmDevice> device, std::filesystem::path aks_dir)
      : device_(std::move(device)), aks_dir_(std::move(aks_dir)) {}

  std::filesystem::path PathFor(std::string_view id) const;

  std::shared_ptr<TpmDevice> device_;
  std::filesystem::path aks_dir_;
  std::mutex mu_;  // AK files
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_ATTESTOR_H_
