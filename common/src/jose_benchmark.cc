// JOSE throughput, measured against OpenSSL's own rate for the same primitive.
//
// Each benchmark labels itself "ceiling=<openssl speed algorithm>:<sign|verify>";
// scripts/bench.py runs `openssl speed` in the same session and reports
// value / ceiling, so the figures survive a noisy shared machine.
#include <benchmark/benchmark.h>

#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/common/jwt.h"
#include "agentroot/common/signer.h"

namespace agentroot::common {
namespace {

const char* CeilingFor(JwsAlgorithm alg, bool sign) {
  if (alg == JwsAlgorithm::kEs256) return sign ? "ceiling=ecdsap256:sign" : "ceiling=ecdsap256:verify";
  return sign ? "ceiling=rsa2048:sign" : "ceiling=rsa2048:verify";
}

// A typical access-token claim set (~300 bytes).
Json TokenClaims() {
  return Json{{"iss", "https://verifier.agentroot.test"},
              {"sub", "spiffe://example.org/agent/crm-bot"},
              {"aud", "https://crm.example"},
              {"client_id", "spiffe://example.org/agent/crm-bot"},
              {"scope", "crm.read crm.write"},
              {"jti", "b3f1c0a2-6d0e-4c59-9a7f-2f3c1d2e4a5b"},
              {"iat", 1800000000},
              {"exp", 1800000300},
              {"cnf", {{"jkt", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}}};
}

void BM_JwsSign(benchmark::State& state, JwsAlgorithm alg) {
  auto signer = OpenSslSigner::Generate(alg, "bench");
  std::string payload = TokenClaims().dump();
  for (auto _ : state) {
    auto jws = SignJwsCompact(Json{{"typ", "at+jwt"}}, AsBytes(payload), **signer);
    if (!jws.ok()) state.SkipWithError(jws.status().ToString().c_str());
    benchmark::DoNotOptimize(jws);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(CeilingFor(alg, true));
}

void BM_JwtVerify(benchmark::State& state, JwsAlgorithm alg) {
  auto signer = OpenSslSigner::Generate(alg, "bench");
  std::vector<VerificationKey> keys = {*VerificationKey::Create((*signer)->public_jwk(), {alg})};
  auto token = SignJwt(TokenClaims(), **signer, "at+jwt");
  FakeClock clock(1800000100);
  JwtValidationOptions options;
  options.issuer = "https://verifier.agentroot.test";
  options.audience = "https://crm.example";
  options.typ = "at+jwt";
  options.clock = &clock;
  for (auto _ : state) {
    auto verified = VerifyJwt(*token, keys, options);
    if (!verified.ok()) state.SkipWithError(verified.status().ToString().c_str());
    benchmark::DoNotOptimize(verified);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(CeilingFor(alg, false));
}

BENCHMARK_CAPTURE(BM_JwsSign, ES256, JwsAlgorithm::kEs256);
BENCHMARK_CAPTURE(BM_JwsSign, RS256, JwsAlgorithm::kRs256);
BENCHMARK_CAPTURE(BM_JwsSign, PS256, JwsAlgorithm::kPs256);
BENCHMARK_CAPTURE(BM_JwtVerify, ES256, JwsAlgorithm::kEs256);
BENCHMARK_CAPTURE(BM_JwtVerify, RS256, JwsAlgorithm::kRs256);
BENCHMARK_CAPTURE(BM_JwtVerify, PS256, JwsAlgorithm::kPs256);

}  // namespace
}  // namespace agentroot::common

BENCHMARK_MAIN();
