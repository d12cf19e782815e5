// CK_RV values as Status: the name and hex code are kept in every error.
// Private to hsm/pkcs11 (PKCS#11 headers never reach a public header).
#ifndef AGENTROOT_HSM_PKCS11_PKCS11_ERROR_H_
#define AGENTROOT_HSM_PKCS11_PKCS11_ERROR_H_

#include <p11-kit-1/p11-kit/pkcs11.h>

#include <string>
#include <string_view>

#include "agentroot/common/status.h"

namespace agentroot::hsm::pkcs11 {

// "CKR_PIN_INCORRECT"; "CKR_VENDOR_DEFINED+0x12" or "CKR_UNKNOWN" otherwise.
std::string CkrName(CK_RV rv);

// "<what>: CKR_PIN_INCORRECT (0x000000a0)" with a code chosen by the CK_RV:
// PIN errors -> PERMISSION_DENIED, missing handles -> NOT_FOUND, device and
// session loss -> UNAVAILABLE, mechanism/key-usage refusals ->
// FAILED_PRECONDITION, bad data lengths -> INVALID_ARGUMENT, else INTERNAL.
common::Status CkrError(std::string_view what, CK_RV rv);

// True for CK_RVs after which a session must not be reused.
bool SessionIsBroken(CK_RV rv);

}  // namespace agentroot::hsm::pkcs11

#endif  // AGENTROOT_HSM_PKCS11_PKCS11_ERROR_H_
