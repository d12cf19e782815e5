// TpmKeyManager: agent signing keys that live in a TPM (hsm::KeyManager).
//
// Generate() runs TPM2_Create under the device's storage root key (see
// tpm_device.h) with the template for the policy's algorithm:
//   ES256  ECC P-256, scheme ECDSA-SHA256
//   RS256  RSA 2048, scheme RSASSA-SHA256
//   PS256  RSA 2048, scheme RSAPSS-SHA256 (signatures are checked to verify
//          with the RFC 7518 salt length before they are returned)
// and attributes fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign
// (never decrypt, never restricted): the private key is generated inside the
// TPM and can never leave it or be duplicated. The scheme is part of the
// public area, so the TPM itself refuses any other algorithm.
//
// PCR binding (KeyPolicy::pcr_binding): SHA-256 PCRs 0-15 only (16-23 are
// resettable or do not bump the PCR update counter: INVALID_ARGUMENT). The
// key's authPolicy is TPM2_PolicyPCR over the PCRs' values at creation, and
// userWithAuth is cleared, so the key signs only through a policy session in
// which PolicyPCR succeeds: after any bound PCR changes, Sign fails with
// FAILED_PRECONDITION (TPM2_RC_POLICY_FAIL in the message).
//
// Storage: <state_dir>/keys/<id>.tpmkey, one file per key holding the
// policy, the TPM2B_PUBLIC and the TPM-wrapped TPM2B_PRIVATE (see
// tpm_objects.h), written atomically (temp file, fsync, rename) with mode
// 0600 in a 0700 directory. The blobs reload after a daemon restart (a new
// TpmKeyManager on the same directory) and after a TPM restart; they are
// useless on any other TPM. Delete removes the file; Key objects of the
// deleted key fail afterwards (FAILED_PRECONDITION). A copy of the blob
// taken before Delete would still load on the same TPM: TPM-wrapped keys
// cannot be revoked without changing the owner seed.
//
// Key::native_public() is the marshalled TPM2B_PUBLIC; public_jwk() carries
// the RFC 7638 thumbprint as kid. Private blobs are never logged.
//
// Thread safety: all methods, and those of the returned Keys, may be called
// from several threads; TPM commands serialize on the device mutex, file
// operations on the manager's mutex.
#ifndef AGENTROOT_HSM_TPM_TPM_KEY_MANAGER_H_
#define AGENTROOT_HSM_TPM_TPM_KEY_MANAGER_H_

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/hsm/key_manager.h"
#include "agentroot/hsm/tpm/tpm_device.h"

namespace agentroot::hsm::tpm {

class TpmKey;

class TpmKeyManager final : public KeyManager {
 public:
  // Creates <state_dir>/keys if needed. INVALID_ARGUMENT for a null device.
  static Result<std::unique_ptr<TpmKeyManager>> Create(std::shared_ptr<TpmDevice> device,
                                                       std::filesystem::path state_dir);

  ~TpmKeyManager() override;

  std::string_view backend() const override { return "tpm"; }
  Result<std::shared_ptr<Key>> Generate(std::string_view id, const KeyPolicy& policy) override;
  Result<std::shared_ptr<Key>> Get(std::string_view id) override;
  Result<std::vector<std::string>> List() override;
  Status Delete(std::string_view id) override;

  const std::shared_ptr<TpmDevice>& device() const { return device_; }

 private:
  TpmKeyManager(std::shared_ptr<TpmDevice> device, std::filesystem::path keys_dir)
      : device_(std::move(device)), keys_dir_(std::move(keys_dir)) {}

  std::filesystem::path PathFor(std::string_view id) const;

  std::shared_ptr<TpmDevice> device_;
  std::filesystem::path keys_dir_;
  std::mutex mu_;
  // Keys handed out, so Delete can disable them.
  std::map<std::string, std::weak_ptr<TpmKey>, std::less<>> handed_out_;
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_KEY_MANAGER_H_
