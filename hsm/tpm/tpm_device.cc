#include "agentroot/hsm/tpm/tpm_device.h"

#include <tss2/tss2_esys.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "tpm_context_access.h"
#include "tpm_device_impl.h"
#include "tpm_objects.h"
#include "tss_error.h"

namespace agentroot::hsm::tpm {

using common::Result;
using common::Status;

namespace {

constexpr TSS2_RC kLayerMask = 0xFF0000;

Status SetHierarchyAuth(ESYS_CONTEXT* esys, ESYS_TR hierarchy, const common::SecretBytes& auth,
                        std::string_view what) {
  TPM2B_AUTH value{};
  if (auth.size() > sizeof(value.buffer)) {
    return common::InvalidArgumentError(std::string(what) + " authorization too long");
  }
  value.size = static_cast<uint16_t>(auth.size());
  std::memcpy(value.buffer, auth.Reveal().data(), auth.size());
  TSS2_RC rc = Esys_TR_SetAuth(esys, hierarchy, &value);
  common::SecureWipe(value.buffer, sizeof(value.buffer));
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, std::string("setting ") + std::string(what) + " auth");
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------- ObjectRef

TpmDevice::Impl::ObjectRef::ObjectRef(ObjectRef&& other) noexcept
    : impl_(other.impl_), handle_(other.handle_), cache_name_(std::move(other.cache_name_)) {
  other.impl_ = nullptr;
  other.handle_ = ESYS_TR_NONE;
}

TpmDevice::Impl::ObjectRef::~ObjectRef() {
  if (impl_ != nullptr && handle_ != ESYS_TR_NONE) impl_->Release(*this);
}

// ---------------------------------------------------------------- Op

Status TpmDevice::Impl::Op::Fail(TSS2_RC rc, std::string_view what) {
  impl_->last_rc_ = rc;
  return TssError(rc, what);
}

Result<TpmDevice::Impl::Op::Created> TpmDevice::Impl::Op::CreateUnderSrk(const TPM2B_PUBLIC& in_public,
                                                                        std::string_view what) {
  AR_ASSIGN_OR_RETURN(ESYS_TR srk, Srk());
  TPM2B_SENSITIVE_CREATE in_sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  TSS2_RC rc = Esys_Create(esys(), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &in_sensitive, &in_public,
                           &outside, &creation_pcr, &out_private, &out_public, &creation_data, &creation_hash,
                           &ticket);
  Created created{EsysPtr<TPM2B_PRIVATE>(out_private), EsysPtr<TPM2B_PUBLIC>(out_public)};
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) return Fail(rc, "TPM2_Create of " + std::string(what));
  return created;
}

Result<ESYS_TR> TpmDevice::Impl::Op::Srk() {
  if (impl_->op_srk_ != ESYS_TR_NONE) return impl_->op_srk_;
  AR_RETURN_IF_ERROR(MakeRoom(1));
  if (impl_->have_srk_context_) {
    ESYS_TR handle = ESYS_TR_NONE;
    TSS2_RC rc = Esys_ContextLoad(esys(), &impl_->srk_context_, &handle);
    if (rc == TSS2_RC_SUCCESS) {
      impl_->op_srk_ = handle;
      ++impl_->stats_.context_loads;
      impl_->NoteLoaded();
      return handle;
    }
    // Saved contexts do not survive a TPM reset: recreate the SRK.
    ++impl_->stats_.resets_seen;
    impl_->ForgetContexts();
  }
  TPM2B_PUBLIC in_public = SrkTemplate();
  TPM2B_SENSITIVE_CREATE in_sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(esys(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &in_sensitive, &in_public, &outside,
                                  &creation_pcr, &handle, &out_public, &creation_data,
                                  &creation_hash, &ticket);
  Esys_Free(out_public);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) return Fail(rc, "creating the storage root key (CreatePrimary)");
  impl_->op_srk_ = handle;
  ++impl_->stats_.srk_creations;
  impl_->NoteLoaded();
  TPMS_CONTEXT* saved = nullptr;
  if (Esys_ContextSave(esys(), handle, &saved) == TSS2_RC_SUCCESS) {
    impl_->srk_context_ = *saved;
    impl_->have_srk_context_ = true;
  }
  Esys_Free(saved);
  return handle;
}

Status TpmDevice::Impl::Op::MakeRoom(int n) {
  if (impl_->Loaded() + n > kSlots && impl_->op_srk_ != ESYS_TR_NONE) impl_->FlushSrk();
  if (impl_->Loaded() + n > kSlots) {
    return common::ResourceExhaustedError("no free TPM object slot (" +
                                          std::to_string(impl_->Loaded()) + " of " +
                                          std::to_string(kSlots) + " in use)");
  }
  return Status::Ok();
}

Result<TpmDevice::Impl::ObjectRef> TpmDevice::Impl::Op::Load(const KeyBlob& blob) {
  for (auto it = impl_->cache_.begin(); it != impl_->cache_.end(); ++it) {
    if (it->name != blob.name) continue;
    AR_RETURN_IF_ERROR(MakeRoom(1));
    ESYS_TR handle = ESYS_TR_NONE;
    TSS2_RC rc = Esys_ContextLoad(esys(), &it->context, &handle);
    if (rc == TSS2_RC_SUCCESS) {
      it->last_use = ++impl_->clock_;
      ++impl_->stats_.context_loads;
      ++impl_->in_flight_;
      impl_->NoteLoaded();
      return ObjectRef(impl_, handle, common::Bytes());
    }
    // A stale context (TPM reset): forget it and load the blob afresh.
    ++impl_->stats_.resets_seen;
    impl_->ForgetContexts();
    break;
  }
  AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, UnmarshalPublic(blob.public_area));
  AR_ASSIGN_OR_RETURN(TPM2B_PRIVATE priv, UnmarshalPrivate(blob.private_area));
  // Room for the SRK (unless loaded) and the key.
  if (impl_->op_srk_ != ESYS_TR_NONE && impl_->Loaded() + 1 > kSlots) impl_->FlushSrk();
  if (impl_->op_srk_ == ESYS_TR_NONE && impl_->Loaded() + 2 > kSlots) {
    return common::ResourceExhaustedError("no free TPM object slots to load a key");
  }
  AR_ASSIGN_OR_RETURN(ESYS_TR srk, Srk());
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_Load(esys(), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub,
                         &handle);
  if (rc != TSS2_RC_SUCCESS) return Fail(rc, "loading key blob (TPM2_Load)");
  ++impl_->stats_.loads;
  ++impl_->in_flight_;
  impl_->NoteLoaded();
  // The SRK was only needed as the parent: free its slot now.
  impl_->FlushSrk();
  if (impl_->options_.cached_keys > 0) impl_->SaveToCache(blob.name, handle);
  return ObjectRef(impl_, handle, common::Bytes());
}

TpmDevice::Impl::ObjectRef TpmDevice::Impl::Op::Adopt(ESYS_TR handle) {
  ++impl_->in_flight_;
  impl_->NoteLoaded();
  return ObjectRef(impl_, handle, common::Bytes());
}

// ---------------------------------------------------------------- Impl

TpmDevice::Impl::Impl(TpmDeviceOptions options, std::unique_ptr<TpmContext> context)
    : options_(std::move(options)), context_(std::move(context)) {
  esys_ = TpmContextAccess::Esys(*context_);
}

Result<std::unique_ptr<TpmDevice::Impl>> TpmDevice::Impl::Create(TpmDeviceOptions options) {
  if (options.tcti.empty()) return common::InvalidArgumentError("empty TCTI string");
  if (options.cached_keys < 0 || options.cached_keys > kMaxCachedKeys) {
    return common::InvalidArgumentError("cached_keys must be in [0, " +
                                        std::to_string(kMaxCachedKeys) + "]");
  }
  AR_ASSIGN_OR_RETURN(auto context, TpmContext::Create(options.tcti));
  std::unique_ptr<Impl> impl(new Impl(std::move(options), std::move(context)));
  AR_RETURN_IF_ERROR(impl->Connect());
  return impl;
}

Status TpmDevice::Impl::Connect() {
  if (context_ == nullptr) {
    AR_ASSIGN_OR_RETURN(context_, TpmContext::Create(options_.tcti));
  }
  esys_ = TpmContextAccess::Esys(*context_);
  AR_RETURN_IF_ERROR(context_->Startup());
  AR_RETURN_IF_ERROR(SetHierarchyAuth(esys_, ESYS_TR_RH_OWNER, options_.owner_auth, "owner"));
  AR_RETURN_IF_ERROR(
      SetHierarchyAuth(esys_, ESYS_TR_RH_ENDORSEMENT, options_.endorsement_auth, "endorsement"));
  return Status::Ok();
}

TpmDevice::Impl::~Impl() {
  std::lock_guard<std::mutex> lock(mu_);
  ForgetContexts();
}

void TpmDevice::Impl::NoteLoaded() { stats_.max_loaded = std::max(stats_.max_loaded, Loaded()); }

void TpmDevice::Impl::FlushOne(ESYS_TR handle) {
  // A failed flush (the TPM already dropped the object) still frees the
  // ESYS metadata; nothing else to do.
  if (Esys_FlushContext(esys_, handle) != TSS2_RC_SUCCESS) Esys_TR_Close(esys_, &handle);
  ++stats_.flushes;
}

void TpmDevice::Impl::FlushSrk() {
  if (op_srk_ == ESYS_TR_NONE) return;
  FlushOne(op_srk_);
  op_srk_ = ESYS_TR_NONE;
}

void TpmDevice::Impl::SaveToCache(const common::Bytes& name, ESYS_TR handle) {
  TPMS_CONTEXT* saved = nullptr;
  if (Esys_ContextSave(esys_, handle, &saved) != TSS2_RC_SUCCESS) {
    Esys_Free(saved);
    return;  // Not cached; the next use loads the blob again.
  }
  cache_.push_back(CacheEntry{name, *saved, ++clock_});
  Esys_Free(saved);
  while (static_cast<int>(cache_.size()) > options_.cached_keys) {
    auto victim = std::min_element(cache_.begin(), cache_.end(),
                                   [](const CacheEntry& a, const CacheEntry& b) {
                                     return a.last_use < b.last_use;
                                   });
    cache_.erase(victim);
  }
}

void TpmDevice::Impl::Release(ObjectRef& ref) {
  --in_flight_;
  FlushOne(ref.handle_);
}

void TpmDevice::Impl::ForgetContexts() {
  have_srk_context_ = false;
  common::SecureWipe(&srk_context_, sizeof(srk_context_));
  for (CacheEntry& entry : cache_) common::SecureWipe(&entry.context, sizeof(entry.context));
  cache_.clear();
}

void TpmDevice::Impl::Evict(const common::Bytes& name) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->name == name) {
      cache_.erase(it);
      return;
    }
  }
}

Status TpmDevice::Impl::BeforeOperation() {
  if (esys_ == nullptr) {
    ++stats_.retries;
    AR_RETURN_IF_ERROR(Recover(TSS2_TCTI_RC_IO_ERROR));
  }
  return Status::Ok();
}

void TpmDevice::Impl::AfterOperation() {
  if (esys_ != nullptr) FlushSrk();
  op_srk_ = ESYS_TR_NONE;
}

bool TpmDevice::Impl::Retryable(TSS2_RC rc) {
  if (rc == TSS2_RC_SUCCESS) return false;
  if ((rc & kLayerMask) == TSS2_TCTI_RC_LAYER) return true;
  // An ESYS context left mid-command by a transport failure refuses every
  // later command with BAD_SEQUENCE: only a new connection clears it.
  if (rc == TSS2_ESYS_RC_BAD_SEQUENCE) return true;
  if ((rc & kLayerMask) != TSS2_TPM_RC_LAYER) return false;
  if (rc == TPM2_RC_INITIALIZE) return true;
  const TSS2_RC warn = rc & ~static_cast<TSS2_RC>(0x7);  // REFERENCE_H0..H6, S0..S6
  if (warn == TPM2_RC_REFERENCE_H0 || warn == TPM2_RC_REFERENCE_S0) return true;
  // A parent that is not what the blob was made under (the saved SRK
  // context went stale in a way ContextLoad did not notice).
  if (IsTpmFormat1Error(rc, TPM2_RC_HANDLE)) return true;
  return false;
}

Status TpmDevice::Impl::Recover(TSS2_RC rc) {
  ForgetContexts();
  if ((rc & kLayerMask) == TSS2_TCTI_RC_LAYER || rc == TSS2_ESYS_RC_BAD_SEQUENCE || esys_ == nullptr) {
    op_srk_ = ESYS_TR_NONE;
    in_flight_ = 0;
    esys_ = nullptr;
    context_.reset();
    Status connected = Connect();
    if (!connected.ok()) {
      context_.reset();
      esys_ = nullptr;
      return connected.WithContext("reconnecting to the TPM");
    }
    ++stats_.resets_seen;
    return Status::Ok();
  }
  if (rc == TPM2_RC_INITIALIZE) {
    AR_RETURN_IF_ERROR(context_->Startup());
    ++stats_.resets_seen;
  }
  return Status::Ok();
}

Status TpmDevice::Impl::RunStatus(const std::function<Status(Op&)>& fn, bool retry) {
  Result<bool> result = Run<bool>(
      [&](Op& op) -> Result<bool> {
        AR_RETURN_IF_ERROR(fn(op));
        return true;
      },
      retry);
  return result.status();
}

// ---------------------------------------------------------------- TpmDevice

TpmDevice::TpmDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TpmDevice::~TpmDevice() = default;

Result<std::shared_ptr<TpmDevice>> TpmDevice::Open(TpmDeviceOptions options) {
  AR_ASSIGN_OR_RETURN(auto impl, Impl::Create(std::move(options)));
  return std::shared_ptr<TpmDevice>(new TpmDevice(std::move(impl)));
}

const std::string& TpmDevice::tcti() const { return impl_->tcti(); }

Result<common::Bytes> TpmDevice::ReadEkCertificate(EkKind kind) {
  return impl_->Run<common::Bytes>([&](Impl::Op&) -> Result<common::Bytes> {
    return impl_->context().ReadEkCertificate(kind);
  });
}

void TpmDevice::ForgetSavedContexts() {
  std::lock_guard<std::mutex> lock(impl_->mutex());
  impl_->ForgetContexts();
}

TpmDeviceStats TpmDevice::stats() const { return impl_->stats(); }

}  // namespace agentroot::hsm::tpm
