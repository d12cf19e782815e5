// The agentroot-verifier binary of this build as a child of an e2e test:
// started with a config file the test wrote, waited for until it answers
// HTTPS, signalled (SIGHUP), stopped (SIGTERM, exit code) or killed (SIGKILL,
// as in a crash) and restarted. All runs append to one log file.
//
// The child leads its own process group and dies with the thread that
// started it (simulators::testing::SpawnChild): start it from the test's main
// thread. The destructor kills it, so a failing test leaves no verifier.
#ifndef AGENTROOT_TESTS_E2E_VERIFIER_PROCESS_H_
#define AGENTROOT_TESTS_E2E_VERIFIER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::e2e {

struct VerifierProcessOptions {
  std::filesystem::path config;
  std::filesystem::path log;
  // Passed before --config (e.g. "--dev").
  std::vector<std::string> args;
  // Added to (or replacing in) this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // The CA of the verifier's TLS certificate, for the readiness probe.
  std::string ca_pem;
  // The port in the config; 0 when it listens on port 0 (the port is then
  // read from its "listening" log line).
  int port = 0;
  std::chrono::milliseconds ready_timeout{30'000};
};

// Writes `text` to `path` (truncating), owner read/write only.
common::Status WriteFile(const std::filesystem::path& path, std::string_view text);

class VerifierProcess {
 public:
  // Starts it and waits until GET /.well-known/jwks.json answers 200.
  static common::Result<std::unique_ptr<VerifierProcess>> Start(VerifierProcessOptions options);
  ~VerifierProcess();
  VerifierProcess(const VerifierProcess&) = delete;
  VerifierProcess& operator=(const VerifierProcess&) = delete;

  // Starts it again after Kill() or Stop() (same options), and waits.
  common::Status Restart();
  // SIGKILL to its process group: no shutdown, no flush.
  void Kill();
  // SIGTERM, SIGKILL after `grace`; the exit code, or 128 + the signal that
  // ended it.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(15));
  void Signal(int sig) const;

  int port() const { return port_; }
  std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string Log() const;
  const std::filesystem::path& log_path() const { return options_.log; }

 private:
  explicit VerifierProcess(VerifierProcessOptions options) : options_(std::move(options)) {}
  common::Status Launch();

  VerifierProcessOptions options_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace agentroot::e2e

#endif  // AGENTROOT_TESTS_E2E_VERIFIER_PROCESS_H_
