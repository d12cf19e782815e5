// Test fixture: a private PostgreSQL 15 server on 127.0.0.1 that nothing
// outlives.
//
// Start() makes a temporary directory ($TMPDIR or /tmp, "agentroot-pg-XXXXXX"),
// runs initdb into it (as the `postgres` user through runuser when this
// process is root: PostgreSQL refuses to run as root; the directory is
// chowned to that user), and starts the server with pg_ctl on a free
// loopback port, its unix socket inside the directory, trust
// authentication, fsync=on. The destructor stops the server (pg_ctl stop -m
// immediate: the data is thrown away) and removes the
// directory.
//
// Because a test can die without running destructors (crash, abort, ctest
// timeout kill), Start() also leaves a detached watchdog
// (common::testing::CleanupWatchdog running a /bin/sh script) holding a
// socket to this process: if it closes without the destructor having
// dismissed it, the watchdog stops the server (-m immediate) and removes the
// directory.
//
// Thread safety: CreateDatabase may be called from any thread; create and
// destroy the server from one thread. Processes forked from the owner must
// not destroy it (they exit with _exit or die by signal).
#ifndef AGENTROOT_ATTESTATION_STORE_TESTING_POSTGRES_SERVER_H_
#define AGENTROOT_ATTESTATION_STORE_TESTING_POSTGRES_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/common/status.h"
#include "agentroot/common/testing/watchdog.h"

namespace agentroot::attestation::store::testing {

// Runs argv (argv[0] looked up in PATH), returns the exit code (-1 when
// killed by a signal) and appends stdout+stderr to *output when not null.
common::Result<int> RunCommand(const std::vector<std::string>& argv, std::string* output);

class ScopedPostgresServer {
 public:
  static common::Result<std::unique_ptr<ScopedPostgresServer>> Start();
  ~ScopedPostgresServer();

  ScopedPostgresServer(const ScopedPostgresServer&) = delete;
  ScopedPostgresServer& operator=(const ScopedPostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // postgresql://postgres@127.0.0.1:<port>/<database>
  std::string Uri(const std::string& database) const;
  // CREATE DATABASE agentroot_test_<n>; returns its URI.
  common::Result<std::string> CreateDatabase();

 private:
  ScopedPostgresServer(std::string dir, common::testing::CleanupWatchdog watchdog)
      : dir_(std::move(dir)), watchdog_(std::move(watchdog)) {}
  common::Status InitAndStart();

  std::string dir_;
  common::testing::CleanupWatchdog watchdog_;
  int port_ = 0;
  bool started_ = false;
  std::atomic<int> next_database_{0};
};

}  // namespace agentroot::attestation::store::testing

#endif  // AGENTROOT_ATTESTATION_STORE_TESTING_POSTGRES_SERVER_H_
