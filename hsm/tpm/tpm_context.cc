#include "agentroot/hsm/tpm/tpm_context.h"

#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "agentroot/common/openssl.h"
#include "tpm_context_access.h"
#include "tss_error.h"

namespace agentroot::hsm::tpm {

namespace {

using common::Result;
using common::Status;

std::string HexHandle(uint32_t handle) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", handle);
  return buf;
}

// Frees memory ESAPI allocated for an output parameter.
template <typename T>
struct EsysFreeDeleter {
  void operator()(T* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFreeDeleter<T>>;

// Closes an ESYS_TR that refers to a TPM entity we must not flush (an NV
// index): Esys_TR_Close releases the ESAPI metadata only.
class ScopedTrClose {
 public:
  ScopedTrClose(ESYS_CONTEXT* ctx, ESYS_TR handle) : ctx_(ctx), handle_(handle) {}
  ScopedTrClose(const ScopedTrClose&) = delete;
  ScopedTrClose& operator=(const ScopedTrClose&) = delete;
  ~ScopedTrClose() {
    if (handle_ != ESYS_TR_NONE) Esys_TR_Close(ctx_, &handle_);
  }

 private:
  ESYS_CONTEXT* ctx_;
  ESYS_TR handle_;
};

// Largest chunk TPM2B_MAX_NV_BUFFER can carry, whatever the TPM reports.
constexpr uint32_t kNvBufferCapacity = TPM2_MAX_NV_BUFFER_SIZE;
// TPM_PT_NV_BUFFER_MAX must be at least this (TPM 2.0 library spec, part 2).
constexpr uint32_t kNvBufferFallback = 512;

}  // namespace

Result<std::unique_ptr<TpmContext>> TpmContext::Create(std::string_view tcti) {
  if (tcti.empty()) return common::InvalidArgumentError("empty TCTI string");
  auto handles = std::make_unique<Handles>();
  std::string tcti_str(tcti);
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_str.c_str(), &handles->tcti);
  if (rc != TSS2_RC_SUCCESS) {
    handles->tcti = nullptr;
    // tctildr reports a refused connection as a generic layer error; the
    // caller asked for a transport, so "unavailable" is the useful code.
    Status status = TssError(rc, "loading TCTI '" + tcti_str + "'");
    return Status(common::StatusCode::kUnavailable, status.message());
  }
  rc = Esys_Initialize(&handles->esys, handles->tcti, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    handles->esys = nullptr;
    return TssError(rc, "Esys_Initialize on '" + tcti_str + "'");
  }
  return std::unique_ptr<TpmContext>(new TpmContext(std::move(handles), std::move(tcti_str)));
}

TpmContext::TpmContext(std::unique_ptr<Handles> handles, std::string tcti)
    : handles_(std::move(handles)), tcti_(std::move(tcti)) {}

TpmContext::TpmContext(TpmContext&& other) noexcept = default;
TpmContext& TpmContext::operator=(TpmContext&& other) noexcept = default;
TpmContext::~TpmContext() = default;

Status TpmContext::CheckUsable() const {
  if (handles_ == nullptr || handles_->esys == nullptr) {
    return common::FailedPreconditionError("TpmContext was moved from");
  }
  return Status::Ok();
}

Status TpmContext::Startup() {
  AR_RETURN_IF_ERROR(CheckUsable());
  TSS2_RC rc = Esys_Startup(handles_->esys, TPM2_SU_CLEAR);
  if (rc == TSS2_RC_SUCCESS || rc == TPM2_RC_INITIALIZE) return Status::Ok();
  return TssError(rc, "TPM2_Startup(CLEAR) on '" + tcti_ + "'");
}

Result<uint32_t> TpmContext::NvBufferMax() {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TSS2_RC rc = Esys_GetCapability(handles_->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more,
                                  &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "GetCapability(TPM_PT_NV_BUFFER_MAX)");
  uint32_t value = kNvBufferFallback;
  const TPML_TAGGED_TPM_PROPERTY& props = data->data.tpmProperties;
  if (data->capability == TPM2_CAP_TPM_PROPERTIES && props.count >= 1 &&
      props.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
      props.tpmProperty[0].value > 0) {
    value = props.tpmProperty[0].value;
  }
  return std::min(value, kNvBufferCapacity);
}

Result<std::vector<uint8_t>> TpmContext::ReadNv(uint32_t nv_index) {
  AR_RETURN_IF_ERROR(CheckUsable());
  ESYS_CONTEXT* esys = handles_->esys;
  const std::string where = "NV index " + HexHandle(nv_index);

  // Esys_TR_FromTPMPublic issues TPM2_NV_ReadPublic and checks the name.
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(esys, nv_index, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "looking up " + where);
  ScopedTrClose close_nv(esys, nv);

  TPM2B_NV_PUBLIC* raw_public = nullptr;
  TPM2B_NAME* raw_name = nullptr;
  rc = Esys_NV_ReadPublic(esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw_public,
                          &raw_name);
  EsysPtr<TPM2B_NV_PUBLIC> nv_public(raw_public);
  EsysPtr<TPM2B_NAME> nv_name(raw_name);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "NV_ReadPublic " + where);

  const TPMA_NV attributes = nv_public->nvPublic.attributes;
  const uint16_t size = nv_public->nvPublic.dataSize;
  ESYS_TR auth = ESYS_TR_NONE;
  if ((attributes & TPMA_NV_AUTHREAD) != 0) {
    auth = nv;  // The index's own authValue; empty for EK certificates.
  } else if ((attributes & TPMA_NV_OWNERREAD) != 0) {
    auth = ESYS_TR_RH_OWNER;
  } else {
    return common::FailedPreconditionError(where +
                                           " is readable neither with its own nor owner auth");
  }
  if ((attributes & TPMA_NV_WRITTEN) == 0) {
    return common::FailedPreconditionError(where + " is defined but was never written");
  }

  AR_ASSIGN_OR_RETURN(const uint32_t chunk_max, NvBufferMax());
  std::vector<uint8_t> out;
  out.reserve(size);
  while (out.size() < size) {
    const auto offset = static_cast<uint16_t>(out.size());
    const auto chunk = static_cast<uint16_t>(std::min<uint32_t>(chunk_max, size - offset));
    TPM2B_MAX_NV_BUFFER* raw_data = nullptr;
    rc = Esys_NV_Read(esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, chunk,
                      offset, &raw_data);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw_data);
    if (rc != TSS2_RC_SUCCESS) {
      return TssError(rc, "NV_Read " + where + " at offset " + std::to_string(offset));
    }
    if (data->size != chunk) {
      return common::DataLossError("NV_Read " + where + " returned " +
                                   std::to_string(data->size) + " bytes, asked for " +
                                   std::to_string(chunk));
    }
    out.insert(out.end(), data->buffer, data->buffer + data->size);
  }
  return out;
}

Result<std::vector<uint8_t>> TpmContext::ReadEkCertificate(EkKind kind) {
  const uint32_t index = EkCertificateNvIndex(kind);
  auto nv = ReadNv(index);
  if (!nv.ok()) {
    return nv.status().WithContext(std::string("reading ") + std::string(EkKindName(kind)) +
                                   " EK certificate");
  }
  // The NV area may be larger than the certificate (some TPMs pad it);
  // d2i_X509 reports how many bytes the DER structure really spans.
  const unsigned char* cursor = nv->data();
  common::ClearOpenSslErrors();
  common::X509Ptr cert(d2i_X509(nullptr, &cursor, static_cast<long>(nv->size())));
  if (cert == nullptr) {
    return common::OpenSslError(common::StatusCode::kDataLoss,
                                "NV index " + HexHandle(index) +
                                    " does not hold a DER X.509 certificate");
  }
  nv->resize(static_cast<size_t>(cursor - nv->data()));
  return std::move(nv).value();
}

}  // namespace agentroot::hsm::tpm
