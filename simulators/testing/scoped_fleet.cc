#include "agentroot/simulators/testing/scoped_fleet.h"

#include "agentroot/common/testing/test_logs.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#ifndef AGENTROOT_SIM_BINARY
#error "AGENTROOT_SIM_BINARY must be defined by the build"
#endif

namespace agentroot::simulators::testing {

namespace fs = std::filesystem;
using common::Result;

namespace {

// `agentroot-sim tpm watchdog --dir DIR --fd 3 --remove-dir` as the
// CleanupWatchdog: on EOF it stops the fleet in DIR and removes DIR.
Result<common::testing::CleanupWatchdog> StartWatchdog(const fs::path& dir) {
  const std::string binary = AgentrootSimBinary().string();
  if (::access(binary.c_str(), X_OK) != 0) {
    return common::NotFoundError("agentroot-sim not found at " + binary);
  }
  return common::testing::CleanupWatchdog::Start(
      {binary, "tpm", "watchdog", "--dir", dir.string(), "--fd", "3", "--remove-dir"});
}

}  // namespace

fs::path AgentrootSimBinary() { return fs::path(AGENTROOT_SIM_BINARY); }

Result<std::unique_ptr<ScopedFleetDir>> ScopedFleetDir::Create() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/agentroot-fleet-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return common::InternalError("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  auto watchdog = StartWatchdog(templ);
  if (!watchdog.ok()) {
    std::error_code ec;
    fs::remove_all(templ, ec);
    return watchdog.status();
  }
  return std::unique_ptr<ScopedFleetDir>(new ScopedFleetDir(templ, std::move(watchdog).value()));
}

ScopedFleetDir::~ScopedFleetDir() {
  auto stopped = StopFleet(path_);
  common::testing::KeepLogsUnder(path_, "swtpm");
  if (!stopped.ok()) {
    // Keep the directory (its pid files are the only handle on the
    // instances) and leave the watchdog armed: it retries when we exit.
    std::cerr << "ScopedFleetDir: stopping fleet in " << path_ << ": "
              << stopped.status().ToString() << "\n";
    return;  // ~CleanupWatchdog closes without dismissing
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) std::cerr << "ScopedFleetDir: removing " << path_ << ": " << ec.message() << "\n";
  watchdog_.Dismiss();
}

Result<std::unique_ptr<ScopedFleet>> ScopedFleet::Create(int machines, FleetOptions options) {
  AR_ASSIGN_OR_RETURN(std::unique_ptr<ScopedFleetDir> dir, ScopedFleetDir::Create());
  options.dir = dir->path();
  options.machines = machines;
  AR_ASSIGN_OR_RETURN(std::unique_ptr<TpmFleet> fleet, TpmFleet::Start(options));
  return std::unique_ptr<ScopedFleet>(new ScopedFleet(std::move(dir), std::move(fleet)));
}

}  // namespace agentroot::simulators::testing
