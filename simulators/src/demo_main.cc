// agentroot-demo: the narrator of `make demo` (scripts/demo.sh).
//
// scripts/demo.sh starts the real pieces — two swtpm machines, the verifier
// (issuer key in SoftHSM2), the CRM API (agentroot-resource-demo), and
// agentroot-hostd on machine-0 with one agent manifest, sales-bot — and then
// runs this program, which plays everyone else and checks every outcome:
//   - the operators, each through the `agentroot` CLI with their own config
//     file (mutual TLS with their client certificate), every command shown as
//     typed: approve the host, register sales-bot with its manifest file,
//     the owner's self-review refused and the reviewer's approval, a JIT
//     elevation (the requester's own approval refused, another operator's
//     approval, the agent using it, the revocation), the inventory with its
//     findings, the audit export and its offline verification;
//   - the agent's life on machine-0: it runs the copy of
//     agentroot-example-agent that hostd's manifest names (hostd measures it,
//     quotes, gets the token), then an unregistered process (agentroot-token)
//     asking hostd for a token, then the agent again after its binary changed;
//   - the attacker on machine-1, with the agent's token and an old DPoP proof
//     and a key in machine-1's own TPM.
// Every verdict printed comes from a process's answer (exit status, HTTP
// status, the CLI's output, the verifier's audit log, the API's decision
// log). No token, proof, key or PIN is ever printed: tokens are named by jti,
// keys by RFC 7638 thumbprint.
//
// Exit status: 0 when every step behaved as expected; 1 (with "demo: FAILED:
// ..." on stderr) as soon as one did not; CLI11's codes for bad flags.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/host/client.h"
#include "agentroot/host/verifier_client.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/http/client.h"
#include "agentroot/simulators/tpm_fleet.h"
#include "subprocess.h"

namespace {

namespace fs = std::filesystem;
namespace att = agentroot::attestation;
namespace common = agentroot::common;
namespace http = agentroot::http;
namespace tpm = agentroot::hsm::tpm;
using agentroot::simulators::internal::ProcessResult;
using agentroot::simulators::internal::RunProcess;
using common::Json;

// ------------------------------------------------------------------ output

struct DemoFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& what) { throw DemoFailure(what); }

bool g_color = false;
int g_step = 1;
int g_checks = 0;

void Step(const std::string& title) {
  if (g_color) {
    std::printf("\n\033[1m== %d. %s\033[0m\n", g_step++, title.c_str());
  } else {
    std::printf("\n== %d. %s\n", g_step++, title.c_str());
  }
  std::fflush(stdout);
}

void Say(const std::string& line) {
  std::printf("   %s\n", line.c_str());
  std::fflush(stdout);
}

// A verdict that matched the expectation.
void Ok(const std::string& line) {
  ++g_checks;
  if (g_color) {
    std::printf("   \033[32mok\033[0m  %s\n", line.c_str());
  } else {
    std::printf("   ok  %s\n", line.c_str());
  }
  std::fflush(stdout);
}

template <typename T>
T Must(common::Result<T> result, const std::string& what) {
  if (!result.ok()) Fail(what + ": " + result.status().ToString());
  return std::move(result).value();
}

std::string Short(std::string_view s, std::size_t n = 16) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n)) + "…";
}

std::string Utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) { return common::HexEncode(common::Sha256(common::AsBytes(data))); }

// The claims of a JWS compact serialization (already verified by whoever
// issued it; the demo only reads them to print facts).
Json Claims(std::string_view jwt) {
  return Must(common::ParseJwsCompact(jwt, common::JwsPayload::kJsonObject), "JWT").payload_json;
}

// The first line of a process's stderr, for narration (never holds a token:
// agentroot-token and the example agent print problem codes and details).
std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 240 ? line.substr(0, 240) + "…" : line;
}

// --------------------------------------------------------------- HTTP calls

Json Parse(const http::Response& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json::object() : j;
}

// What a response says, for failure messages: never the body of a success
// (it may hold a token or an EAR), only problem / OAuth error fields.
std::string Describe(const http::Response& r) {
  std::string out = "HTTP " + std::to_string(r.status);
  Json j = Parse(r);
  for (const char* k : {"type", "detail", "error", "error_description"}) {
    if (j.contains(k) && j[k].is_string()) out += std::string(" ") + k + "=" + j[k].get<std::string>();
  }
  return out;
}

// An HTTPS client of the CRM API (the attacker's).
class Api {
 public:
  Api(std::string who, std::unique_ptr<http::HttpClient> client) : who_(std::move(who)), client_(std::move(client)) {}

  http::Response Send(const http::ClientRequest& request) {
    return Must(client_->Send(request), who_ + ": " + request.method + " " + request.target);
  }

 private:
  std::string who_;
  std::unique_ptr<http::HttpClient> client_;
};

std::unique_ptr<Api> Connect(const std::string& who, const std::string& url, const std::string& ca_pem) {
  http::ClientOptions options;
  options.base_url = url;
  options.ca_pem = ca_pem;
  return std::make_unique<Api>(who, Must(http::HttpClient::Create(std::move(options)), who + ": HTTPS client"));
}

// ------------------------------------------------------------------ options

struct Options {
  std::string verifier_url;
  fs::path ca, cli, operator_configs, fleet_json, work_dir;
  std::string infra = "carol", owner = "alice", reviewer = "bob", auditor = "audrey";
  std::string agent = "sales-bot", host_group = "crm-hosts", scope = "crm.read";
  fs::path hostd_socket, hostd_state_dir, agent_exe, token_cli, api_log;
  int hostd_pid = 0;
  std::string api_url, audience = "https://crm.example";
  int first_step = 1;
};

// ----------------------------------------------------------------- hostd

// Polls hostd's /v1/status until its enrollment is `state`.
agentroot::host::HostStatus WaitForHostd(agentroot::host::Client& hostd, const std::string& state,
                                         std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  agentroot::host::HostStatus last;
  while (true) {
    auto s = hostd.Status();
    if (s.ok()) {
      last = *s;
      if (last.enrollment == state) return last;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Fail("hostd did not reach enrollment '" + state + "' within " + std::to_string(timeout.count()) +
           " s (last: " + (s.ok() ? last.enrollment + " " + last.detail : s.status().ToString()) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

ProcessResult Run(const std::vector<std::string>& argv, const std::string& what) {
  agentroot::simulators::internal::ProcessOptions options;
  options.timeout = std::chrono::seconds(60);
  return Must(RunProcess(argv, options), what);
}

// ------------------------------------------------------------------ the CLI

// One `agentroot` run: its exit code, stdout and stderr.
struct CliRun {
  int exit_code = -1;
  std::string out, err;
  // stdout as JSON (for `-o json`); an empty object when it is not JSON.
  Json json() const {
    Json j = Json::parse(out, nullptr, false);
    return j.is_discarded() ? Json::object() : j;
  }
};

void Indented(const std::string& text) {
  for (const std::string& line : Lines(text)) std::printf("     %s\n", line.c_str());
  std::fflush(stdout);
}

// The operators act through the `agentroot` CLI, each with their own config
// file (<configs>/<who>.toml: verifier URL, TLS CA, certificate, key). Each
// run is shown as the operator types it, "who$ agentroot ARGS" (the
// `--config` left out), followed by its output: table output is shown as it
// is; JSON output (`-o json`, which the narrator reads) is not, the caller
// summarizes it. Relative paths in ARGS are relative to the work directory
// (the narrator's working directory).
class OperatorCli {
 public:
  enum class Show { kCommandAndOutput, kNothing };

  OperatorCli(fs::path binary, fs::path configs) : binary_(std::move(binary)), configs_(std::move(configs)) {}

  // Runs `agentroot --config <configs>/<who>.toml ARGS`; the demo fails
  // unless it exits with `expect`. A refusal must be one line on stderr.
  CliRun As(const std::string& who, const std::vector<std::string>& args, int expect = 0,
            Show show = Show::kCommandAndOutput) const {
    const bool shown = show == Show::kCommandAndOutput;
    if (shown) ShowCommand(who, args);
    std::vector<std::string> argv = {binary_.string(), "--config", (configs_ / (who + ".toml")).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = Run(argv, "agentroot");
    CliRun out{r.exit_code, r.stdout_text, r.stderr_text};
    const std::string command = "`agentroot " + Join(args) + "` as " + who;
    if (r.exit_code != expect) {
      Fail(command + ": expected exit " + std::to_string(expect) + ", got " + r.Describe());
    }
    if (expect != 0 && (std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n') != 1 ||
                        r.stderr_text.rfind("agentroot: ", 0) != 0)) {
      Fail(command + ": expected one line 'agentroot: …' on stderr, got: " + r.stderr_text);
    }
    if (shown) {
      bool json = false;
      for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if ((args[i] == "-o" || args[i] == "--output") && args[i + 1] == "json") json = true;
      }
      if (!json) Indented(out.out);
      Indented(out.err);  // notes (an anchor, a fingerprint) or the one-line error
    }
    return out;
  }

  static void ShowCommand(const std::string& who, const std::vector<std::string>& args) {
    const std::string line = who + "$ agentroot " + Join(args);
    if (g_color) {
      std::printf("   \033[36m%s\033[0m\n", line.c_str());
    } else {
      std::printf("   %s\n", line.c_str());
    }
    std::fflush(stdout);
  }

 private:
  // As a shell user would type them: words with spaces or quotes quoted.
  static std::string Join(const std::vector<std::string>& args) {
    std::string line;
    for (const std::string& a : args) {
      const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "0123456789_.,:/=+@-") == std::string::npos;
      line += (line.empty() ? "" : " ") + (plain ? a : "\"" + a + "\"");
    }
    return line;
  }

  fs::path binary_, configs_;
};

// ------------------------------------------------------------------- demo

void RunDemo(const Options& o) {
  g_step = o.first_step;
  const common::Clock& clock = common::Clock::System();
  const std::string ca_pem = ReadFile(o.ca);
  auto fleet = Must(agentroot::simulators::FleetInfo::FromJson(ReadFile(o.fleet_json)), "fleet " + o.fleet_json.string());
  if (fleet.machines.size() < 2) Fail("the demo needs a fleet of at least 2 machines");
  const std::string m0 = fleet.machines[0].name, m1 = fleet.machines[1].name;
  fs::create_directories(o.work_dir);
  // The files the operators name (the manifest, the audit export) are written
  // here and named relative to it, as an operator in their directory would.
  fs::current_path(o.work_dir);

  const OperatorCli cli(o.cli, o.operator_configs);
  auto verifier = Must(agentroot::host::VerifierClient::Create(o.verifier_url, ca_pem, 1), "verifier client");
  const auto metadata = Must(verifier->Metadata(), "verifier metadata");
  agentroot::host::ClientOptions hostd_options;
  hostd_options.socket_path = o.hostd_socket.string();
  auto hostd = Must(agentroot::host::Client::Create(std::move(hostd_options)), "hostd client");
  const std::string agent_id = "spiffe://example.org/agent/" + o.agent;
  const std::string accounts_url = o.api_url + "/v1/accounts";
  const std::string exe_v1 = Sha256Hex(ReadFile(o.agent_exe));

  // The agent process: the copy of agentroot-example-agent hostd's manifest
  // names, asking for `scope` and calling GET `path`; `save` captures the
  // headers it sent.
  auto run_agent = [&](const fs::path& save, const std::string& scope = "", const std::string& path = "/v1/accounts") {
    std::vector<std::string> argv = {o.agent_exe.string(), "--api",   o.api_url,
                                      "--ca",               o.ca.string(), "--audience",
                                      o.audience,           "--scope", scope.empty() ? o.scope : scope,
                                      "--socket",           o.hostd_socket.string()};
    if (!save.empty()) {
      argv.push_back("--save-request");
      argv.push_back(save.string());
    }
    argv.push_back("GET");
    argv.push_back(path);
    return Run(argv, o.agent);
  };
  // The token and the DPoP proof an agent's request carried (--save-request).
  auto captured_headers = [&](const fs::path& saved) {
    std::pair<std::string, std::string> token_and_proof;
    for (const std::string& line : Lines(ReadFile(saved))) {
      if (line.rfind("Authorization: DPoP ", 0) == 0) token_and_proof.first = line.substr(20);
      if (line.rfind("DPoP: ", 0) == 0) token_and_proof.second = line.substr(6);
    }
    if (token_and_proof.first.empty() || token_and_proof.second.empty()) {
      Fail("the agent's captured request (" + saved.string() + ") lacks its headers");
    }
    return token_and_proof;
  };

  // ---------------------------------------------------------------- 2
  Step(m0 + ": hostd enrolls; with the agentroot CLI " + o.infra + " approves the host, " + o.owner + " registers " +
       o.agent + ", " + o.reviewer + " reviews it");
  Say("agentroot-hostd runs on " + m0 + " (pid " + std::to_string(o.hostd_pid) + ", TCTI " + fleet.machines[0].tcti +
      "): its own state directory and a Unix socket for the agents on the host");
  auto pending = WaitForHostd(*hostd, "pending", std::chrono::seconds(30));
  Ok("hostd enrolled: EK certificate + a new AK, TPM2_ActivateCredential proved they share a TPM -> host " +
     pending.host_id + " is '" + pending.enrollment + "' (the group " + o.host_group + " is not auto-approved)");
  CliRun pending_hosts = cli.As(o.infra, {"hosts", "list", "--status", "pending"});
  if (pending_hosts.out.find(pending.host_id) == std::string::npos) {
    Fail("`hosts list --status pending` does not show host " + pending.host_id);
  }
  CliRun approved = cli.As(o.infra, {"-o", "json", "hosts", "approve", pending.host_id});
  if (approved.json().value("status", "") != "approved") {
    Fail("hosts approve: expected status approved: " + approved.out);
  }
  Say("-> host " + pending.host_id + " is " + approved.json().value("status", ""));
  auto host = WaitForHostd(*hostd, "approved", std::chrono::seconds(15));
  Ok("hostd learns it is approved (its next status poll is answered) -> '" + host.enrollment + "'");

  const std::string manifest_file = o.agent + ".manifest.json";
  {
    std::ofstream out(manifest_file, std::ios::binary | std::ios::trunc);
    out << Json{{"exe_sha256", exe_v1}, {"files", Json::object()}, {"allowed_tools", {"crm.accounts.read"}}}.dump(2)
        << "\n";
    if (!out) Fail("cannot write " + manifest_file);
  }
  Say(manifest_file + ": exe_sha256 = the SHA-256 of " + o.agent_exe.filename().string() + " (" + Short(exe_v1) +
      "), no other files, allowed_tools for the reviewers");
  CliRun registered = cli.As(o.owner, {"-o", "json", "agents", "register", o.agent, "--owner", o.owner, "--group",
                                        o.host_group, "--scope", o.scope, "--audience", o.audience, "--max-ttl", "5m",
                                        "--expires-in", "1d", "--manifest", manifest_file});
  const Json created = registered.json();
  if (created.value("id", "") != agent_id || created.value("manifest_version", int64_t{0}) < 1) {
    Fail("agents register: expected id " + agent_id + " and a manifest version, got " + registered.out);
  }
  const std::string version = std::to_string(created.value("manifest_version", int64_t{0}));
  Ok(o.owner + " (owner) registered " + agent_id + " (scope " + o.scope +
     ", tokens <= 5 min, for 1 day) with manifest v" + version);
  CliRun queue = cli.As(o.reviewer, {"reviews", "list"});
  if (queue.out.find(o.agent) == std::string::npos) Fail("`reviews list` does not show " + o.agent + " v" + version);
  CliRun self_review = cli.As(o.owner, {"reviews", "approve", o.agent, version, "--comment", "lgtm"}, 4);
  if (self_review.err.find("403") == std::string::npos) {
    Fail("the owner's self-review: expected a 403: " + self_review.err);
  }
  Ok(o.owner + " (also a reviewer) approves her own agent's manifest -> refused, exit 4 (separation of duties)");
  CliRun review = cli.As(o.reviewer, {"-o", "json", "reviews", "approve", o.agent, version, "--comment",
                                       "read-only CRM sync; binary from CI"});
  if (review.json().value("status", "") != "approved") Fail("reviews approve: expected status approved: " + review.out);
  Ok(o.reviewer + " (reviewer, not an owner) approves manifest v" + version + " -> " +
     review.json().value("status", ""));

  // ---------------------------------------------------------------- 3
  Step("The agent on " + m0 + " gets a token through hostd and reads the CRM's accounts");
  Say("it runs " + o.agent_exe.string() + " (a copy of agentroot-example-agent); it holds no key and no secret");
  const fs::path captured = o.work_dir / "captured-request.txt";
  ProcessResult first = run_agent(captured);
  if (first.exit_code != 0 || first.stdout_text.rfind("200 ", 0) != 0) {
    Fail("the agent's request: expected exit 0 and HTTP 200, got " + first.Describe() + " " +
         FirstLine(first.stdout_text));
  }
  // What the agent sent, as an attacker would capture it (step 5).
  const auto [stolen_token, stolen_proof] = captured_headers(captured);
  Json claims = Claims(stolen_token);
  const std::string jti = claims.value("jti", "");
  const std::string jkt = claims.contains("cnf") ? claims["cnf"].value("jkt", "") : "";
  Json accounts = Json::parse(first.stdout_text.substr(4), nullptr, false);
  std::size_t n_accounts = 0;
  if (accounts.is_object() && accounts.contains("accounts") && accounts["accounts"].is_array()) {
    n_accounts = accounts["accounts"].size();
  } else if (accounts.is_array()) {
    n_accounts = accounts.size();
  }
  Say("hostd identified the caller by its socket credentials, measured its executable into PCR 15, created");
  Say("its key in " + m0 + "'s TPM (certified by the AK), quoted, and exchanged the verifier's EAR for a token");
  Ok("GET " + accounts_url + " -> HTTP 200 (" + std::to_string(n_accounts) + " accounts); token jti " + jti +
     ", sub " + claims.value("sub", "") + ", expires " + Utc(claims.value("exp", int64_t{0})));
  Say("the token is bound to the agent's TPM key: cnf.jkt " + jkt + "; every request carries a DPoP proof");
  Say("signed inside the TPM (the token itself is never printed)");

  // ---------------------------------------------------------------- 4
  Step("An unregistered process on " + m0 + " asks hostd for a token");
  ProcessResult shadow = Run({o.token_cli.string(), "--socket", o.hostd_socket.string(), "token", "--audience",
                              o.audience, "--scope", o.scope},
                             "agentroot-token");
  if (shadow.exit_code != 1 || shadow.stderr_text.find("unknown_agent") == std::string::npos) {
    Fail("an unregistered process asking for a token: expected exit 1 with unknown_agent, got " + shadow.Describe());
  }
  Ok("agentroot-token run directly (no manifest names it) -> refused, exit 1: " + FirstLine(shadow.stderr_text));
  const fs::path token_cli = fs::canonical(o.token_cli);
  Json shadow_record;
  for (const std::string& line : Lines(ReadFile(o.hostd_state_dir / "shadow_agents.jsonl"))) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_object() && j.value("exe", "") == token_cli.string()) shadow_record = j;
  }
  if (!shadow_record.is_object()) Fail("hostd's shadow_agents.jsonl has no record of " + token_cli.string());
  Ok("hostd recorded it as a shadow agent (shadow_agents.jsonl): pid " +
     std::to_string(shadow_record.value("pid", 0)) + ", uid " + std::to_string(shadow_record.value("uid", 0)) +
     ", exe " + shadow_record.value("exe", "") + ", sha256 " + Short(shadow_record.value("exe_sha256", "")));
  // The verifier's view: hostd reports it in the background (a TPM2_Quote by
  // the host's AK over the report); the auditor reads the inventory.
  Json reported;
  const auto report_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int attempt = 0; !reported.is_object(); ++attempt) {
    CliRun inventory = cli.As(o.auditor, {"-o", "json", "inventory"}, 0,
                               attempt == 0 ? OperatorCli::Show::kCommandAndOutput : OperatorCli::Show::kNothing);
    const Json listed = inventory.json();
    for (const Json& entry : listed.value("shadow_agents", Json::array())) {
      if (entry.value("host_id", "") == pending.host_id &&
          entry.value("exe_path", "") == shadow_record.value("exe", "") &&
          entry.value("exe_sha256", "") == shadow_record.value("exe_sha256", "")) {
        reported = entry;
      }
    }
    if (reported.is_object()) break;
    if (std::chrono::steady_clock::now() > report_deadline) {
      Fail("the inventory (`agentroot inventory` as " + o.auditor + ") does not show hostd's record within 20 s: " +
           inventory.out);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Ok(o.auditor + " (auditor) sees it in the inventory's shadow agents (reported by hostd): host " +
     reported.value("host_id", "") + ", exe " + reported.value("exe_path", "") + ", sha256 " +
     Short(reported.value("exe_sha256", "")) + ", first seen " + Utc(reported.value("first_seen", int64_t{0})));

  // ---------------------------------------------------------------- 5
  Step("The attacker copies the agent's token and an old DPoP proof to " + m1 + " and calls the API");
  tpm::TpmDeviceOptions device_options;
  device_options.tcti = fleet.machines[1].tcti;
  auto m1_tpm = Must(tpm::TpmDevice::Open(std::move(device_options)), m1 + ": open TPM");
  const fs::path m1_state = o.work_dir / m1;
  fs::create_directories(m1_state);
  auto m1_keys = Must(tpm::TpmKeyManager::Create(m1_tpm, m1_state), m1 + ": key manager");
  auto thief_key = Must(m1_keys->Generate("thief", agentroot::hsm::KeyPolicy{}), m1 + ": key");
  Say("they hold the token (jti " + jti + "), the proof the agent sent, and a key in " + m1 + "'s TPM (" +
      Short(thief_key->public_jwk().Thumbprint(), 12) + "); not " + m0 + "'s key");
  auto api = Connect("attacker", o.api_url, ca_pem);
  auto attempt = [&](const std::string& what, const std::string& authorization, const std::string& proof,
                     std::string_view expected_error) {
    http::ClientRequest r;
    r.method = "GET";
    r.target = "/v1/accounts";
    r.headers.emplace("Authorization", authorization);
    if (!proof.empty()) r.headers.emplace("DPoP", proof);
    http::Response response = api->Send(r);
    std::string challenge(http::FindHeader(response.headers, "WWW-Authenticate").value_or(""));
    if (response.status != 401 || challenge.find("error=\"" + std::string(expected_error) + "\"") == std::string::npos) {
      Fail(what + ": expected HTTP 401 " + std::string(expected_error) + ", got " + Describe(response) +
           " WWW-Authenticate: " + challenge);
    }
    Ok(what + " -> HTTP 401 " + std::string(expected_error));
  };
  attempt("the token alone, no DPoP proof", "DPoP " + stolen_token, "", att::oauth_error::kInvalidToken);
  attempt("the token as a Bearer token", "Bearer " + stolen_token, "", att::oauth_error::kInvalidToken);
  std::string thief_proof = Must(att::CreateDpopProof(*thief_key, "GET", accounts_url, clock.NowUnixSeconds(),
                                                      stolen_token),
                                 "DPoP proof by " + m1 + "'s key");
  attempt("the token + a fresh proof signed by " + m1 + "'s TPM key (not the token's cnf.jkt)", "DPoP " + stolen_token,
          thief_proof, att::oauth_error::kInvalidDpopProof);
  attempt("the token + the agent's old proof, replayed", "DPoP " + stolen_token, stolen_proof,
          att::oauth_error::kInvalidDpopProof);
  Say("a valid token is not enough: each request needs a fresh proof from the one TPM key it is bound to");

  // ---------------------------------------------------------------- 6
  Step("Just-in-time elevation: " + o.owner +
       " asks for crm.export for 10 minutes, someone else approves, she ends it");
  CliRun requested = cli.As(o.owner, {"-o", "json", "jit", "request", o.agent, "--scope", "crm.export", "--for", "10m",
                                       "--reason", "quarterly export for finance"});
  const std::string grant = requested.json().value("id", "");
  if (grant.empty() || requested.json().value("state", "") != "pending") {
    Fail("jit request: expected a pending grant, got " + requested.out);
  }
  Say("-> grant " + grant + " is pending");
  CliRun own_approval = cli.As(o.owner, {"jit", "approve", grant}, 4);
  if (own_approval.err.find("403") == std::string::npos) {
    Fail("the requester's approval: expected a 403: " + own_approval.err);
  }
  Ok(o.owner + " approves her own request -> refused, exit 4 (someone else must)");
  CliRun granted = cli.As(o.reviewer, {"-o", "json", "jit", "approve", grant, "--comment", "ok for today's close"});
  if (granted.json().value("state", "") != "active") Fail("jit approve: expected state active, got " + granted.out);
  Ok(o.reviewer + " approves it -> active until " + Utc(granted.json().value("expires_at", int64_t{0})) +
     " (the window starts now)");
  CliRun grants = cli.As(o.auditor, {"jit", "list", "--agent", o.agent});
  if (grants.out.find(grant) == std::string::npos || grants.out.find("active") == std::string::npos) {
    Fail("`jit list` does not show " + grant + " active");
  }
  const fs::path export_request = o.work_dir / "export-request.txt";
  ProcessResult exported_crm = run_agent(export_request, "crm.export", "/v1/export");
  const auto export_fetched = std::chrono::steady_clock::now();
  if (exported_crm.exit_code != 0 || exported_crm.stdout_text.rfind("200 ", 0) != 0) {
    Fail("the agent's export with the JIT scope: expected exit 0 and HTTP 200, got " + exported_crm.Describe() + " " +
         FirstLine(exported_crm.stdout_text));
  }
  const Json jit_claims = Claims(captured_headers(export_request).first);
  const Json named = jit_claims.value("agentroot.jit", Json::array());
  if (jit_claims.value("scope", "").find("crm.export") == std::string::npos ||
      std::find(named.begin(), named.end(), Json(grant)) == named.end()) {
    Fail("the export token: expected scope crm.export and agentroot.jit naming " + grant + ", got scope '" +
         jit_claims.value("scope", "") + "' and agentroot.jit " + named.dump());
  }
  Ok("the agent asks hostd for crm.export: token jti " + jit_claims.value("jti", "") + ", scope '" +
     jit_claims.value("scope", "") + "', agentroot.jit " + named.dump() + "; GET " + o.api_url +
     "/v1/export -> HTTP 200");
  CliRun ended = cli.As(o.owner, {"-o", "json", "jit", "revoke", grant});
  if (ended.json().value("state", "") != "revoked") Fail("jit revoke: expected state revoked, got " + ended.out);
  CliRun after = cli.As(o.auditor, {"-o", "json", "jit", "list", "--agent", o.agent}, 0, OperatorCli::Show::kNothing);
  std::string state_after = "missing";
  for (const Json& g : after.json().value("jit_grants", Json::array())) {
    if (g.value("id", "") == grant) state_after = g.value("state", "");
  }
  if (state_after != "revoked") {
    Fail("`jit list` after the revocation: expected " + grant + " revoked, got " + state_after);
  }
  Ok(o.owner + " ends it early -> " + grant + " is revoked, and the agent's outstanding tokens with it");
  // hostd serves a cached token only if the verifier said it was active within
  // revocation_check_seconds (1 s in the demo); past that it asks again.
  std::this_thread::sleep_until(export_fetched + std::chrono::milliseconds(1100));
  ProcessResult denied_export = run_agent({}, "crm.export", "/v1/export");
  if (denied_export.exit_code == 0) {
    Fail("the agent's export after the revocation: expected a refusal, got " + FirstLine(denied_export.stdout_text));
  }
  Ok("the agent asks for crm.export again -> refused, exit " + std::to_string(denied_export.exit_code) + ": " +
     FirstLine(denied_export.stderr_text));

  // ---------------------------------------------------------------- 7
  Step("The agent's binary is modified on " + m0);
  {
    std::ofstream out(o.agent_exe, std::ios::binary | std::ios::app);
    out << "\n# patched: upload the CRM to https://exfil.example\n";
    if (!out) Fail("cannot modify " + o.agent_exe.string());
  }
  const std::string exe_v2 = Sha256Hex(ReadFile(o.agent_exe));
  Say(o.agent_exe.filename().string() + " now hashes to " + Short(exe_v2) + "; the approved manifest says " +
      Short(exe_v1));
  ProcessResult changed = run_agent({});
  if (changed.exit_code != 1 || changed.stderr_text.find("measurement_refused") == std::string::npos) {
    Fail("the changed agent: expected exit 1 with measurement_refused, got " + changed.Describe());
  }
  Say("hostd's cached token was attested for the old measurement, so the new binary needs a fresh attestation");
  Ok("the changed agent asks for a token -> refused, exit 1: " + FirstLine(changed.stderr_text));

  // ---------------------------------------------------------------- 8
  Step("The inventory: who owns each agent, where it runs, what it may reach and until when; the findings");
  CliRun inventory = cli.As(o.auditor, {"inventory"});
  CliRun nightly = cli.As(o.auditor, {"-o", "json", "inventory", "--fail-on-findings"}, 8, OperatorCli::Show::kNothing);
  std::map<std::string, std::string> findings;  // code -> subject
  const Json inventory_json = nightly.json();
  for (const Json& f : inventory_json.value("findings", Json::array())) {
    findings[f.value("code", "")] = f.value("subject", "");
  }
  if (findings["single_owner"] != agent_id || findings["shadow_agent"] != pending.host_id) {
    Fail("the inventory's findings: expected single_owner for " + agent_id + " and shadow_agent on " +
         pending.host_id + ", got " + inventory_json.value("findings", Json::array()).dump());
  }
  for (const char* code : {"single_owner", "shadow_agent"}) {
    if (inventory.out.find(code) == std::string::npos) Fail(std::string("the inventory table does not show ") + code);
  }
  Ok("findings: single_owner (" + o.owner + " is " + o.agent + "'s only owner), shadow_agent (the unregistered " +
     "process on " + pending.host_id + "); --fail-on-findings exits 8 for a nightly job");

  // ---------------------------------------------------------------- 9
  Step("Summary: what was allowed and refused, and why (the verifier's audit log and the API's decision log)");
  const std::string audit_file = "audit.jsonl";
  std::error_code ignored;
  fs::remove(audit_file, ignored);
  CliRun audit_export = cli.As(o.auditor, {"audit", "export", "--out", audit_file});
  CliRun verified = cli.As(o.auditor, {"-o", "json", "audit", "verify", audit_file});
  const Json chain = verified.json();
  if (chain.value("records", int64_t{0}) < 10 || chain.value("head", "").empty()) {
    Fail("audit verify: expected the records and the head, got " + verified.out);
  }
  const std::string exported = ReadFile(audit_file);
  if (exported.find(stolen_token) != std::string::npos) Fail("the audit log contains the whole token");
  Ok(o.auditor + " (auditor) exports the audit log and verifies it offline: " +
     std::to_string(chain.value("records", int64_t{0})) + " records, hash chain verified, head " +
     Short(chain.value("head", ""), 24) + " (kept for the next export)");
  struct Row {
    std::string source, who, what, verdict, why;
  };
  std::vector<Row> rows;
  std::map<std::string, int> seen;  // "action verdict" -> count, for the checks below
  for (const std::string& line : Lines(exported)) {
    auto entry = Must(att::store::ParseAuditJsonLine(line), "audit record");
    const auto& rec = entry.record;
    std::string verdict = rec.decision == att::store::AuditDecision::kAllow  ? "allowed"
                          : rec.decision == att::store::AuditDecision::kDeny ? "REFUSED"
                                                                              : "-";
    std::string why;
    for (const auto& r : rec.reasons) why += (why.empty() ? "" : ", ") + r;
    seen[rec.action + " " + verdict]++;
    if (rec.decision == att::store::AuditDecision::kInfo) continue;  // bootstrap, revocations: no verdict
    rows.push_back({"verifier", rec.actor, rec.action + " " + rec.subject, verdict, why});
  }
  int api_allowed = 0, api_refused = 0;
  for (const std::string& line : Lines(ReadFile(o.api_log))) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("msg", "") != "decision") continue;
    bool allowed = j.value("status", 0) / 100 == 2;
    (allowed ? api_allowed : api_refused)++;
    std::string why = j.value("detail", "");  // starts with the OAuth error
    if (why.rfind(j.value("error", ""), 0) != 0) why = j.value("error", "") + ": " + why;
    rows.push_back({"CRM API", j.value("sub", "(no identity)"), j.value("method", "") + " " + j.value("path", ""),
                    (allowed ? "allowed " : "REFUSED ") + std::to_string(j.value("status", 0)), why});
  }
  std::size_t w_who = 3, w_what = 4;
  for (const auto& r : rows) {
    w_who = std::max(w_who, std::min<std::size_t>(r.who.size(), 44));
    w_what = std::max(w_what, std::min<std::size_t>(r.what.size(), 60));
  }
  auto row = [&](const Row& r) {
    std::printf("   %-8s  %-*s  %-*s  %-12s %s\n", r.source.c_str(), static_cast<int>(w_who),
                Short(r.who, 44).c_str(), static_cast<int>(w_what), Short(r.what, 60).c_str(), r.verdict.c_str(),
                Short(r.why, 90).c_str());
  };
  Say("(records without a verdict, such as the bootstrap of the operators, are left out)");
  row({"from", "who", "what", "verdict", "why"});
  for (const auto& r : rows) row(r);
  std::fflush(stdout);
  // The outcomes the story rests on, as the logs record them.
  if (seen["token.issue allowed"] < 1) Fail("the audit log has no token issued to " + o.agent);
  if (seen["attest REFUSED"] < 1) {
    Fail("the audit log does not record the changed binary's refused attestation");
  }
  if (seen["manifest.review REFUSED"] < 1 || seen["jit.approve REFUSED"] < 1) {
    Fail("the audit log does not record the refused self-review and self-approval");
  }
  if (api_allowed != 2 || api_refused != 4) {
    Fail("the API's decision log: expected 2 allowed and 4 refused, got " + std::to_string(api_allowed) + " and " +
         std::to_string(api_refused));
  }
  Ok("the verifier issued " + std::to_string(seen["token.issue allowed"]) + " tokens to " + o.agent +
     " (one with the JIT scope), refused the self-review, the self-approval and the changed binary's");
  Say("attestation; the API allowed the agent's 2 requests and refused all " + std::to_string(api_refused) +
      " of the attacker's");
  Say("(the unregistered process got nothing: hostd refused it locally and reported it, the agent.shadow record)");
}

}  // namespace

int main(int argc, char** argv) {
  // tss2 logs every TPM error response at warning level; the demo reports
  // failures itself.
  setenv("TSS2_LOG", "all+NONE", 0);
  CLI::App app{
      "agentroot-demo: the narrator of `make demo` (scripts/demo.sh starts the processes).\n"
      "Plays the operators (the agentroot CLI) and an attacker on machine-1; runs the agent and an unregistered process\n"
      "against agentroot-hostd on machine-0. Exits non-zero when any step does not behave as expected."};
  Options o;
  app.add_option("--verifier", o.verifier_url, "Verifier base URL, e.g. https://127.0.0.1:8443")->required();
  app.add_option("--ca", o.ca, "CA certificate of the verifier's and the API's TLS certificates (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--cli", o.cli, "The agentroot CLI binary the operators use")->required()->check(CLI::ExistingFile);
  app.add_option("--operator-configs", o.operator_configs,
                 "Directory with one agentroot config file per operator, <operator>.toml")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--infra", o.infra, "Operator with the infra role")->capture_default_str();
  app.add_option("--owner", o.owner, "Operator with the owner role (and reviewer, to show the self-review rule)")
      ->capture_default_str();
  app.add_option("--reviewer", o.reviewer, "Operator with the reviewer role")->capture_default_str();
  app.add_option("--auditor", o.auditor, "Operator with the auditor role")->capture_default_str();
  app.add_option("--fleet", o.fleet_json, "fleet.json of a running swtpm fleet (agentroot-sim tpm start), >= 2 machines")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--work-dir", o.work_dir,
                 "Working directory: the manifest file, the audit export, the attacker's key blobs, captured requests")
      ->required();
  app.add_option("--hostd-socket", o.hostd_socket, "The socket of agentroot-hostd on machine-0")->required();
  app.add_option("--hostd-state-dir", o.hostd_state_dir, "hostd's state directory (for shadow_agents.jsonl)")
      ->required();
  app.add_option("--hostd-pid", o.hostd_pid, "hostd's pid (narration only)");
  app.add_option("--agent-exe", o.agent_exe, "The agent executable hostd's manifest names (a copy of "
                                             "agentroot-example-agent; step 6 modifies it)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--token-cli", o.token_cli, "agentroot-token, run as the unregistered process")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--api", o.api_url, "The CRM API's URL (agentroot-resource-demo), https://host:port")->required();
  app.add_option("--audience", o.audience, "The CRM API's audience")->capture_default_str();
  app.add_option("--api-log", o.api_log, "The CRM API's stderr (JSON lines, one per decision)")->required();
  app.add_option("--agent", o.agent, "Agent name (as hostd's manifest names it)")->capture_default_str();
  app.add_option("--host-group", o.host_group, "Host group hostd enrolls into")->capture_default_str();
  app.add_option("--first-step", o.first_step, "Number of the first narrated step")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  g_color = isatty(STDOUT_FILENO) != 0;
  try {
    // The narrator works in --work-dir (RunDemo changes into it).
    for (fs::path* p : {&o.ca, &o.cli, &o.operator_configs, &o.fleet_json, &o.work_dir, &o.hostd_socket,
                        &o.hostd_state_dir, &o.agent_exe, &o.token_cli, &o.api_log}) {
      *p = fs::absolute(*p);
    }
    RunDemo(o);
  } catch (const DemoFailure& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ndemo: FAILED: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ndemo: FAILED (unexpected exception): %s\n", e.what());
    return 1;
  }
  std::printf("\n   All %d checks behaved as expected.\n", g_checks);
  return 0;
}
