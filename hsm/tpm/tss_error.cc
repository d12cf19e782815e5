#include "tss_error.h"

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdio>
#include <string>

namespace agentroot::hsm::tpm {

namespace {
constexpr TSS2_RC kLayerMask = 0xFF0000;
// Format-1 codes: bit 7 set, the error number in bits 0-5, the rest says
// which handle/parameter/session it concerns.
constexpr TSS2_RC kFormat1ErrorMask = TPM2_RC_FMT1 | 0x3F;
}  // namespace

bool IsTpmFormat1Error(TSS2_RC rc, TSS2_RC tpm_rc) {
  if ((rc & kLayerMask) != TSS2_TPM_RC_LAYER) return false;
  if ((rc & TPM2_RC_FMT1) == 0) return false;
  return (rc & kFormat1ErrorMask) == tpm_rc;
}

common::StatusCode TssStatusCode(TSS2_RC rc) {
  if ((rc & kLayerMask) == TSS2_TCTI_RC_LAYER) {
    return common::StatusCode::kUnavailable;
  }
  if (IsTpmFormat1Error(rc, TPM2_RC_HANDLE)) return common::StatusCode::kNotFound;
  if (IsTpmFormat1Error(rc, TPM2_RC_AUTH_FAIL) ||
      IsTpmFormat1Error(rc, TPM2_RC_BAD_AUTH) || rc == TPM2_RC_NV_AUTHORIZATION) {
    return common::StatusCode::kPermissionDenied;
  }
  return common::StatusCode::kInternal;
}

std::string TssRcText(TSS2_RC rc) {
  char hex[16];
  std::snprintf(hex, sizeof(hex), "0x%08x", static_cast<unsigned>(rc));
  const char* decoded = Tss2_RC_Decode(rc);
  std::string out = "TSS2_RC ";
  out += hex;
  out += " (";
  out += decoded != nullptr ? decoded : "undecodable";
  out += ")";
  return out;
}

common::Status TssError(TSS2_RC rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += TssRcText(rc);
  return common::Status(TssStatusCode(rc), std::move(message));
}

}  // namespace agentroot::hsm::tpm
