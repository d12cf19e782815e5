// Test fixtures: a crash-cleanup watchdog for servers a test starts.
//
// A test can die without running destructors (crash, abort, ctest timeout
// kill), which would leave its servers (swtpm, PostgreSQL) running and their
// directories behind. CleanupWatchdog::Start runs a command of the caller's
// as a detached watchdog: a grandchild in its own session (re-parented away
// from this process, so killing this process or its process group spares
// it), stdin/stdout/stderr on /dev/null, and fd 3 one end of a socket pair
// whose other end this object holds. The command blocks reading fd 3:
//   - the line "dismiss\n" (Dismiss()) means the owner cleaned up: exit;
//   - EOF (this object destroyed without Dismiss(), or this process died)
//     means it did not: clean up, then exit.
// The dismissal is sent with MSG_NOSIGNAL, so a watchdog that already died
// cannot SIGPIPE the test.
//
// Thread safety: none; one owner. Processes forked from the owner share the
// socket, so the watchdog fires only once all of them have exited too.
#ifndef AGENTROOT_COMMON_TESTING_WATCHDOG_H_
#define AGENTROOT_COMMON_TESTING_WATCHDOG_H_

#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::common::testing {

class CleanupWatchdog {
 public:
  // What Dismiss() writes to fd 3 (a shell `read -r line` sees "dismiss").
  static constexpr char kDismissLine[] = "dismiss\n";

  // Starts `argv` (argv[0] an absolute path: it is exec'd without a PATH
  // search) as the watchdog. Returns once the watchdog process exists.
  static Result<CleanupWatchdog> Start(const std::vector<std::string>& argv);

  CleanupWatchdog() = default;
  CleanupWatchdog(CleanupWatchdog&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  CleanupWatchdog& operator=(CleanupWatchdog&& other) noexcept;
  CleanupWatchdog(const CleanupWatchdog&) = delete;
  CleanupWatchdog& operator=(const CleanupWatchdog&) = delete;
  // Closes the socket without dismissing: the watchdog cleans up (once
  // nothing else holds the socket). Use it when the owner's own cleanup
  // failed, or simply let the object go.
  ~CleanupWatchdog();

  // The owner has cleaned up: tell the watchdog to exit without doing
  // anything, and close the socket. A no-op on an empty object.
  void Dismiss();

  bool armed() const { return fd_ >= 0; }

 private:
  explicit CleanupWatchdog(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace agentroot::common::testing

#endif  // AGENTROOT_COMMON_TESTING_WATCHDOG_H_
