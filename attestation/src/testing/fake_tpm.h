// Test-only: forges TPM structures with OpenSSL keys, so verification logic
// can be unit-tested without a TPM. The real TPM paths are covered by
// tests/interop against swtpm and tpm2-tools.
#ifndef AGENTROOT_ATTESTATION_SRC_TESTING_FAKE_TPM_H_
#define AGENTROOT_ATTESTATION_SRC_TESTING_FAKE_TPM_H_

#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

#include "agentroot/attestation/tpm_evidence.h"
#include "agentroot/common/openssl.h"

namespace agentroot::attestation::testing {

constexpr uint32_t kAkAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                   TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                   TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
constexpr uint32_t kAgentKeyAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                         TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT;
constexpr uint32_t kEkAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                   TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                                   TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

struct FakeKey {
  common::EvpPkeyPtr key;  // private
  Bytes tpm2b_public;      // marshalled
};

// An ECC (P-256/P-384) or RSA 2048 key with the given attributes and scheme
// (TPM2_ALG_NULL for none).
FakeKey MakeEccKey(uint16_t curve, uint32_t attributes, uint16_t scheme = TPM2_ALG_ECDSA,
                   uint16_t scheme_hash = TPM2_ALG_SHA256, uint16_t name_alg = TPM2_ALG_SHA256,
                   uint16_t sym_alg = TPM2_ALG_NULL, uint16_t sym_bits = 0);
FakeKey MakeRsaKey(uint32_t attributes, uint16_t scheme = TPM2_ALG_RSASSA,
                   uint16_t scheme_hash = TPM2_ALG_SHA256, uint16_t sym_alg = TPM2_ALG_NULL,
                   uint16_t sym_bits = 0);

// A TPMS_ATTEST with magic, the given type and extra data.
TPMS_ATTEST BaseAttest(uint16_t type, ByteView extra_data);
Bytes MarshalAttest(const TPMS_ATTEST& attest);

// Signs `data` like TPM2_Sign would and returns a marshalled TPMT_SIGNATURE.
Bytes SignTpm(const FakeKey& key, ByteView data, uint16_t sig_alg, uint16_t hash_alg = TPM2_ALG_SHA256);

// A quote over `selection` (sha256 bank PCRs) with values `values`.
Bytes QuoteAttest(ByteView extra_data, const std::vector<uint32_t>& pcrs,
                  const std::vector<Bytes>& values, uint16_t hash_alg = TPM2_ALG_SHA256);

}  // namespace agentroot::attestation::testing

#endif  // AGENTROOT_ATTESTATION_SRC_TESTING_FAKE_TPM_H_
