// Shared by the TPM backend's integration tests and benchmark: a swtpm fleet
// machine, opening devices on it, restarting its swtpm, and turning a
// TPM2B_PUBLIC into a JWK.
#ifndef AGENTROOT_HSM_TPM_TPM_TEST_UTIL_H_
#define AGENTROOT_HSM_TPM_TPM_TEST_UTIL_H_

#include <memory>
#include <string>

#include "agentroot/common/bytes.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/simulators/tpm_fleet.h"

namespace agentroot::hsm::tpm::testing {

// The public key of a marshalled TPM2B_PUBLIC as a JWK.
common::Result<common::Jwk> TpmPublicToJwk(common::ByteView tpm2b_public);

// Opens a device on `tcti` with `cached_keys`.
common::Result<std::shared_ptr<TpmDevice>> OpenDevice(const std::string& tcti,
                                                      int cached_keys = 16);

// Stops the machine's swtpm (SIGTERM, waits until it is gone) and starts it
// again on the same state directory and ports, as TpmFleet does: a TPM
// power cycle. Updates machine->pid.
common::Status RestartSwtpm(simulators::MachineInfo* machine);

}  // namespace agentroot::hsm::tpm::testing

#endif  // AGENTROOT_HSM_TPM_TPM_TEST_UTIL_H_
