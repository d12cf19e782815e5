#include "agentroot/hsm/tpm/ek_profile.h"

#include <string>

namespace agentroot::hsm::tpm {

uint32_t EkCertificateNvIndex(EkKind kind) {
  switch (kind) {
    case EkKind::kRsa2048: return 0x01c00002;
    case EkKind::kEccP256: return 0x01c0000a;
    case EkKind::kEccP384: return 0x01c00016;
  }
  return 0;  // Unreachable for valid enumerators.
}

std::string_view EkKindName(EkKind kind) {
  switch (kind) {
    case EkKind::kRsa2048: return "rsa2048";
    case EkKind::kEccP256: return "p256";
    case EkKind::kEccP384: return "p384";
  }
  return "unknown";
}

common::Result<EkKind> ParseEkKind(std::string_view name) {
  for (EkKind kind : kAllEkKinds) {
    if (EkKindName(kind) == name) return kind;
  }
  return common::InvalidArgumentError("unknown EK kind '" + std::string(name) +
                                      "' (expected rsa2048, p256 or p384)");
}

}  // namespace agentroot::hsm::tpm
