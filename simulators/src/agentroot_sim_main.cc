// agentroot-sim: simulators for development, tests and demos.
//
//   agentroot-sim tpm start --machines N --dir DIR   start a swtpm fleet, print its JSON
//   agentroot-sim tpm stop --dir DIR                 stop it (idempotent)
//   agentroot-sim tpm ek-cert --tcti T [--kind K] --out FILE
//                                                    EK certificate from NV, as PEM
//
// Exit status: 0 on success, 1 on errors (one line on stderr), CLI11's codes
// for malformed command lines.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <exception>
#include <iostream>

#include "agentroot/hsm/tpm/ek_profile.h"
#include "agentroot/hsm/tpm/tpm_context.h"
#include "agentroot/simulators/tpm_fleet.h"
#include "pem.h"

namespace {

namespace sim = agentroot::simulators;
namespace tpm = agentroot::hsm::tpm;
using agentroot::common::Status;

int Fail(const Status& status) {
  std::string message = status.ToString();
  for (char& c : message) {
    if (c == '\n') c = ' ';
  }
  std::cerr << "agentroot-sim: error: " << message << "\n";
  return 1;
}

int RunStart(const sim::FleetOptions& options) {
  auto fleet = sim::TpmFleet::Start(options);
  if (!fleet.ok()) return Fail(fleet.status());
  std::cout << (*fleet)->info().ToJson() << std::endl;
  return 0;
}

int RunStop(const std::string& dir) {
  auto report = sim::StopFleet(dir);
  if (!report.ok()) return Fail(report.status());
  std::cout << "{\"stopped\": " << report->stopped << ", \"killed\": " << report->killed
            << ", \"stale_pid_files\": " << report->stale_pid_files << "}" << std::endl;
  return 0;
}

int RunEkCert(const std::string& tcti, const std::string& kind_name, const std::string& out) {
  auto kind = tpm::ParseEkKind(kind_name);
  if (!kind.ok()) return Fail(kind.status());
  auto ctx = tpm::TpmContext::Create(tcti);
  if (!ctx.ok()) return Fail(ctx.status());
  if (Status s = (*ctx)->Startup(); !s.ok()) return Fail(s);
  auto der = (*ctx)->ReadEkCertificate(*kind);
  if (!der.ok()) return Fail(der.status());
  auto pem = sim::internal::CertificateDerToPem(*der);
  if (!pem.ok()) return Fail(pem.status());
  if (Status s = sim::internal::WriteFileAtomically(out, *pem); !s.ok()) return Fail(s);
  return 0;
}

// Internal (used by simulators::testing::ScopedFleetDir through
// common::testing::CleanupWatchdog): blocks until `fd` delivers the dismiss
// line ("dismiss\n": its first byte is enough) or reaches EOF. EOF means the owner died without
// cleaning up: stop the fleet in DIR and, with --remove-dir, delete DIR.
int RunWatchdog(const std::string& dir, int fd, bool remove_dir) {
  char c = 0;
  ssize_t n = 0;
  do {
    n = ::read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 1 && c == 'd') return 0;
  auto report = sim::StopFleet(dir);
  // Without a successful stop the pid files are still needed: keep DIR.
  if (remove_dir && report.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return report.ok() ? 0 : Fail(report.status());
}

}  // namespace

int main(int argc, char** argv) {
  // tpm2-tss logs every failed connection attempt to stderr; our own errors
  // carry the TSS2_RC already. An explicit TSS2_LOG from the user wins.
  ::setenv("TSS2_LOG", "all+NONE", /*overwrite=*/0);

  CLI::App app{"agentroot simulators: swtpm fleets and friends"};
  app.require_subcommand(1);
  CLI::App* tpm_cmd = app.add_subcommand("tpm", "swtpm fleet: one swtpm per simulated machine");
  tpm_cmd->require_subcommand(1);

  sim::FleetOptions start_options;
  CLI::App* start = tpm_cmd->add_subcommand(
      "start",
      "Manufacture and start N swtpm instances with EK certificates from a local CA in DIR; "
      "prints the fleet JSON (also written to DIR/fleet.json). Fails if a fleet is already "
      "running in DIR; the state of a stopped fleet in DIR is replaced (the CA is kept).");
  start->add_option("--machines,-n", start_options.machines, "Number of machines")->required();
  start->add_option("--dir,-d", start_options.dir, "Fleet directory")->required();
  start->add_option("--swtpm", start_options.swtpm, "swtpm program")
      ->capture_default_str();
  start->add_option("--swtpm-setup", start_options.swtpm_setup, "swtpm_setup program")
      ->capture_default_str();
  start->add_option("--swtpm-localca", start_options.swtpm_localca, "swtpm_localca program")
      ->capture_default_str();
  start->add_option("--parallel", start_options.parallelism,
                    "Machines manufactured at once (0 = CPUs)");

  std::string stop_dir;
  CLI::App* stop = tpm_cmd->add_subcommand(
      "stop", "Stop the swtpm instances of the fleet in DIR (by pid file); idempotent");
  stop->add_option("--dir,-d", stop_dir, "Fleet directory")->required();

  std::string tcti;
  std::string kind = "rsa2048";
  std::string out;
  CLI::App* ek = tpm_cmd->add_subcommand("ek-cert", "Read an EK certificate from TPM NV as PEM");
  ek->add_option("--tcti", tcti, "TCTI, e.g. swtpm:host=127.0.0.1,port=2321")->required();
  ek->add_option("--kind", kind, "rsa2048 | p256 | p384")->capture_default_str();
  ek->add_option("--out,-o", out, "Output PEM file")->required();

  std::string watchdog_dir;
  int watchdog_fd = -1;
  bool watchdog_remove = false;
  CLI::App* watchdog = tpm_cmd->add_subcommand("watchdog", "internal: test fixture cleanup");
  watchdog->group("");  // Hidden from --help.
  watchdog->add_option("--dir", watchdog_dir)->required();
  watchdog->add_option("--fd", watchdog_fd)->required();
  watchdog->add_flag("--remove-dir", watchdog_remove);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (start->parsed()) return RunStart(start_options);
    if (stop->parsed()) return RunStop(stop_dir);
    if (ek->parsed()) return RunEkCert(tcti, kind, out);
    if (watchdog->parsed()) return RunWatchdog(watchdog_dir, watchdog_fd, watchdog_remove);
  } catch (const std::exception& e) {
    std::cerr << "agentroot-sim: error: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
