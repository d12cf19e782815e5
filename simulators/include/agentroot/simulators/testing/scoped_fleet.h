// Test fixtures for swtpm fleets: nothing outlives the test.
//
// ScopedFleetDir owns a fresh temporary directory for a fleet. Its destructor
// stops every swtpm of that directory and removes it. Because a test may also
// die without running destructors (crash, abort, ctest timeout kill), Create()
// also starts a detached watchdog process (`agentroot-sim tpm watchdog`, run
// by common::testing::CleanupWatchdog) that holds a socket to this process:
// if the socket closes without the destructor having dismissed the watchdog,
// the watchdog stops the fleet and removes the directory itself.
//
// ScopedFleet = ScopedFleetDir + a started TpmFleet.
//
// Usage:
//   ASSERT_OK_AND_ASSIGN-style:
//   auto fleet = ScopedFleet::Create(2);
//   ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
//   for (const auto& m : (*fleet)->info().machines) { ... m.tcti ... }
//
// Thread safety: create and destroy from one thread; info() is immutable.
// Each object uses its own directory and ports, so tests may run in parallel
// (ctest -j) and in parallel with each other inside one process.
#ifndef AGENTROOT_SIMULATORS_TESTING_SCOPED_FLEET_H_
#define AGENTROOT_SIMULATORS_TESTING_SCOPED_FLEET_H_

#include <filesystem>
#include <memory>

#include "agentroot/common/status.h"
#include "agentroot/common/testing/watchdog.h"
#include "agentroot/simulators/tpm_fleet.h"

namespace agentroot::simulators::testing {

// The agentroot-sim executable of this build.
std::filesystem::path AgentrootSimBinary();

class ScopedFleetDir {
 public:
  // mkdtemp("$TMPDIR/agentroot-fleet-XXXXXX") (TMPDIR defaults to /tmp) and
  // the watchdog.
  static common::Result<std::unique_ptr<ScopedFleetDir>> Create();

  ScopedFleetDir(const ScopedFleetDir&) = delete;
  ScopedFleetDir& operator=(const ScopedFleetDir&) = delete;
  // StopFleet(path()), remove the directory, dismiss the watchdog. If the
  // stop fails, the error goes to stderr (a destructor cannot return it), the
  // directory and its pid files are kept and the watchdog stays armed, so it
  // retries once this process exits.
  ~ScopedFleetDir();

  const std::filesystem::path& path() const { return path_; }

 private:
  ScopedFleetDir(std::filesystem::path path, common::testing::CleanupWatchdog watchdog)
      : path_(std::move(path)), watchdog_(std::move(watchdog)) {}

  std::filesystem::path path_;
  common::testing::CleanupWatchdog watchdog_;
};

class ScopedFleet {
 public:
  // A fleet of `machines` machines in a fresh ScopedFleetDir. `options.dir`
  // and `options.machines` are overwritten.
  static common::Result<std::unique_ptr<ScopedFleet>> Create(int machines,
                                                             FleetOptions options = {});

  ScopedFleet(const ScopedFleet&) = delete;
  ScopedFleet& operator=(const ScopedFleet&) = delete;
  ~ScopedFleet() = default;  // ~ScopedFleetDir stops everything.

  const FleetInfo& info() const { return fleet_->info(); }
  const std::filesystem::path& dir() const { return dir_->path(); }

 private:
  ScopedFleet(std::unique_ptr<ScopedFleetDir> dir, std::unique_ptr<TpmFleet> fleet)
      : dir_(std::move(dir)), fleet_(std::move(fleet)) {}

  // Declared first so it is destroyed last.
  std::unique_ptr<ScopedFleetDir> dir_;
  std::unique_ptr<TpmFleet> fleet_;
};

}  // namespace agentroot::simulators::testing

#endif  // AGENTROOT_SIMULATORS_TESTING_SCOPED_FLEET_H_
