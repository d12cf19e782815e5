// Running helper programs (swtpm, swtpm_setup) without a shell.
//
// Private to agentroot::simulators. fork + execve with an explicit argv; the
// child gets its own process group, /dev/null as stdin, no inherited file
// descriptors beyond 0-2 and, unless told otherwise, pipes for stdout and
// stderr that are captured. A timeout kills the child's whole process group
// with SIGKILL.
//
// Thread safety: RunProcess may be called from several threads at once;
// everything the child needs is prepared before fork, the child only calls
// async-signal-safe functions.
#ifndef AGENTROOT_SIMULATORS_SRC_SUBPROCESS_H_
#define AGENTROOT_SIMULATORS_SRC_SUBPROCESS_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::simulators::internal {

struct ProcessOptions {
  // Variables set (or overridden) on top of this process's environment.
  std::map<std::string, std::string> env;
  // When set, stdout and stderr are appended to this file instead of being
  // captured (for daemons that would otherwise keep our pipes open).
  std::optional<std::filesystem::path> output_file;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

struct ProcessResult {
  // Exit status when the child exited normally, else -1.
  int exit_code = -1;
  // Terminating signal when killed by a signal, else 0.
  int signal = 0;
  std::string stdout_text;
  std::string stderr_text;

  bool success() const { return exit_code == 0; }
  // "exit code 3" / "killed by signal 9", then the stderr text (trimmed).
  std::string Describe() const;
};

// Resolves `program` like execvp would: a name containing '/' is checked as
// is, otherwise each PATH entry is searched. NOT_FOUND when no executable
// file matches.
common::Result<std::filesystem::path> FindExecutable(const std::string& program);

// Runs argv[0] (resolved with FindExecutable) with `argv`, waits for it.
// A non-zero exit is NOT an error here (it is reported in the result);
// errors are: NOT_FOUND (no such program), DEADLINE_EXCEEDED (timeout; the
// process group was killed), INTERNAL (fork/pipe failures).
common::Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const ProcessOptions& options = {});

}  // namespace agentroot::simulators::internal

#endif  // AGENTROOT_SIMULATORS_SRC_SUBPROCESS_H_
