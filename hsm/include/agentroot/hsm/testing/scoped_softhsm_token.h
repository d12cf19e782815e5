// ScopedSoftHsmToken: a throw-away SoftHSM2 token for tests and benchmarks.
//
// Create() makes a private temp directory holding a softhsm2.conf whose
// tokendir is inside it, points SOFTHSM2_CONF at that file (for this process
// and every child it starts, such as pkcs11-tool), and initialises a token
// with `softhsm2-util --init-token --free`. The destructor removes the whole
// directory and restores the previous SOFTHSM2_CONF. Nothing outside the temp
// directory is touched.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised (C_Initialize),
// so create the token before the first PKCS#11 manager of the process opens
// the module, and keep at most one ScopedSoftHsmToken alive per process
// (Create() refuses a second one: FAILED_PRECONDITION).
//
// The PINs are test values, not secrets.
//
// Thread safety: not thread-safe (it changes the process environment); create
// and destroy it from one thread while no PKCS#11 call is in flight.
#ifndef AGENTROOT_HSM_TESTING_SCOPED_SOFTHSM_TOKEN_H_
#define AGENTROOT_HSM_TESTING_SCOPED_SOFTHSM_TOKEN_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::hsm::testing {

// The SoftHSM2 module on Debian 12.
inline constexpr char kSoftHsmModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";

class ScopedSoftHsmToken {
 public:
  // Errors: UNAVAILABLE when softhsm2-util or the module is missing,
  // FAILED_PRECONDITION when another instance is alive, INTERNAL when
  // softhsm2-util fails (its output is in the message).
  static common::Result<std::unique_ptr<ScopedSoftHsmToken>> Create(
      std::string label = "agentroot-test", std::string user_pin = "1234-user-pin",
      std::string so_pin = "5678-so-pin");

  ~ScopedSoftHsmToken();
  ScopedSoftHsmToken(const ScopedSoftHsmToken&) = delete;
  ScopedSoftHsmToken& operator=(const ScopedSoftHsmToken&) = delete;

  // Initialises one more token in the same token directory.
  common::Status AddToken(const std::string& label, const std::string& user_pin);

  const std::string& label() const { return label_; }
  const std::string& user_pin() const { return user_pin_; }
  common::SecretBytes UserPinSecret() const;
  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& conf_path() const { return conf_; }
  static std::string module_path() { return kSoftHsmModulePath; }

 private:
  ScopedSoftHsmToken(std::filesystem::path dir, std::filesystem::path conf, std::string label,
                     std::string user_pin, std::string so_pin, std::optional<std::string> old_conf)
      : dir_(std::move(dir)),
        conf_(std::move(conf)),
        label_(std::move(label)),
        user_pin_(std::move(user_pin)),
        so_pin_(std::move(so_pin)),
        old_conf_(std::move(old_conf)) {}

  std::filesystem::path dir_;
  std::filesystem::path conf_;
  std::string label_;
  std::string user_pin_;
  std::string so_pin_;
  std::optional<std::string> old_conf_;
};

// Running a program without a shell (softhsm2-util, pkcs11-tool, openssl).
struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// argv[0] is searched in PATH unless it contains '/'. stdin is /dev/null.
// NOT_FOUND when the program does not exist,
// DEADLINE_EXCEEDED when it is killed after `timeout`.
common::Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace agentroot::hsm::testing

#endif  // AGENTROOT_HSM_TESTING_SCOPED_SOFTHSM_TOKEN_H_
