// Long-running child processes of a test (daemons, the verifier binary):
// started without a shell, stopped or killed by their process group, reaped,
// and killed by the kernel if the test process dies first.
//
// SpawnChild forks and execs `program` with an explicit argv and environment:
// stdin is /dev/null, stdout and stderr go to `log_fd`, `fd3` (if >= 0)
// becomes fd 3, every other descriptor is closed. The child leads its own
// process group and has PR_SET_PDEATHSIG = SIGKILL. That signal is tied to the
// *thread* that forked it, so spawn from a thread that outlives the child (the
// test's main thread).
//
// Thread safety: the functions may be called from several threads; a given
// pid is waited for by one thread only.
#ifndef AGENTROOT_SIMULATORS_TESTING_CHILD_PROCESS_H_
#define AGENTROOT_SIMULATORS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::simulators::testing {

// `name` itself when it contains '/' (and is executable), else the first
// executable PATH entry, then /usr/sbin and /sbin (which a non-root PATH may
// lack). NOT_FOUND otherwise.
common::Result<std::string> FindProgram(const std::string& name);

// This process's environment with `name` set to `value` (replacing it).
std::vector<std::string> EnvironmentWith(const std::string& name, const std::string& value);

// See the file comment. `program` is a path (FindProgram), `argv` includes
// argv[0], `env` is "NAME=value" entries. INTERNAL when fork fails.
common::Result<pid_t> SpawnChild(const std::string& program, const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env, int log_fd, int fd3 = -1);

// How `pid` ended ("exited with status 1", "killed by signal 9"), reaping it;
// nullopt while it runs.
std::optional<std::string> ChildExitedHow(pid_t pid);

// SIGTERM to the process group of `pid`, SIGKILL after `grace`; reaps it.
// OK when it ended on SIGTERM (or had already ended); INTERNAL naming `what`
// when it had to be killed. A pid <= 0 is a no-op.
common::Status StopChild(pid_t pid, const char* what, std::chrono::milliseconds grace);

// SIGKILL to the process group of `pid` (no chance to clean up, as in a
// crash) and reaps it. A pid <= 0 is a no-op.
void KillChild(pid_t pid);

// The last `max_bytes` of a (log) file, for error messages.
std::string FileTail(const std::filesystem::path& file, std::size_t max_bytes = 2000);

}  // namespace agentroot::simulators::testing

#endif  // AGENTROOT_SIMULATORS_TESTING_CHILD_PROCESS_H_
