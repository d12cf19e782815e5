// TpmFleet: N isolated swtpm instances, one per simulated machine.
//
// Layout of a fleet directory DIR (everything the fleet writes stays in DIR;
// /etc and /var/lib are never touched):
//   DIR/fleet.lock                 flock held while starting or stopping
//   DIR/fleet.json                 the FleetInfo of the running fleet
//   DIR/config/                    swtpm_setup.conf, swtpm-localca.{conf,options}
//   DIR/ca/                        the local "TPM manufacturer" CA of swtpm_localca:
//     swtpm-localca-rootca-cert.pem  root (the trust anchor, `manufacturer_ca`)
//     issuercert.pem                 intermediate that signs EK certificates
//   DIR/machines/<name>/           TPM state, swtpm.pid, swtpm.log, and the
//                                  EK certificates read back from NV
//                                  (ek-<kind>.pem)
//   DIR/tmp/                       TMPDIR of the helper programs
//
// The CA is created once per DIR and reused by later fleets in that DIR.
// Each machine is manufactured by `swtpm_setup --tpm2 --create-ek-cert
// --create-platform-cert --lock-nvram` (RSA 2048 EK + certificate at NV
// 0x01c00002, ECC P-384 EK + certificate at 0x01c00016 with swtpm 0.7), then
// served by `swtpm socket --daemon` on 127.0.0.1 ports P (TPM) and P+1
// (control). Start() returns once every instance answered TPM2_Startup.
//
// Lifetime: the swtpm daemons outlive the TpmFleet object and the process that
// started them; they belong to DIR. Stop them with Stop() / StopFleet(DIR)
// (which works from any process, e.g. after the starter crashed), or use
// testing::ScopedFleet, which stops them in its destructor.
//
// A DIR whose fleet is still running is refused (ALREADY_EXISTS). A DIR whose
// fleet was stopped is reused: its old machine state is deleted, the CA kept.
//
// Thread safety: Start/StopFleet on different DIRs may run concurrently (also
// from different processes); on one DIR they serialize on DIR/fleet.lock.
#ifndef AGENTROOT_SIMULATORS_TPM_FLEET_H_
#define AGENTROOT_SIMULATORS_TPM_FLEET_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::simulators {

// Upper bound on --machines: each instance costs ~3 MB and two ports.
inline constexpr int kMaxFleetMachines = 256;

struct FleetOptions {
  std::filesystem::path dir;
  int machines = 1;
  // Program names (searched in PATH) or paths.
  std::string swtpm = "swtpm";
  std::string swtpm_setup = "swtpm_setup";
  std::string swtpm_localca = "swtpm_localca";
  // Per machine: manufacturing, and waiting for TPM2_Startup to answer.
  std::chrono::milliseconds setup_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds ready_timeout{std::chrono::seconds(10)};
  // Machines manufactured in parallel; 0 = number of CPUs.
  int parallelism = 0;
};

struct MachineInfo {
  std::string name;                   // "machine-<i>"
  std::string tcti;                   // "swtpm:host=127.0.0.1,port=P"
  uint16_t port = 0;                  // P; the control channel is P+1
  std::filesystem::path state_dir;    // DIR/machines/<name>
  std::filesystem::path pid_file;
  pid_t pid = 0;
  // EK kind name ("rsa2048", "p384", ...) -> PEM file read back from NV.
  std::map<std::string, std::filesystem::path> ek_certificates;
};

struct FleetInfo {
  std::filesystem::path dir;
  std::filesystem::path manufacturer_ca;            // root certificate, PEM
  std::filesystem::path manufacturer_intermediate;  // EK issuer, PEM
  std::vector<MachineInfo> machines;

  // {"dir":..., "manufacturer_ca":..., "manufacturer_intermediate":...,
  //  "machines":[{"name", "tcti", "port", "state_dir", "pid_file", "pid",
  //  "ek_certificates": {"rsa2048": path, ...}}]}
  std::string ToJson() const;
  // Parses ToJson's output; INVALID_ARGUMENT on malformed input.
  static common::Result<FleetInfo> FromJson(std::string_view json);
};

// What StopFleet did.
struct StopReport {
  int stopped = 0;        // swtpm processes that were running and are gone
  int killed = 0;         // ... of which needed SIGKILL
  int stale_pid_files = 0;  // pid files whose process was gone or not ours
};

class TpmFleet {
 public:
  // Validates `options` (INVALID_ARGUMENT: machines outside [1,
  // kMaxFleetMachines], DIR not creatable/writable; NOT_FOUND: a swtpm
  // program missing), then manufactures and starts the fleet and writes
  // DIR/fleet.json. On any failure the instances started so far are stopped.
  static common::Result<std::unique_ptr<TpmFleet>> Start(const FleetOptions& options);

  TpmFleet(const TpmFleet&) = delete;
  TpmFleet& operator=(const TpmFleet&) = delete;
  // Does NOT stop the instances (see "Lifetime" above).
  ~TpmFleet() = default;

  const FleetInfo& info() const { return info_; }

  // StopFleet(info().dir).
  common::Result<StopReport> Stop() const;

 private:
  explicit TpmFleet(FleetInfo info) : info_(std::move(info)) {}

  FleetInfo info_;
};

// Stops every swtpm of the fleet in `dir` through the pid files under
// DIR/machines/*/swtpm.pid. A pid is signalled only when /proc/<pid>/cmdline
// names swtpm and DIR's machine state directory. SIGTERM, then SIGKILL after
// `grace`. Idempotent: a DIR with nothing running (or no fleet at all) is OK.
// Removes the pid files and DIR/fleet.json of the stopped fleet.
common::Result<StopReport> StopFleet(const std::filesystem::path& dir,
                                     std::chrono::milliseconds grace =
                                         std::chrono::seconds(3));

}  // namespace agentroot::simulators

#endif  // AGENTROOT_SIMULATORS_TPM_FLEET_H_
