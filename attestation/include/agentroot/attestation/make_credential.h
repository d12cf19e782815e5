// TPM2_MakeCredential done in software, so the verifier can challenge an
// attestation key without a TPM of its own (TPM 2.0 Part 1, §24).
//
// Given the host's EK public area, the AK's Name and a secret, it produces
// the credential blob (TPM2B_ID_OBJECT) and encrypted seed
// (TPM2B_ENCRYPTED_SECRET) that only TPM2_ActivateCredential on the TPM that
// holds that EK, with that AK loaded, can open. The seed is encrypted to an
// RSA EK with OAEP (label "IDENTITY") or, for an ECC EK, derived with
// one-pass ECDH and KDFe. The secret is wrapped with AES-CFB under
// KDFa(seed, "STORAGE", AK name) and protected by an HMAC under
// KDFa(seed, "INTEGRITY").
//
// Thread safety: pure functions.
#ifndef AGENTROOT_ATTESTATION_MAKE_CREDENTIAL_H_
#define AGENTROOT_ATTESTATION_MAKE_CREDENTIAL_H_

#include <cstdint>
#include <string_view>

#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

struct CredentialChallenge {
  Bytes credential_blob;   // marshalled TPM2B_ID_OBJECT
  Bytes encrypted_secret;  // marshalled TPM2B_ENCRYPTED_SECRET
};

// `ek` must be a restricted decryption key with an AES-CFB symmetric
// definition (as every TCG EK template is). `ak_name` is the AK's TPM Name;
// `secret` at most the EK name algorithm's digest size, at least 1 byte.
Result<CredentialChallenge> MakeCredential(const TpmPublic& ek, ByteView ak_name,
                                           const common::SecretBytes& secret);

// The TPM key derivation functions (TPM 2.0 Part 1, §11.4.10), exposed for
// tests. `label` is used with its terminating zero octet appended.
Result<common::SecretBytes> KdfA(uint16_t hash_alg, ByteView key, std::string_view label,
                                 ByteView context_u, ByteView context_v, uint32_t bits);
Result<common::SecretBytes> KdfE(uint16_t hash_alg, ByteView z, std::string_view label,
                                 ByteView party_u, ByteView party_v, uint32_t bits);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_MAKE_CREDENTIAL_H_
