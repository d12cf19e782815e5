// TPM operations of the TPM backend against swtpm, in process (ESAPI over
// the swtpm TCTI): agent-key sign (ES256, RS256; from a saved context and
// with the LRU disabled), quote, certify and key creation. The binary starts
// its own one-machine swtpm fleet and stops it before exiting.
//
// Each benchmark names the software ceiling of the same primitive
// (scripts/bench.py measures it with `openssl speed`): a TPM sign against an
// in-memory OpenSSL sign shows what the TPM costs on top of the math.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>

#include "agentroot/common/signer.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "tpm_test_util.h"

namespace agentroot::hsm::tpm {
namespace {

using common::JwsAlgorithm;

struct Env {
  std::unique_ptr<simulators::testing::ScopedFleet> fleet;
  std::shared_ptr<TpmDevice> device;
  std::shared_ptr<TpmDevice> uncached_device;
  std::unique_ptr<TpmKeyManager> keys;
  std::unique_ptr<TpmKeyManager> uncached_keys;
  std::unique_ptr<TpmAttestor> attestor;
};

Env* g_env = nullptr;

const common::Bytes& Digest() {
  static const common::Bytes digest = common::Sha256(common::ToBytes("benchmark"));
  return digest;
}

void SignLoop(benchmark::State& state, const Key& key) {
  for (auto _ : state) {
    auto sig = key.SignDigest(Digest());
    if (!sig.ok()) {
      state.SkipWithError(sig.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(sig->data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_TpmSignEs256(benchmark::State& state) {
  state.SetLabel("ceiling=ecdsap256:sign");
  SignLoop(state, *g_env->keys->Get("es256").value());
}
BENCHMARK(BM_TpmSignEs256)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TpmSignEs256NoContextCache(benchmark::State& state) {
  state.SetLabel("ceiling=ecdsap256:sign");
  SignLoop(state, *g_env->uncached_keys->Get("es256").value());
}
BENCHMARK(BM_TpmSignEs256NoContextCache)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TpmSignRs256(benchmark::State& state) {
  state.SetLabel("ceiling=rsa2048:sign");
  SignLoop(state, *g_env->keys->Get("rs256").value());
}
BENCHMARK(BM_TpmSignRs256)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TpmQuote(benchmark::State& state) {
  state.SetLabel("ceiling=ecdsap256:sign");
  const common::Bytes nonce = common::ToBytes("0123456789abcdef0123456789abcdef");
  for (auto _ : state) {
    auto quote = g_env->attestor->Quote("ak", {{kTpmAlgSha256, {0, 1, 2, 3, 4, 5, 6, 7, 10}}}, nonce);
    if (!quote.ok()) {
      state.SkipWithError(quote.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(quote->tpms_attest.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TpmQuote)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TpmCertify(benchmark::State& state) {
  state.SetLabel("ceiling=ecdsap256:sign");
  auto key = g_env->keys->Get("es256").value();
  const common::Bytes nonce = common::ToBytes("certify");
  for (auto _ : state) {
    auto cert = g_env->attestor->Certify("ak", *key, nonce);
    if (!cert.ok()) {
      state.SkipWithError(cert.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(cert->tpms_attest.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TpmCertify)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TpmCreateKeyEs256(benchmark::State& state) {
  // Key creation has no software twin in `openssl speed`; the ECDSA sign
  // ceiling is the nearest primitive (generation ~ one scalar multiply).
  state.SetLabel("ceiling=ecdsap256:sign");
  int i = 0;
  for (auto _ : state) {
    const std::string id = "gen-" + std::to_string(i++);
    auto key = g_env->keys->Generate(id, {JwsAlgorithm::kEs256, {}});
    if (!key.ok()) {
      state.SkipWithError(key.status().ToString().c_str());
      return;
    }
    state.PauseTiming();
    g_env->keys->Delete(id).IgnoreError();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TpmCreateKeyEs256)->Unit(benchmark::kMillisecond)->UseRealTime();

common::Status SetUp(Env* env) {
  AR_ASSIGN_OR_RETURN(env->fleet, simulators::testing::ScopedFleet::Create(1));
  const auto& machine = env->fleet->info().machines[0];
  const auto state_dir = env->fleet->dir() / "bench-state";
  AR_ASSIGN_OR_RETURN(env->device, testing::OpenDevice(machine.tcti, 16));
  AR_ASSIGN_OR_RETURN(env->uncached_device, testing::OpenDevice(machine.tcti, 0));
  AR_ASSIGN_OR_RETURN(env->keys, TpmKeyManager::Create(env->device, state_dir));
  AR_ASSIGN_OR_RETURN(env->uncached_keys, TpmKeyManager::Create(env->uncached_device, state_dir));
  AR_ASSIGN_OR_RETURN(env->attestor, TpmAttestor::Create(env->device, state_dir));
  AR_RETURN_IF_ERROR(env->keys->Generate("es256", {JwsAlgorithm::kEs256, {}}).status());
  AR_RETURN_IF_ERROR(env->keys->Generate("rs256", {JwsAlgorithm::kRs256, {}}).status());
  AR_RETURN_IF_ERROR(env->attestor->CreateAk("ak").status());
  return common::Status::Ok();
}

}  // namespace
}  // namespace agentroot::hsm::tpm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  agentroot::hsm::tpm::Env env;
  agentroot::common::Status status = agentroot::hsm::tpm::SetUp(&env);
  if (!status.ok()) {
    std::fprintf(stderr, "tpm_bench: setup failed: %s\n", status.ToString().c_str());
    return 1;
  }
  agentroot::hsm::tpm::g_env = &env;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  agentroot::hsm::tpm::g_env = nullptr;
  return 0;  // ~Env stops the fleet.
}
