#include "agentroot/common/testing/watchdog.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace agentroot::common::testing {

Result<CleanupWatchdog> CleanupWatchdog::Start(const std::vector<std::string>& args) {
  if (args.empty() || args.front().empty() || args.front().front() != '/') {
    return InvalidArgumentError("watchdog: argv[0] must be an absolute path");
  }
  if (::access(args.front().c_str(), X_OK) != 0) {
    return NotFoundError("watchdog: " + args.front() + " is not executable");
  }
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return InternalError("watchdog: socketpair failed");
  }
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return InternalError("watchdog: cannot open /dev/null");
  }
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    ::close(null_fd);
    return InternalError("watchdog: fork failed");
  }
  if (child == 0) {
    // The grandchild is re-parented away from us in its own session, so
    // killing our process group spares it.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    // dup2 clears O_CLOEXEC on the copy, but dup2(3, 3) is a no-op that
    // keeps it: when the socket already is fd 3, clear it by hand.
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
  return CleanupWatchdog(fds[1]);
}

CleanupWatchdog& CleanupWatchdog::operator=(CleanupWatchdog&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

CleanupWatchdog::~CleanupWatchdog() {
  if (fd_ >= 0) ::close(fd_);
}

void CleanupWatchdog::Dismiss() {
  if (fd_ < 0) return;
  const ssize_t written = ::send(fd_, kDismissLine, sizeof(kDismissLine) - 1, MSG_NOSIGNAL);
  (void)written;  // a watchdog that is gone has nothing left to do
  ::close(fd_);
  fd_ = -1;
}

}  // namespace agentroot::common::testing
