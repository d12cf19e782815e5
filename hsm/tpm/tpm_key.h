// Private to hsm/tpm: the Key implementation of TpmKeyManager, visible to
// TpmAttestor (which certifies these keys).
#ifndef AGENTROOT_HSM_TPM_TPM_KEY_H_
#define AGENTROOT_HSM_TPM_TPM_KEY_H_

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "agentroot/common/jwk.h"
#include "agentroot/common/openssl.h"
#include "agentroot/hsm/key_manager.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "tpm_device_impl.h"
#include "tpm_objects.h"

namespace agentroot::hsm::tpm {

// Starts an unsalted, unbound session (sym NULL) with continueSession set;
// wrap the handle in a ScopedSession.
Result<ESYS_TR> StartSession(TpmDevice::Impl::Op& op, TPM2_SE type, TPMI_ALG_HASH hash);

class TpmKey final : public Key {
 public:
  // Checks that the public area is the template of the file's policy.
  // `path`: the blob file; once it is gone the key refuses to sign.
  static Result<std::shared_ptr<TpmKey>> FromFile(std::shared_ptr<TpmDevice> device,
                                                  std::string id, const KeyFile& file,
                                                  std::filesystem::path path);

  const std::string& id() const override { return id_; }
  const KeyPolicy& policy() const override { return policy_; }
  const common::Jwk& public_jwk() const override { return jwk_; }
  Bytes native_public() const override { return blob_.public_area; }
  Result<Bytes> Sign(JwsAlgorithm requested, ByteView digest) const override;

  const KeyBlob& blob() const { return blob_; }
  const std::shared_ptr<TpmDevice>& device() const { return device_; }
  void MarkDeleted() { deleted_.store(true); }
  // Deleted through a manager, or its blob file is gone (deleted by another
  // manager instance over the same directory).
  bool deleted() const;

 private:
  TpmKey(std::shared_ptr<TpmDevice> device, std::string id, KeyPolicy policy, KeyBlob blob,
         common::EvpPkeyPtr pkey, common::Jwk jwk, std::filesystem::path path)
      : device_(std::move(device)), id_(std::move(id)), policy_(std::move(policy)),
        blob_(std::move(blob)), pkey_(std::move(pkey)), jwk_(std::move(jwk)),
        path_(std::move(path)) {}

  std::shared_ptr<TpmDevice> device_;
  std::string id_;
  KeyPolicy policy_;
  KeyBlob blob_;
  common::EvpPkeyPtr pkey_;
  common::Jwk jwk_;
  std::filesystem::path path_;
  std::atomic<bool> deleted_{false};
};

}  // namespace agentroot::hsm::tpm

#endif  // AGENTROOT_HSM_TPM_TPM_KEY_H_
