#include "agentroot/simulators/testing/scoped_fleet.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#ifndef AGENTROOT_SIM_BINARY
#error "AGENTROOT_SIM_BINARY must be defined by the build"
#endif

namespace agentroot::simulators::testing {

namespace fs = std::filesystem;
using common::Result;

namespace {

constexpr char kDismiss = 'd';

// Starts `agentroot-sim tpm watchdog --dir DIR --fd 3 --remove-dir` as a
// grandchild (re-parented away from us, in its own session) so that killing
// this process or its process tree does not kill the watchdog. Returns the
// write end of the pipe whose closing wakes it.
Result<int> StartWatchdog(const fs::path& dir) {
  const std::string binary = AgentrootSimBinary().string();
  if (::access(binary.c_str(), X_OK) != 0) {
    return common::NotFoundError("agentroot-sim not found at " + binary);
  }
  std::string dir_str = dir.string();
  std::vector<std::string> args = {binary, "tpm", "watchdog", "--dir", dir_str, "--fd", "3",
                                   "--remove-dir"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return common::InternalError("pipe2 failed");
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    ::close(null_fd);
    return common::InternalError("fork failed");
  }
  if (child == 0) {
    // Async-signal-safe calls only until execv.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    // dup2 clears O_CLOEXEC on the copy, but dup2(3, 3) is a no-op that
    // keeps it: when the pipe's read end already is fd 3, clear it by hand.
    if (fds[0] == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(fds[0], 3);
    }
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::close_range(4, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[0]);
  ::close(null_fd);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return fds[1];
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
  auto fd = StartWatchdog(templ);
  if (!fd.ok()) {
    std::error_code ec;
    fs::remove_all(templ, ec);
    return fd.status();
  }
  return std::unique_ptr<ScopedFleetDir>(new ScopedFleetDir(templ, *fd));
}

ScopedFleetDir::~ScopedFleetDir() {
  auto stopped = StopFleet(path_);
  if (!stopped.ok()) {
    // Keep the directory (its pid files are the only handle on the
    // instances) and leave the watchdog armed: it retries when we exit.
    std::cerr << "ScopedFleetDir: stopping fleet in " << path_ << ": "
              << stopped.status().ToString() << "\n";
    if (watchdog_fd_ >= 0) ::close(watchdog_fd_);
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) std::cerr << "ScopedFleetDir: removing " << path_ << ": " << ec.message() << "\n";
  if (watchdog_fd_ >= 0) {
    const ssize_t written = ::write(watchdog_fd_, &kDismiss, 1);
    (void)written;
    ::close(watchdog_fd_);
  }
}

Result<std::unique_ptr<ScopedFleet>> ScopedFleet::Create(int machines, FleetOptions options) {
  AR_ASSIGN_OR_RETURN(std::unique_ptr<ScopedFleetDir> dir, ScopedFleetDir::Create());
  options.dir = dir->path();
  options.machines = machines;
  AR_ASSIGN_OR_RETURN(std::unique_ptr<TpmFleet> fleet, TpmFleet::Start(options));
  return std::unique_ptr<ScopedFleet>(new ScopedFleet(std::move(dir), std::move(fleet)));
}

}  // namespace agentroot::simulators::testing
