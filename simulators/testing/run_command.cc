#include "agentroot/simulators/testing/run_command.h"

#include "../src/subprocess.h"

namespace agentroot::simulators::testing {

common::Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds timeout) {
  internal::ProcessOptions options;
  options.timeout = timeout;
  AR_ASSIGN_OR_RETURN(internal::ProcessResult result, internal::RunProcess(argv, options));
  return CommandResult{result.exit_code, result.signal, std::move(result.stdout_text),
                       std::move(result.stderr_text)};
}

}  // namespace agentroot::simulators::testing
