// Turning a TSS2_RC into a Status that keeps the original code.
//
// Private to hsm/tpm: only code that includes tss2 headers produces TSS2_RCs.
// Every message carries the return code in hex and Tss2_RC_Decode's text, e.g.
//   "NV_Read 0x01c00002: TSS2_RC 0x0000018b (tpm:handle(1):the handle is not
//    correct for the use)"
// so the cause survives any number of WithContext() layers.
#ifndef AGENTROOT_HSM_TPM_TSS_ERROR_H_
#define AGENTROOT_HSM_TPM_TSS_ERROR_H_

#include <tss2/tss2_common.h>

#include <string_view>

#include "agentroot/common/status.h"

namespace agentroot::hsm::tpm {

// The StatusCode a TSS2_RC maps to:
//   TCTI layer (transport: connection refused, I/O)   -> UNAVAILABLE
//   TPM "handle/index does not exist" (TPM2_RC_HANDLE) -> NOT_FOUND
//   TPM authorization failures                         -> PERMISSION_DENIED
//   anything else                                      -> INTERNAL
// Precondition: rc != TSS2_RC_SUCCESS.
common::StatusCode TssStatusCode(TSS2_RC rc);

// "TSS2_RC 0x%08x (<Tss2_RC_Decode text>)".
std::string TssRcText(TSS2_RC rc);

// A non-OK Status "<what>: TSS2_RC 0x... (...)" with TssStatusCode(rc).
// Precondition: rc != TSS2_RC_SUCCESS.
common::Status TssError(TSS2_RC rc, std::string_view what);

// True when rc is a TPM-layer format-1 code whose base error is `tpm_rc`
// (ignoring the handle/parameter/session number bits).
bool IsTpmFormat1Error(TSS2_RC rc, TSS2_RC tpm_rc);

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TSS_ERROR_H_
