// TpmDevice: one TPM, shared by the TPM key manager and the TPM attestor.
//
// Owns the ESAPI connection (a TpmContext over a TCTI string such as
// "swtpm:host=127.0.0.1,port=2321" or "device:/dev/tpmrm0") and a mutex
// around it: every TPM command of TpmKeyManager, its Keys and TpmAttestor
// runs under that mutex, so all of them may be used from several threads.
//
// Storage root key (SRK): the ECC P-256 primary of the owner hierarchy with
// the TCG Provisioning Guidance storage template (restricted|decrypt,
// fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA, AES-128-CFB,
// nameAlg SHA-256, unique = two 32-byte zero coordinates). It is *not*
// persisted: TPM2_CreatePrimary derives the same key from the owner seed
// every time, so blobs created under it reload after a daemon or TPM restart
// without touching NV (and without colliding with an SRK that another stack
// persisted at 0x81000001). The owner and endorsement authorizations are
// empty unless given in the options.
//
// Transient object slots: swtpm (like many TPMs) holds only 3 loaded
// transient objects, and without a resource manager they are shared with
// every other client of the TPM. The device therefore holds *no* object
// between operations: each operation loads what it needs, uses it and flushes
// it before returning, never holding more than 3 at once (TPM2_Certify: AK +
// key; a TPM2_Load: SRK + key, the SRK flushed right after the load). To keep
// this fast it keeps TPM2_ContextSave'd copies of the SRK and of the
// `cached_keys` most recently used keys (an LRU) in memory: TPM2_ContextLoad
// replaces CreatePrimary + Load. Several devices, processes and tools can
// therefore take turns on one swtpm; running TPM commands *concurrently* from
// several processes still needs a resource manager (/dev/tpmrm0,
// tpm2-abrmd), with which the same code runs unchanged.
//
// TPM restarts: saved object contexts do not survive a TPM Reset; a failed
// TPM2_ContextLoad makes the device forget all of them and recreate the SRK
// and reload blobs. A command failing on an uninitialized TPM (then
// TPM2_Startup is sent), a stale handle or the transport (then the TCTI is
// reopened) is retried once, except commands that must not run twice
// (PCR_Extend). So keys keep working across a swtpm restart.
//
// Errors: every TSS failure keeps its TSS2_RC in hex with Tss2_RC_Decode's
// text (see tss_error.h). No tss2 type appears in this header.
#ifndef AGENTROOT_HSM_TPM_TPM_DEVICE_H_
#define AGENTROOT_HSM_TPM_TPM_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/tpm/ek_profile.h"

namespace agentroot::hsm::tpm {

struct TpmDeviceOptions {
  // tctildr syntax "<name>[:<conf>]".
  std::string tcti;
  // Saved key contexts kept in memory (LRU), 0 to kMaxCachedKeys. They take
  // no TPM slot; 0 means every use of a key runs TPM2_Load again.
  int cached_keys = 16;
  // Authorization values of the owner and endorsement hierarchies (empty on
  // swtpm and on most provisioned hosts).
  common::SecretBytes owner_auth;
  common::SecretBytes endorsement_auth;
};

// Counters for tests and benchmarks.
inline constexpr int kMaxCachedKeys = 256;

struct TpmDeviceStats {
  uint64_t loads = 0;           // TPM2_Load of a key blob
  uint64_t context_loads = 0;   // TPM2_ContextLoad of a saved SRK or key
  uint64_t flushes = 0;         // TPM2_FlushContext of a transient object
  uint64_t srk_creations = 0;   // TPM2_CreatePrimary of the SRK
  uint64_t resets_seen = 0;     // TPM resets or reconnects noticed
  uint64_t retries = 0;         // commands retried after a stale handle etc.
  int max_loaded = 0;           // high-water mark of objects loaded at once
  uint64_t busy_ns = 0;         // time spent running TPM operations (under the device mutex)
};

class TpmDevice {
 public:
  // Connects (TPM2_Startup is sent; an already started TPM is fine).
  // INVALID_ARGUMENT for an empty TCTI or cached_keys outside [0, 2];
  // UNAVAILABLE when the TPM cannot be reached.
  static common::Result<std::shared_ptr<TpmDevice>> Open(TpmDeviceOptions options);

  TpmDevice(const TpmDevice&) = delete;
  TpmDevice& operator=(const TpmDevice&) = delete;
  ~TpmDevice();

  const std::string& tcti() const;

  // The DER EK certificate from the TCG EK credential profile NV index.
  common::Result<common::Bytes> ReadEkCertificate(EkKind kind);

  // Forgets the saved SRK and key contexts (they are recreated on demand).
  void ForgetSavedContexts();

  TpmDeviceStats stats() const;

  // Internal state, defined in hsm/tpm/tpm_device_impl.h (tss2 types).
  class Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit TpmDevice(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_DEVICE_H_
