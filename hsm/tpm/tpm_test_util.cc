#include "tpm_test_util.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "agentroot/simulators/testing/run_command.h"
#include "tpm_objects.h"

namespace agentroot::hsm::tpm::testing {

common::Result<common::Jwk> TpmPublicToJwk(common::ByteView tpm2b_public) {
  AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, UnmarshalPublic(tpm2b_public));
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr pkey, PublicToEvp(pub.publicArea));
  return common::Jwk::FromPublicKey(pkey.get());
}

common::Result<std::shared_ptr<TpmDevice>> OpenDevice(const std::string& tcti, int cached_keys) {
  TpmDeviceOptions options;
  options.tcti = tcti;
  options.cached_keys = cached_keys;
  return TpmDevice::Open(std::move(options));
}

common::Status RestartSwtpm(simulators::MachineInfo* machine) {
  if (machine->pid > 0 && ::kill(machine->pid, SIGTERM) == 0) {
    for (int i = 0; i < 250 && ::kill(machine->pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (::kill(machine->pid, 0) == 0) return common::InternalError("swtpm did not stop");
  }
  const std::string port = std::to_string(machine->port);
  const std::string ctrl = std::to_string(machine->port + 1);
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto result = simulators::testing::RunCommand(
        {"swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + machine->state_dir.string(),
         "--server", "type=tcp,port=" + port + ",bindaddr=127.0.0.1", "--ctrl",
         "type=tcp,port=" + ctrl + ",bindaddr=127.0.0.1", "--flags",
         "not-need-init,startup-clear", "--pid", "file=" + machine->pid_file.string(),
         "--daemon"});
    if (!result.ok()) return result.status();
    if (result->exit_code == 0) {
      std::ifstream in(machine->pid_file);
      pid_t pid = 0;
      in >> pid;
      if (pid <= 0) return common::InternalError("no pid after swtpm restart");
      machine->pid = pid;
      return common::Status::Ok();
    }
    // The port may linger for a moment after the old process exits.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return common::InternalError("swtpm did not restart");
}

}  // namespace agentroot::hsm::tpm::testing
