// TpmContext: one ESAPI connection to one TPM.
//
// Owns a TCTI context (loaded by name through tss2-tctildr, e.g.
// "swtpm:host=127.0.0.1,port=2321", "device:/dev/tpmrm0") and the ESYS
// context on top of it; the destructor finalizes both, in that order.
// Move-only. No tss2 type appears in this header.
//
// Thread safety: none. An ESYS context must not be used by two threads at
// once; give each thread its own TpmContext or serialize externally.
//
// Errors: every TSS failure becomes a Status whose message keeps the TSS2_RC
// in hex and Tss2_RC_Decode's text. Transport failures are UNAVAILABLE, a
// missing NV index is NOT_FOUND, authorization failures PERMISSION_DENIED.
// Methods on a moved-from TpmContext return FAILED_PRECONDITION.
//
// Resource use: methods flush or close every ESYS resource they create
// before returning, so they are safe on TPMs without a resource manager
// (swtpm has only three transient object slots).
#ifndef AGENTROOT_HSM_TPM_TPM_CONTEXT_H_
#define AGENTROOT_HSM_TPM_TPM_CONTEXT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/status.h"
#include "agentroot/hsm/tpm/ek_profile.h"

namespace agentroot::hsm::tpm {

struct TpmContextAccess;  // hsm/tpm private: reaches the ESYS context.

class TpmContext {
 public:
  // Loads the TCTI named by `tcti` (tctildr syntax "<name>[:<conf>]") and
  // initializes ESAPI on it. Does not send TPM2_Startup. UNAVAILABLE when the
  // TPM cannot be reached; INVALID_ARGUMENT for an empty string.
  static common::Result<std::unique_ptr<TpmContext>> Create(std::string_view tcti);

  TpmContext(TpmContext&& other) noexcept;
  TpmContext& operator=(TpmContext&& other) noexcept;
  TpmContext(const TpmContext&) = delete;
  TpmContext& operator=(const TpmContext&) = delete;
  ~TpmContext();

  // The TCTI string this context was created with.
  const std::string& tcti() const { return tcti_; }

  // TPM2_Startup(TPM2_SU_CLEAR). A TPM that is already started
  // (TPM2_RC_INITIALIZE) counts as success, so this is idempotent.
  common::Status Startup();

  // Reads the whole data area of NV index `nv_index`. The size comes from
  // TPM2_NV_ReadPublic; data is read in chunks no larger than
  // TPM_PT_NV_BUFFER_MAX. Authorization: the index's own (empty) auth value
  // when TPMA_NV_AUTHREAD is set — as the TCG EK credential profile allows for
  // EK certificates — else owner authorization (empty owner auth) when
  // TPMA_NV_OWNERREAD is set, else FAILED_PRECONDITION. NOT_FOUND when the
  // index is not defined.
  common::Result<std::vector<uint8_t>> ReadNv(uint32_t nv_index);

  // The DER-encoded EK certificate of `kind` from its TCG EK credential
  // profile index (see ek_profile.h), trimmed to the certificate's own DER
  // length (NV areas may be padded). NOT_FOUND when the TPM has no such
  // certificate; DATA_LOSS when the index does not hold a DER X.509
  // certificate.
  common::Result<std::vector<uint8_t>> ReadEkCertificate(EkKind kind);

 private:
  friend struct TpmContextAccess;
  struct Handles;  // TCTI + ESYS contexts; defined in tpm_context_access.h.

  TpmContext(std::unique_ptr<Handles> handles, std::string tcti);

  common::Status CheckUsable() const;
  common::Result<uint32_t> NvBufferMax();

  std::unique_ptr<Handles> handles_;
  std::string tcti_;
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_CONTEXT_H_
