// Private to hsm/tpm: the TCTI + ESYS contexts behind a TpmContext, and
// access to them for the other classes of this backend (TpmDevice).
#ifndef AGENTROOT_HSM_TPM_TPM_CONTEXT_ACCESS_H_
#define AGENTROOT_HSM_TPM_TPM_CONTEXT_ACCESS_H_

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "agentroot/hsm/tpm/tpm_context.h"

namespace agentroot::hsm::tpm {

struct TpmContext::Handles {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* esys = nullptr;

  Handles() = default;
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;
  ~Handles() {
    if (esys != nullptr) Esys_Finalize(&esys);
    if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
  }
};

struct TpmContextAccess {
  // nullptr for a moved-from context.
  static ESYS_CONTEXT* Esys(TpmContext& context) {
    return context.handles_ == nullptr ? nullptr : context.handles_->esys;
  }
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_CONTEXT_ACCESS_H_
