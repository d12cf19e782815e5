// hostd's request path against one swtpm machine (docs/hostd.md
// "Performance"), through hostd's API on its Unix socket:
//   BM_CachedTokenAndProof/tpm|session  POST /v1/headers with a cached token:
//       token lookup + one DPoP proof (in the TPM, or in software);
//   BM_FreshAttestation  challenge -> measure/extend -> quote -> attest ->
//       token exchange, p50/p99 as counters.
// The verifier runs in process (host/testing/hostd_testbed.h).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>

#include "agentroot/common/json.h"
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

}  // namespace
}  // namespace agentroot::host

BENCHMARK_MAIN();
