// agentroot-hostd: the host daemon. See docs/hostd.md.
//
// Configuration comes from a TOML file (--config, see
// config/hostd.example.toml); a few flags override single settings. Logs are
// JSON lines on stderr and never carry key material or whole tokens.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "agentroot/host/hostd.h"
#include "agentroot/http/server.h"

int main(int argc, char** argv) {
  // tss2 logs every TPM error response; hostd reports failures itself.
  setenv("TSS2_LOG", "all+NONE", 1);
  CLI::App app{
      "agentroot-hostd: the host daemon. Enrolls this host's TPM with the agentroot verifier, identifies and\n"
      "measures local agent processes, and hands them short-lived DPoP tokens and proofs signed by TPM keys\n"
      "over a Unix socket (HTTP + JSON; see docs/hostd.md).\n\n"
      "Start:  agentroot-hostd --config /etc/agentroot/hostd.toml\n"
      "        (an annotated example is config/hostd.example.toml; systemd: host/systemd/agentroot-hostd.service)\n"
      "Check:  agentroot-hostd --config FILE --check   (validates the configuration and the manifests, then exits)\n"
      "Then an operator approves the host on the verifier; agents call the socket, e.g.\n"
      "        curl --unix-socket /run/agentroot/hostd.sock http://hostd/v1/status"};
  std::string config_path, verifier_url, tcti, state_dir, socket_path, manifests_dir;
  bool check = false;
  app.add_option("-c,--config", config_path, "TOML configuration file")->required()->check(CLI::ExistingFile);
  app.add_option("--verifier-url", verifier_url, "Override verifier.url (https://host:port)");
  app.add_option("--tcti", tcti, "Override tpm.tcti (e.g. device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321)");
  app.add_option("--state-dir", state_dir, "Override host.state_dir");
  app.add_option("--socket", socket_path, "Override api.socket_path");
  app.add_option("--manifests-dir", manifests_dir, "Override host.manifests_dir");
  app.add_flag("--check", check, "Validate the configuration and the agent manifests, then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto config = agentroot::host::LoadHostdConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "agentroot-hostd: %s\n", config.status().ToString().c_str());
    return 2;
  }
  if (!verifier_url.empty()) config->verifier_url = verifier_url;
  if (!tcti.empty()) config->tcti = tcti;
  if (!state_dir.empty()) config->state_dir = state_dir;
  if (!socket_path.empty()) config->socket_path = socket_path;
  if (!manifests_dir.empty()) config->manifests_dir = manifests_dir;
  if (auto valid = config->Validate(); !valid.ok()) {
    std::fprintf(stderr, "agentroot-hostd: %s (file %s)\n", valid.ToString().c_str(), config_path.c_str());
    return 2;
  }
  if (check) {
    auto manifests = agentroot::host::LoadAgentManifests(config->manifests_dir);
    if (!manifests.ok()) {
      std::fprintf(stderr, "agentroot-hostd: %s\n", manifests.status().ToString().c_str());
      return 2;
    }
    for (const auto& e : manifests->errors) std::fprintf(stderr, "agentroot-hostd: %s\n", e.c_str());
    for (const auto& m : manifests->manifests) {
      std::printf("agent %s: exe %s, %zu files, proof_mode %s\n", m.name.c_str(), m.exe.c_str(), m.files.size(),
                  std::string(agentroot::host::ProofModeName(m.proof_mode)).c_str());
    }
    std::printf("configuration OK\n");
    return manifests->errors.empty() ? 0 : 1;
  }
  agentroot::http::BlockShutdownSignals();
  agentroot::host::HostdOptions options;
  options.config = std::move(*config);
  auto hostd = agentroot::host::Hostd::Create(std::move(options));
  if (!hostd.ok()) {
    std::fprintf(stderr, "agentroot-hostd: %s\n", hostd.status().ToString().c_str());
    return 1;
  }
  if (auto started = (*hostd)->Start(); !started.ok()) {
    std::fprintf(stderr, "agentroot-hostd: %s\n", started.ToString().c_str());
    return 1;
  }
  int sig = agentroot::http::WaitForShutdownSignal();
  std::cerr << agentroot::common::Json{{"level", "info"}, {"msg", "shutting down"}, {"signal", sig}}.dump() << std::endl;
  (*hostd)->Stop();
  return 0;
}
