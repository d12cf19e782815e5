// TPM-signed evidence: TPMS_ATTEST (quote, certify) and TPMT_SIGNATURE, and
// their verification against an attestation key.
//
// Everything arrives as TPM-marshalled bytes and is parsed with tss2-mu;
// trailing bytes, unknown algorithms and impossible sizes are
// INVALID_ARGUMENT. A signature that does not verify is UNAUTHENTICATED.
//
// Thread safety: pure functions over immutable values.
#ifndef AGENTROOT_ATTESTATION_TPM_EVIDENCE_H_
#define AGENTROOT_ATTESTATION_TPM_EVIDENCE_H_

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

// TPM_ST values of the attestation structures we verify.
inline constexpr uint16_t kTpmStAttestCertify = 0x8017;
inline constexpr uint16_t kTpmStAttestQuote = 0x8018;

struct TpmClockInfo {
  uint64_t clock = 0;          // ms the TPM has been powered since TPM2_Clear
  uint32_t reset_count = 0;    // TPM Resets since TPM2_Clear
  uint32_t restart_count = 0;  // TPM Restarts/Resumes since the last Reset
  bool safe = false;
};

// One bank of a PCR selection: a hash algorithm and ascending PCR indices.
struct PcrBankSelection {
  uint16_t hash_alg = 0;
  std::vector<uint32_t> pcrs;
  bool operator==(const PcrBankSelection&) const = default;
};
using PcrSelection = std::vector<PcrBankSelection>;

// "sha256:0,1,7+sha384:16"-style text for logs and errors.
std::string PcrSelectionToString(const PcrSelection& selection);

// PCR values by (hash algorithm, index).
using PcrValues = std::map<std::pair<uint16_t, uint32_t>, Bytes>;

struct TpmAttest {
  uint16_t type = 0;             // kTpmStAttestQuote, kTpmStAttestCertify, ...
  Bytes qualified_signer;        // TPM2B_NAME of the signing key's qualified name
  Bytes extra_data;              // qualifying data supplied by the caller
  TpmClockInfo clock_info;
  uint64_t firmware_version = 0;
  // TPM_ST_ATTEST_QUOTE
  PcrSelection pcr_selection;
  Bytes pcr_digest;
  // TPM_ST_ATTEST_CERTIFY
  Bytes certified_name;
  Bytes certified_qualified_name;
};

// Parses a marshalled TPMS_ATTEST (the contents of the TPM2B_ATTEST that
// TPM2_Quote/TPM2_Certify return, as `tpm2_quote -m` writes it). Checks the
// magic value TPM_GENERATED_VALUE; other attestation types parse but only
// quote and certify carry their details here.
Result<TpmAttest> ParseTpmsAttest(ByteView tpms_attest);

struct TpmSignature {
  uint16_t sig_alg = 0;   // tpm_alg::kEcdsa, kRsaSsa or kRsaPss
  uint16_t hash_alg = 0;
  Bytes rsa_signature;    // RSASSA / RSAPSS
  Bytes ecdsa_r;          // ECDSA
  Bytes ecdsa_s;
};

// Parses a marshalled TPMT_SIGNATURE (tpm2-tools "tss" format).
Result<TpmSignature> ParseTpmtSignature(ByteView tpmt_signature);

// Verifies `signature` over `signed_data` with `key`: the algorithm must
// fit the key's type (and its scheme, when the key fixes one), the hash must
// be SHA-256/384/512 and the signature valid. RSA-PSS accepts any salt
// length, as TPMs differ in the salt they use.
Status VerifyTpmSignature(const TpmPublic& key, ByteView signed_data, const TpmSignature& signature);

// The key must be a TPM-resident restricted signing key: fixedTPM,
// fixedParent, sensitiveDataOrigin, restricted, sign, not decrypt. This is
// what makes its quotes and certifications mean "this TPM said so".
Status CheckAttestationKey(const TpmPublic& ak);

// Quote verification (TPM2_Quote).
struct VerifiedQuote {
  TpmAttest attest;
  // The selection the quote covers and the PCR values it covered, in order.
  PcrSelection selection;
};

// Verifies that `ak` signed `tpms_attest`, that it is a quote with magic,
// that its extraData equals `expected_qualifying_data` (constant time), and
// that its PCR digest equals H_sig(concatenated values) of `pcr_values` for
// exactly the quoted selection; every selected PCR must be supplied. Returns
// the clock info for the caller's freshness checks (reset and restart
// counters). Does not call CheckAttestationKey: the caller vets the AK at
// enrollment.
Result<VerifiedQuote> VerifyQuote(const TpmPublic& ak, ByteView tpms_attest,
                                  ByteView tpmt_signature, ByteView expected_qualifying_data,
                                  const PcrValues& pcr_values);

// The signature and extraData checks of VerifyQuote without the PCR digest:
// for quotes whose PCR values are not appraised (shadow-agent reports),
// only "this TPM's AK signed this qualifying data".
Result<TpmAttest> VerifyQuoteSignature(const TpmPublic& ak, ByteView tpms_attest, ByteView tpmt_signature,
                                       ByteView expected_qualifying_data);

// True when `selection` includes PCR `pcr` of bank `hash_alg`.
bool SelectionCovers(const PcrSelection& selection, uint16_t hash_alg, uint32_t pcr);

// Certification verification (TPM2_Certify).
struct VerifiedCertification {
  TpmAttest attest;
};

// Verifies that `ak` signed `tpms_attest`, that it is a certification with
// magic and extraData equal to `expected_qualifying_data`, that the
// certified Name equals `certified_key.name()`, and that `certified_key` is
// a TPM-generated, non-duplicable signing key (fixedTPM, fixedParent,
// sensitiveDataOrigin, sign). A key created outside the TPM and imported, or
// one that can be duplicated to another TPM, is rejected (PERMISSION_DENIED).
Result<VerifiedCertification> VerifyCertification(const TpmPublic& ak, ByteView tpms_attest,
                                                  ByteView tpmt_signature,
                                                  ByteView expected_qualifying_data,
                                                  const TpmPublic& certified_key);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_TPM_EVIDENCE_H_
