// SoftwareKeyManager: keys in files, FOR TESTS ONLY.
//
// Private keys are generated with OpenSSL in this process and stored in
// `dir` as PEM files readable only by the owner (mode 0600, the directory
// 0700). Nothing protects them: anyone who can read the directory, or the
// process memory, has the keys. It exists so tests and development setups
// can exercise code that needs a KeyManager without a TPM or HSM.
//
// To make accidental production use impossible, Create() takes an explicit
// acknowledgement, InsecureKeys::kAcceptedForTesting, and refuses any other
// value (including a value-initialised `InsecureKeys{}`). A warning naming the
// directory is written to stderr when a manager is created.
//
// Storage: one file per key, `<dir>/<id>.key`: a first line
// "agentroot-software-key v1 alg=<ES256|RS256|PS256>" (the policy, fixed at
// creation) followed by the PKCS#8 PEM private key. Files are written to a
// temp file, fsync'ed and then hard-linked into place, so a key file is either
// complete or absent and two concurrent Generate calls with the same id (even
// from different processes) cannot both succeed.
//
// Key objects: Sign() checks that the key file is still the one the key was
// loaded from (same inode), so a Key fails with NOT_FOUND once its key is
// deleted, also when it was deleted through another manager instance.
// native_public() is SubjectPublicKeyInfo DER. PCR binding: UNIMPLEMENTED.
//
// Thread safety: all methods may be called concurrently.
#ifndef AGENTROOT_HSM_SOFTWARE_SOFTWARE_KEY_MANAGER_H_
#define AGENTROOT_HSM_SOFTWARE_SOFTWARE_KEY_MANAGER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/hsm/key_manager.h"

namespace agentroot::hsm {

// The acknowledgement SoftwareKeyManager::Create requires. The enumerator has
// a non-zero value so that `InsecureKeys{}` or a cast from 0 is refused.
enum class InsecureKeys : uint32_t { kAcceptedForTesting = 0x7E57'0B1Au };

class SoftwareKeyManager final : public KeyManager {
 public:
  // Opens (creating it with mode 0700 if absent) the key directory `dir`.
  // FAILED_PRECONDITION unless `acknowledgement` is kAcceptedForTesting;
  // INVALID_ARGUMENT when `dir` is empty or not a directory.
  static Result<std::unique_ptr<SoftwareKeyManager>> Create(const std::filesystem::path& dir,
                                                            InsecureKeys acknowledgement);

  std::string_view backend() const override { return "software"; }
  Result<std::shared_ptr<Key>> Generate(std::string_view id, const KeyPolicy& policy) override;
  Result<std::shared_ptr<Key>> Get(std::string_view id) override;
  Result<std::vector<std::string>> List() override;
  Status Delete(std::string_view id) override;

 private:
  explicit SoftwareKeyManager(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path PathFor(std::string_view id) const;

  std::filesystem::path dir_;
};

}  // namespace agentroot::hsm

#endif  // AGENTROOT_HSM_SOFTWARE_SOFTWARE_KEY_MANAGER_H_
