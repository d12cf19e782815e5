// Private to hsm/tpm: the state behind a TpmDevice (see tpm_device.h for the
// contract): the ESYS context, its mutex, the SRK, the LRU of loaded keys and
// the slot accounting, and Run(), which executes one TPM operation under the
// mutex with the reset check and a single retry.
#ifndef AGENTROOT_HSM_TPM_TPM_DEVICE_IMPL_H_
#define AGENTROOT_HSM_TPM_TPM_DEVICE_IMPL_H_

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/tpm/tpm_context.h"
#include "agentroot/hsm/tpm/tpm_device.h"

namespace agentroot::hsm::tpm {

// Frees memory ESAPI allocated for an output parameter.
struct EsysFreeDeleter {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFreeDeleter>;

// A key to load under the SRK: marshalled TPM2B_PUBLIC and TPM2B_PRIVATE.
struct KeyBlob {
  common::Bytes public_area;
  common::Bytes private_area;
  common::Bytes name;  // the object's Name: identifies it in the LRU
};

// A session (or other object) flushed when the guard goes out of scope.
class ScopedSession {
 public:
  ScopedSession(ESYS_CONTEXT* esys, ESYS_TR handle) : esys_(esys), handle_(handle) {}
  ScopedSession(const ScopedSession&) = delete;
  ScopedSession& operator=(const ScopedSession&) = delete;
  ~ScopedSession() {
    if (handle_ != ESYS_TR_NONE) Esys_FlushContext(esys_, handle_);
  }
  ESYS_TR get() const { return handle_; }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_;
};

class TpmDevice::Impl {
 public:
  static constexpr int kSlots = 3;

  class Op;

  // A transient object loaded for the current operation, flushed when the
  // ref is destroyed (keys are context-saved into the LRU first). Must not
  // outlive the Op that produced it.
  class ObjectRef {
   public:
    ObjectRef(ObjectRef&& other) noexcept;
    ObjectRef& operator=(ObjectRef&&) = delete;
    ObjectRef(const ObjectRef&) = delete;
    ~ObjectRef();
    ESYS_TR handle() const { return handle_; }

   private:
    friend class Impl;
    ObjectRef(Impl* impl, ESYS_TR handle, common::Bytes cache_name)
        : impl_(impl), handle_(handle), cache_name_(std::move(cache_name)) {}
    Impl* impl_;
    ESYS_TR handle_;
    common::Bytes cache_name_;  // empty: not saved into the LRU
  };

  // What an operation may do; only valid inside Run().
  class Op {
   public:
    ESYS_CONTEXT* esys() const { return impl_->esys_; }
    // TssError(rc, what), remembering rc for the retry decision.
    common::Status Fail(TSS2_RC rc, std::string_view what);
    // The SRK, loaded for this operation (from its saved context, or
    // created); flushed when the operation ends or a slot is needed.
    common::Result<ESYS_TR> Srk();
    // TPM2_Create of `in_public` under the SRK (empty sensitive data, so the
    // TPM generates every secret): the new object's private and public
    // parts. `what` names it in errors.
    struct Created {
      EsysPtr<TPM2B_PRIVATE> private_part;
      EsysPtr<TPM2B_PUBLIC> public_part;
    };
    common::Result<Created> CreateUnderSrk(const TPM2B_PUBLIC& in_public, std::string_view what);
    // Loads `blob` (from the LRU of saved contexts, or TPM2_Load under the
    // SRK).
    common::Result<ObjectRef> Load(const KeyBlob& blob);
    // Takes ownership of a transient object the operation created (a
    // primary key): flushed when the ref is destroyed. Call MakeRoom(1)
    // before creating it.
    ObjectRef Adopt(ESYS_TR handle);
    // Makes sure `n` more objects fit (flushing the SRK if it is loaded and
    // not needed), also for a persistent object, which occupies a slot while
    // a command uses it.
    common::Status MakeRoom(int n);
    const TpmDeviceOptions& options() const { return impl_->options_; }

   private:
    friend class Impl;
    explicit Op(Impl* impl) : impl_(impl) {}
    Impl* impl_;
  };

  // Adds the time it lives to `*total_ns` (for TpmDeviceStats::busy_ns).
  struct BusyTimer {
    explicit BusyTimer(uint64_t* total_ns) : total_ns_(total_ns), start_(std::chrono::steady_clock::now()) {}
    ~BusyTimer() {
      *total_ns_ += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
    }
    uint64_t* total_ns_;
    std::chrono::steady_clock::time_point start_;
  };

  static common::Result<std::unique_ptr<Impl>> Create(TpmDeviceOptions options);
  ~Impl();

  // Runs `fn` under the mutex; when `retry`, retries once after a TPM
  // restart, a stale handle or a transport error (never for commands that
  // must not run twice, such as PCR_Extend).
  template <typename T>
  common::Result<T> Run(const std::function<common::Result<T>(Op&)>& fn, bool retry = true) {
    std::lock_guard<std::mutex> lock(mu_);
    BusyTimer busy(&stats_.busy_ns);
    common::Result<T> result = common::InternalError("not run");
    for (int attempt = 0; attempt < 2; ++attempt) {
      common::Status pre = BeforeOperation();
      if (!pre.ok()) return pre;
      last_rc_ = TSS2_RC_SUCCESS;
      {
        Op op(this);
        result = fn(op);
      }
      AfterOperation();
      if (result.ok() || !retry || attempt == 1 || !Retryable(last_rc_)) return result;
      ++stats_.retries;
      common::Status recovered = Recover(last_rc_);
      if (!recovered.ok()) return result.status().WithContext(recovered.message());
    }
    return result;
  }
  common::Status RunStatus(const std::function<common::Status(Op&)>& fn, bool retry = true);

  const std::string& tcti() const { return options_.tcti; }
  TpmContext& context() { return *context_; }
  std::mutex& mutex() { return mu_; }
  TpmDeviceStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  // Under the mutex: forgets the saved SRK and key contexts.
  void ForgetContexts();
  // Under the mutex: removes `name` from the LRU.
  void Evict(const common::Bytes& name);

 private:
  struct CacheEntry {
    common::Bytes name;
    TPMS_CONTEXT context{};
    uint64_t last_use = 0;
  };

  Impl(TpmDeviceOptions options, std::unique_ptr<TpmContext> context);

  common::Status Connect();
  common::Status BeforeOperation();
  void AfterOperation();
  static bool Retryable(TSS2_RC rc);
  common::Status Recover(TSS2_RC rc);
  int Loaded() const { return (op_srk_ != ESYS_TR_NONE ? 1 : 0) + in_flight_; }
  void NoteLoaded();
  void Release(ObjectRef& ref);
  void FlushOne(ESYS_TR handle);
  void FlushSrk();
  // ContextSave of `handle` into the LRU under `name`.
  void SaveToCache(const common::Bytes& name, ESYS_TR handle);

  TpmDeviceOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<TpmContext> context_;
  ESYS_CONTEXT* esys_ = nullptr;
  bool have_srk_context_ = false;
  TPMS_CONTEXT srk_context_{};
  ESYS_TR op_srk_ = ESYS_TR_NONE;  // SRK loaded during the current operation
  std::vector<CacheEntry> cache_;
  int in_flight_ = 0;
  uint64_t clock_ = 0;
  TSS2_RC last_rc_ = TSS2_RC_SUCCESS;
  TpmDeviceStats stats_;
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_DEVICE_IMPL_H_
