// PKCS#11 signing throughput: ES256 through Pkcs11KeyManager's Key against a
// SoftHSM2 token created (and removed) by this binary. Labelled with the
// OpenSSL ceiling so scripts/bench.py reports value / `openssl speed`.
#include <benchmark/benchmark.h>

#include <cstdio>

#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"
#include "agentroot/hsm/testing/scoped_softhsm_token.h"

namespace agentroot::hsm {
namespace {

void BM_Pkcs11SignEs256(benchmark::State& state) {
  auto token = testing::ScopedSoftHsmToken::Create("agentroot-bench");
  if (!token.ok()) {
    state.SkipWithError(token.status().ToString().c_str());
    return;
  }
  std::shared_ptr<Key> key;
  {
    Pkcs11Config config;
    config.module_path = testing::ScopedSoftHsmToken::module_path();
    config.token_label = (*token)->label();
    config.pin = (*token)->UserPinSecret();
    auto manager = Pkcs11KeyManager::Create(std::move(config));
    if (!manager.ok()) {
      state.SkipWithError(manager.status().ToString().c_str());
      return;
    }
    auto generated = (*manager)->Generate("bench-es256", KeyPolicy{});
    if (!generated.ok()) {
      state.SkipWithError(generated.status().ToString().c_str());
      return;
    }
    key = *generated;
  }
  const common::Bytes digest = common::Sha256(common::ToBytes("agentroot pkcs11 benchmark"));
  for (auto _ : state) {
    auto sig = key->Sign(common::JwsAlgorithm::kEs256, digest);
    if (!sig.ok()) {
      state.SkipWithError(sig.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(sig);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:sign");
  key.reset();  // closes the sessions and finalises the module before the token goes
}

BENCHMARK(BM_Pkcs11SignEs256)->UseRealTime();

}  // namespace
}  // namespace agentroot::hsm

BENCHMARK_MAIN();
