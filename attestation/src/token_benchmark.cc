// Token issuance and validation crypto paths against their OpenSSL ceilings
// (issue 4): validation is two ES256 verifies (the token, the DPoP proof);
// the token endpoint's crypto is a DPoP verify, an EAR verify and a token
// sign.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/ear.h"
#include "agentroot/common/jwt.h"

namespace agentroot::attestation {
namespace {

constexpr int64_t kNow = 1800000000;
constexpr char kUrl[] = "https://crm.example/v1/accounts";

// Proofs are made ahead (as a load generator would) so only validation is
// timed; each iteration uses a fresh proof (jti single use).
void BM_ValidateAccessTokenWithDpop(benchmark::State& state) {
  common::FakeClock clock(kNow);
  auto issuer = *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1");
  auto agent = *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256);
  common::Json jwk = issuer->public_jwk().ToJson();
  jwk["alg"] = "ES256";
  std::string jwks = common::Json{{"keys", {jwk}}}.dump();
  auto cache = std::make_shared<JwksCache>([jwks]() -> common::Result<std::string> { return jwks; }, clock,
                                           JwksCache::Options{});
  auto replay = std::make_shared<InMemoryReplayCache>(1 << 22, clock);
  AccessTokenPolicy policy;
  policy.issuer = "https://verifier.test";
  policy.audience = "https://crm.example";
  auto validator = *AccessTokenValidator::Create(policy, cache, replay, &clock);
  common::Json claims = {{"iss", policy.issuer}, {"aud", policy.audience}, {"sub", "agent"}, {"client_id", "agent"},
                         {"scope", "crm.read"}, {"jti", "t1"}, {"iat", kNow}, {"exp", kNow + 300},
                         {"cnf", {{"jkt", agent->public_jwk().Thumbprint()}}}};
  std::string token = *common::SignJwt(claims, *issuer, "at+jwt");
  std::string authorization = "DPoP " + token;
  constexpr std::size_t kProofs = 20000;
  std::vector<std::vector<std::string>> proofs;
  proofs.reserve(kProofs);
  for (std::size_t i = 0; i < kProofs; ++i) proofs.push_back({*CreateDpopProof(*agent, "GET", kUrl, kNow, token)});
  std::size_t next = 0;
  for (auto _ : state) {
    if (next == kProofs) {
      state.PauseTiming();
      replay = std::make_shared<InMemoryReplayCache>(1 << 22, clock);
      validator = *AccessTokenValidator::Create(policy, cache, replay, &clock);
      next = 0;
      state.ResumeTiming();
    }
    auto result = validator->Validate(authorization, proofs[next++], "GET", kUrl, "crm.read");
    if (!result.ok()) state.SkipWithError(result.status().ToString().c_str());
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:verify*2");
}

// The crypto a token exchange needs: verify the DPoP proof, verify the EAR,
// sign the access token.
void BM_TokenExchangeCrypto(benchmark::State& state) {
  common::FakeClock clock(kNow);
  auto verifier_key = *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "v1");
  auto agent = *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256);
  std::vector<common::VerificationKey> keys = {
      *common::VerificationKey::Create(verifier_key->public_jwk(), {common::JwsAlgorithm::kEs256})};
  AttestationResult ear;
  ear.issuer = "https://verifier.test";
  ear.iat = kNow;
  ear.exp = kNow + 120;
  ear.nonce = common::Bytes(32, 1);
  ear.trust.hardware = 2;
  ear.agent_id = "agent";
  ear.host_id = "host";
  ear.jkt = agent->public_jwk().Thumbprint();
  std::string ear_jwt = *SignEar(ear, *verifier_key);
  std::string proof = *CreateDpopProof(*agent, "POST", "https://verifier.test/oauth/token", kNow);
  DpopRequirements req;
  req.method = "POST";
  req.url = "https://verifier.test/oauth/token";
  req.clock = &clock;
  common::Json claims = {{"iss", "https://verifier.test"}, {"aud", "https://crm.example"}, {"sub", "agent"},
                         {"client_id", "agent"}, {"jti", "t"}, {"iat", kNow}, {"exp", kNow + 300},
                         {"cnf", {{"jkt", ear.jkt}}}};
  for (auto _ : state) {
    auto p = VerifyDpopProof(proof, req, nullptr);
    auto e = VerifyEar(ear_jwt, keys, "https://verifier.test", clock);
    auto t = common::SignJwt(claims, *verifier_key, "at+jwt");
    if (!p.ok() || !e.ok() || !t.ok()) state.SkipWithError("token exchange crypto failed");
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:verify*2+ecdsap256:sign");
}

BENCHMARK(BM_ValidateAccessTokenWithDpop);
BENCHMARK(BM_TokenExchangeCrypto);

}  // namespace
}  // namespace agentroot::attestation

BENCHMARK_MAIN();
