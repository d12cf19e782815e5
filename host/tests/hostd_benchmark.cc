// hostd's request path against one swtpm machine (docs/hostd.md
// "Performance"), through hostd's API on its Unix socket:
//   BM_CachedTokenAndProof/tpm|session  POST /v1/headers with a cached token:
//       token lookup + one DPoP proof (in the TPM, or in software);
//   BM_FreshAttestation  challenge -> measure/extend -> quote -> attest ->
//       token exchange, p50/p99 as counters.
// The verifier runs in process (host/testing/hostd_testbed.h).
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "agentroot/common/json.h"
#include "agentroot/simulators/testing/child_process.h"
#include "hostd_testbed.h"

namespace agentroot::host {
namespace {

using testing::HostdTestbed;

std::unique_ptr<HostdTestbed> Testbed(const std::string& proof_mode) {
  auto bed = std::make_unique<HostdTestbed>();
  HostdTestbed::Options options;
  options.token_rate_per_minute = 1000000;
  options.challenge_rate_per_minute = 1000000;
  common::Status s = bed->Init(options);
  if (s.ok()) {
    bed->WriteManifest(proof_mode);
    s = bed->StartApproved();
  }
  if (!s.ok()) return nullptr;
  return bed;
}

void CachedTokenAndProof(benchmark::State& state, const std::string& mode) {
  state.SetLabel("ceiling=ecdsap256:sign");
  auto bed = Testbed(mode);
  if (!bed) {
    state.SkipWithError("testbed setup failed");
    return;
  }
  auto socket = bed->Socket();
  const std::string body = common::Json{{"audience", testing::kTestbedCrm}, {"scope", "crm.read"}, {"method", "GET"},
                                        {"url", std::string(testing::kTestbedCrm) + "/v1/accounts"}}.dump();
  auto warm = socket->Post("/v1/headers", body);
  if (!warm.ok() || warm->status != 200) {
    state.SkipWithError("no token");
    return;
  }
  const uint64_t signatures_before = bed->hostd_->stats().agent_key_signatures;
  for (auto _ : state) {
    auto r = socket->Post("/v1/headers", body);
    if (!r.ok() || r->status != 200) {
      state.SkipWithError("request failed");
      break;
    }
  }
  state.counters["tpm_signatures_per_request"] =
      static_cast<double>(bed->hostd_->stats().agent_key_signatures - signatures_before) /
      static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void BM_CachedTokenAndProofTpm(benchmark::State& state) { CachedTokenAndProof(state, "tpm"); }
void BM_CachedTokenAndProofSession(benchmark::State& state) { CachedTokenAndProof(state, "session"); }
BENCHMARK(BM_CachedTokenAndProofTpm)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CachedTokenAndProofSession)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_FreshAttestation(benchmark::State& state) {
  state.SetLabel("ceiling=ecdsap256:sign");
  auto bed = Testbed("tpm");
  if (!bed) {
    state.SkipWithError("testbed setup failed");
    return;
  }
  const ProcessInfo self = bed->Self();
  if (!bed->hostd_->Token(self, testing::kTestbedCrm, "crm.read").ok()) {  // key creation and registration
    state.SkipWithError("no token");
    return;
  }
  std::vector<double> ms;
  for (auto _ : state) {
    bed->clock_.Advance(std::chrono::seconds(250));  // past renew_at_fraction: the next call attests afresh
    auto start = std::chrono::steady_clock::now();
    auto g = bed->hostd_->Token(self, testing::kTestbedCrm, "crm.read");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (!g.ok() || g->from_cache) {
      state.SkipWithError("not a fresh attestation");
      break;
    }
  }
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) {
    state.counters["p50_ms"] = ms[ms.size() / 2];
    state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  }
}
BENCHMARK(BM_FreshAttestation)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(100);

// 100 agents (100 processes, each running its own executable, each matched
// by its own manifest) ask for their first token at the same moment: agent
// key creation, certification and registration, quote, token exchange. The
// TPM serializes its commands; hostd must not add serialization of its own.
// Reported: the wall time, the TPM's busy time over it (TpmDeviceStats
// busy_ns), and their ratio, tpm_utilization: 1.0 means the TPM never
// waited for hostd while agents were waiting for tokens.
void BM_HundredAgentsConcurrently(benchmark::State& state) {
  constexpr int kAgents = 100;
  auto bed = std::make_unique<HostdTestbed>();
  HostdTestbed::Options options;
  options.token_rate_per_minute = 1000000;
  options.challenge_rate_per_minute = 1000000;
  if (!bed->Init(options).ok()) {
    state.SkipWithError("testbed setup failed");
    return;
  }
  // The agents' executables: copies of sleep(1), one file (and manifest) each.
  namespace fs = std::filesystem;
  const fs::path bin = bed->dir_ / "agents";
  fs::create_directories(bin);
  std::vector<fs::path> exes;
  for (int i = 0; i < kAgents; ++i) {
    exes.push_back(bin / ("agent-" + std::to_string(i)));
    fs::copy_file("/bin/sleep", exes.back(), fs::copy_options::overwrite_existing);
    HostdTestbed::WriteFile(bed->dir_ / "manifests" / ("agent-" + std::to_string(i) + ".toml"),
                            "name = \"agent-" + std::to_string(i) + "\"\nexe = \"" + exes.back().string() +
                                "\"\nuid = " + std::to_string(::getuid()) + "\nproof_mode = \"tpm\"\n");
  }
  bed->WriteManifest("tpm");
  if (!bed->StartApproved().ok()) {
    state.SkipWithError("hostd did not start");
    return;
  }
  const std::string digest = HostdTestbed::Sha256File("/bin/sleep");
  for (int i = 0; i < kAgents; ++i) {
    attestation::store::Agent agent;
    agent.name = "agent-" + std::to_string(i);
    agent.id = "spiffe://example.org/agent/" + agent.name;
    agent.host_group = testing::kTestbedGroup;
    agent.allowed_scopes = {"crm.read"};
    agent.allowed_audiences = {testing::kTestbedCrm};
    agent.max_token_ttl_seconds = 300;
    agent.expires_at = bed->clock_.NowUnixSeconds() + 86400;
    agent.owners = {"alice"};
    auto version = bed->core_->CreateAgent("alice", agent).ok()
                       ? bed->core_->AddManifest("alice", agent.id, common::Json{{"exe_sha256", digest},
                                                                                {"files", common::Json::object()}})
                       : common::Result<int64_t>(common::InternalError("agent"));
    if (!version.ok() || !bed->core_->ReviewManifest("bob", agent.id, *version, true, "bench").ok()) {
      state.SkipWithError("agent registration failed");
      return;
    }
  }
  std::vector<pid_t> sleepers;
  std::vector<ProcessInfo> callers;
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  for (const fs::path& exe : exes) {
    auto pid = simulators::testing::SpawnChild(exe.string(), {exe.string(), "120"}, {}, devnull);
    if (!pid.ok()) break;
    sleepers.push_back(*pid);
  }
  ::close(devnull);
  for (std::size_t i = 0; i < sleepers.size(); ++i) {
    // A caller reaches hostd only after its exec; wait for it here too.
    const fs::path proc_exe = "/proc/" + std::to_string(sleepers[i]) + "/exe";
    std::error_code ec;
    for (int tries = 0; tries < 500 && fs::read_symlink(proc_exe, ec) != exes[i]; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto info = InspectProcess(sleepers[i], ::getuid(), ::getgid());
    if (info.ok()) callers.push_back(*info);
  }
  if (callers.size() != static_cast<std::size_t>(kAgents)) {
    for (pid_t pid : sleepers) simulators::testing::KillChild(pid);
    state.SkipWithError("could not start the agent processes");
    return;
  }
  int failures = 0;
  std::string first_error;
  for (auto _ : state) {
    const uint64_t busy_before = bed->hostd_->tpm_stats().busy_ns;
    std::atomic<int> failed{0};
    std::mutex first_error_mu;
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (const ProcessInfo& caller : callers) {
      threads.emplace_back([&, caller] {
        while (!go.load()) std::this_thread::yield();
        auto token = bed->hostd_->Token(caller, testing::kTestbedCrm, "crm.read");
        if (!token.ok() && failed++ == 0) {
          std::lock_guard<std::mutex> lock(first_error_mu);
          first_error = token.status().ToString();
        }
      });
    }
    const auto start = std::chrono::steady_clock::now();
    go = true;
    for (auto& t : threads) t.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double busy = static_cast<double>(bed->hostd_->tpm_stats().busy_ns - busy_before) / 1e9;
    state.SetIterationTime(wall);
    failures += failed.load();
    state.counters["wall_ms"] = wall * 1000;
    state.counters["tpm_busy_ms"] = busy * 1000;
    state.counters["tpm_utilization"] = wall > 0 ? busy / wall : 0;
  }
  for (pid_t pid : sleepers) simulators::testing::KillChild(pid);
  if (failures > 0) {
    state.SkipWithError((std::to_string(failures) + " agents got no token, e.g. " + first_error).c_str());
  }
}
BENCHMARK(BM_HundredAgentsConcurrently)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(1);

}  // namespace
}  // namespace agentroot::host

BENCHMARK_MAIN();
