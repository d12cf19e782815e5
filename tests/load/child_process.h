// The load generator's child processes (the verifier, `openssl speed`) and
// the CPU time of processes it measures.
//
// A ChildProcess is simulators::testing::SpawnChild's child held by RAII: it
// runs in its own process group with stdout and stderr
// appended to a log file, stdin from /dev/null and no other inherited
// descriptors. It gets SIGKILL if this process dies first (PR_SET_PDEATHSIG),
// and InstallStopOnSignal() makes SIGINT/SIGTERM/SIGHUP stop every live child
// before this process exits. Destroying a ChildProcess stops it (SIGTERM,
// then SIGKILL after the grace period) and reaps it.
//
// Thread safety: create, stop and destroy a ChildProcess from one thread.
// The CPU readers are pure reads of /proc.
#ifndef AGENTROOT_TESTS_LOAD_CHILD_PROCESS_H_
#define AGENTROOT_TESTS_LOAD_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::load {

class ChildProcess {
 public:
  // argv[0] must be a path (no PATH lookup).
  static common::Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::filesystem::path& log_file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once it has exited (reaps it then; exit_code() tells how).
  bool Running();
  // Waits up to `timeout` for it to exit on its own; true when it did.
  bool Wait(std::chrono::milliseconds timeout);
  // SIGTERM, SIGKILL after `grace`; reaps. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // The wait status decoded: exit code, or 128 + signal; -1 while running.
  int exit_code() const { return exit_code_; }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  int exit_code_ = -1;
  bool reaped_ = false;
};

// SIGINT/SIGTERM/SIGHUP: stop (SIGTERM, then SIGKILL) every ChildProcess
// still running, then exit with 128 + signal. Call once from main.
void InstallStopOnSignal();

// utime + stime of `pid` (all its threads) in seconds, from /proc/<pid>/stat;
// with `reaped_children`, plus cutime + cstime (children it has waited for).
common::Result<double> ProcessCpuSeconds(pid_t pid, bool reaped_children = false);

// CPU seconds of `root` (including the children it reaped) and of every live
// process whose parent is `root`: for a PostgreSQL postmaster and its
// backends.
common::Result<double> ProcessTreeCpuSeconds(pid_t root);

}  // namespace agentroot::load

#endif  // AGENTROOT_TESTS_LOAD_CHILD_PROCESS_H_
