// TCG EK Credential Profile: where a TPM keeps its endorsement key
// certificates in NV.
//
// The profile ("TCG EK Credential Profile for TPM Family 2.0", section 2.2.1.5)
// fixes one NV index per EK template. These are the low-range indices that
// real TPMs and swtpm populate at manufacture.
//
// Thread safety: pure functions on values.
#ifndef AGENTROOT_HSM_TPM_EK_PROFILE_H_
#define AGENTROOT_HSM_TPM_EK_PROFILE_H_

#include <array>
#include <cstdint>
#include <string_view>

#include "agentroot/common/status.h"

namespace agentroot::hsm::tpm {

// The EK templates agentroot understands.
enum class EkKind {
  kRsa2048,   // template L-1, certificate at NV 0x01c00002
  kEccP256,   // template L-2, certificate at NV 0x01c0000a
  kEccP384,   // template H-4 (high range), certificate at NV 0x01c00016
};

inline constexpr std::array<EkKind, 3> kAllEkKinds = {
    EkKind::kRsa2048, EkKind::kEccP256, EkKind::kEccP384};

// The NV index that holds the DER certificate of `kind`'s EK.
uint32_t EkCertificateNvIndex(EkKind kind);

// Stable short names used on command lines and in JSON: "rsa2048", "p256",
// "p384".
std::string_view EkKindName(EkKind kind);

// Inverse of EkKindName; INVALID_ARGUMENT for anything else.
common::Result<EkKind> ParseEkKind(std::string_view name);

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_EK_PROFILE_H_
