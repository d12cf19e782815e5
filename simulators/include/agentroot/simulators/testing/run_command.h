// Running programs from tests (agentroot-sim, tpm2-tools, openssl) without a
// shell: argv in, exit status and captured output out.
//
// Thread safety: may be called from several threads.
#ifndef AGENTROOT_SIMULATORS_TESTING_RUN_COMMAND_H_
#define AGENTROOT_SIMULATORS_TESTING_RUN_COMMAND_H_

#include <chrono>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::simulators::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string stdout_text;
  std::string stderr_text;
};

// Runs argv (argv[0] searched in PATH unless it contains '/'). Errors:
// NOT_FOUND (no such program), DEADLINE_EXCEEDED (killed after `timeout`).
common::Result<CommandResult> RunCommand(
    const std::vector<std::string>& argv,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace agentroot::simulators::testing

#endif  // AGENTROOT_SIMULATORS_TESTING_RUN_COMMAND_H_
