// ScopedAbrmd: tpm2-abrmd (the user-space TPM resource manager) in front of
// one TPM, on a private D-Bus bus, for tests. Nothing outlives the object.
//
// Start(dir, tpm_tcti) runs, as children of this process:
//   dbus-daemon --config-file=DIR/bus.conf --nofork --nopidfile --print-address=3
//     a session-type bus of its own listening on unix:path=DIR/bus.sock
//     (no systemd, no system bus, no /etc or /var touched);
//   tpm2-abrmd --session --allow-root --flush-all --tcti=<tpm_tcti>
//     with DBUS_SESSION_BUS_ADDRESS pointing at that bus;
// and returns once the bus printed its address and abrmd owns its D-Bus name
// (polled with `dbus-send ... NameHasOwner`). Logs: DIR/dbus-daemon.log,
// DIR/tpm2-abrmd.log (their tails are in the error when a start fails).
//
// Clients reach the resource manager through tcti() ("tabrmd:bus_name=...,
// bus_type=session"). The tabrmd TCTI takes no bus address, only the bus
// type, so Start also sets DBUS_SESSION_BUS_ADDRESS in this process's
// environment (the previous value is restored by Stop). Hence one ScopedAbrmd
// per process at a time; under ctest every test is its own process, and each
// ScopedAbrmd has its own directory, socket and swtpm, so tests run in
// parallel.
//
// Cleanup: Stop() / the destructor stop abrmd, then the bus (SIGTERM to each
// process group, SIGKILL after a grace period) and reap them. Close every
// TpmDevice that uses tcti() first: GLib's bus connection in this process
// would otherwise see its bus vanish. If this process dies without running the
// destructor (crash, abort, ctest's timeout kill), the kernel kills both
// daemons: they are started with PR_SET_PDEATHSIG = SIGKILL. That signal is
// tied to the *thread* that forked them, so call Start from a thread that
// outlives the object (a test's SetUp or an Environment: the main thread).
//
// Thread safety: create and destroy from one thread.
#ifndef AGENTROOT_HSM_TPM_TPM_ABRMD_FIXTURE_H_
#define AGENTROOT_HSM_TPM_TPM_ABRMD_FIXTURE_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "agentroot/common/status.h"

namespace agentroot::hsm::tpm::testing {

struct AbrmdOptions {
  // Program names (searched in PATH) or paths.
  std::string dbus_daemon = "dbus-daemon";
  std::string dbus_send = "dbus-send";
  std::string abrmd = "tpm2-abrmd";
  // The D-Bus name abrmd claims (its -n flag).
  std::string bus_name = "com.intel.tss2.Tabrmd";
  // For the bus address and for abrmd's name, each.
  std::chrono::milliseconds ready_timeout{std::chrono::seconds(20)};
  // SIGTERM -> SIGKILL.
  std::chrono::milliseconds stop_grace{std::chrono::seconds(3)};
};

class ScopedAbrmd {
 public:
  // `dir` is created if needed and holds the bus config, socket and logs (use
  // a per-test directory, e.g. inside a ScopedFleet's). `tpm_tcti` is the TCTI
  // abrmd uses for the TPM ("swtpm:host=127.0.0.1,port=P"). NOT_FOUND when a
  // program is missing (install: scripts/install-deps.sh), UNAVAILABLE /
  // DEADLINE_EXCEEDED when a daemon exits, logs CRITICAL (abrmd 3.0 does that
  // and then hangs when it cannot reach the TPM) or is not ready in time;
  // whatever was started is stopped again before it returns an error.
  static common::Result<std::unique_ptr<ScopedAbrmd>> Start(const std::filesystem::path& dir,
                                                            const std::string& tpm_tcti,
                                                            AbrmdOptions options = {});

  ScopedAbrmd(const ScopedAbrmd&) = delete;
  ScopedAbrmd& operator=(const ScopedAbrmd&) = delete;
  ~ScopedAbrmd();

  // Stops abrmd and the bus, restores DBUS_SESSION_BUS_ADDRESS. Idempotent.
  // An error when a process had to be SIGKILLed or did not go away.
  common::Status Stop();

  // "tabrmd:bus_name=<name>,bus_type=session": the TCTI of TpmDeviceOptions.
  const std::string& tcti() const { return tcti_; }
  // "unix:path=DIR/bus.sock,guid=..."
  const std::string& bus_address() const { return bus_address_; }
  pid_t dbus_pid() const { return dbus_pid_; }
  pid_t abrmd_pid() const { return abrmd_pid_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  ScopedAbrmd(std::filesystem::path dir, AbrmdOptions options)
      : dir_(std::move(dir)), options_(std::move(options)) {}

  std::filesystem::path dir_;
  AbrmdOptions options_;
  std::string tcti_;
  std::string bus_address_;
  pid_t dbus_pid_ = -1;
  pid_t abrmd_pid_ = -1;
  bool env_set_ = false;
  std::optional<std::string> previous_bus_address_;
};

}  // namespace agentroot::hsm::tpm::testing

#endif  // AGENTROOT_HSM_TPM_TPM_ABRMD_FIXTURE_H_
