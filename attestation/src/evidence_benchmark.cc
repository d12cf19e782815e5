// Evidence verification throughput against OpenSSL's own rate for the same
// signature (see docs/benchmarks.md). Inputs are the real tpm2-tools vectors
// in testdata/tpm2-tools.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <string>

#include "agentroot/attestation/make_credential.h"
#include "agentroot/attestation/tpm_evidence.h"

namespace agentroot::attestation {
namespace {

Bytes Load(const std::string& name) {
  std::ifstream in(std::string(AGENTROOT_ATTESTATION_TESTDATA) + "/tpm2-tools/" + name, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void BM_VerifyQuoteP256(benchmark::State& state) {
  auto ak = TpmPublic::Parse(Load("ak_ecc.pub"));
  Bytes attest = Load("quote_ecc.attest");
  Bytes sig = Load("quote_ecc.sig");
  Bytes values = Load("quote_ecc.pcrvalues");
  Bytes nonce = *common::HexDecode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  PcrValues pcrs;
  uint32_t index[] = {0, 1, 7};
  for (int i = 0; i < 3; ++i) {
    pcrs[{tpm_alg::kSha256, index[i]}] = Bytes(values.begin() + i * 32, values.begin() + (i + 1) * 32);
  }
  if (!ak.ok()) state.SkipWithError("cannot parse AK");
  for (auto _ : state) {
    auto verified = VerifyQuote(*ak, attest, sig, nonce, pcrs);
    if (!verified.ok()) state.SkipWithError(verified.status().ToString().c_str());
    benchmark::DoNotOptimize(verified);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:verify");
}

void BM_VerifyCertificationP256(benchmark::State& state) {
  auto ak = TpmPublic::Parse(Load("ak_ecc.pub"));
  auto agent = TpmPublic::Parse(Load("agent.pub"));
  Bytes attest = Load("certify_ecc.attest");
  Bytes sig = Load("certify_ecc.sig");
  Bytes qualifying = {0x00, 0xff, 0x55, 0xaa};
  if (!ak.ok() || !agent.ok()) state.SkipWithError("cannot parse keys");
  for (auto _ : state) {
    auto verified = VerifyCertification(*ak, attest, sig, qualifying, *agent);
    if (!verified.ok()) state.SkipWithError(verified.status().ToString().c_str());
    benchmark::DoNotOptimize(verified);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:verify");
}

// Parsing the AK's public area once per request (a verifier that does not
// cache it) on top of the quote.
void BM_ParseAkAndVerifyQuoteP256(benchmark::State& state) {
  Bytes ak_bytes = Load("ak_ecc.pub");
  Bytes attest = Load("quote_ecc.attest");
  Bytes sig = Load("quote_ecc.sig");
  Bytes values = Load("quote_ecc.pcrvalues");
  Bytes nonce = *common::HexDecode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  PcrValues pcrs;
  uint32_t index[] = {0, 1, 7};
  for (int i = 0; i < 3; ++i) {
    pcrs[{tpm_alg::kSha256, index[i]}] = Bytes(values.begin() + i * 32, values.begin() + (i + 1) * 32);
  }
  for (auto _ : state) {
    auto ak = TpmPublic::Parse(ak_bytes);
    auto verified = VerifyQuote(*ak, attest, sig, nonce, pcrs);
    if (!verified.ok()) state.SkipWithError(verified.status().ToString().c_str());
    benchmark::DoNotOptimize(verified);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=ecdsap256:verify");
}

// MakeCredential to an RSA 2048 EK: one OAEP encryption (an RSA public
// operation, like a verify) plus KDFs, AES and HMAC.
void BM_MakeCredentialRsa2048(benchmark::State& state) {
  auto ek = TpmPublic::Parse(Load("ek_rsa.pub"));
  auto ak = TpmPublic::Parse(Load("ak_ecc.pub"));
  common::SecretBytes secret(Bytes(32, 0x42));
  if (!ek.ok() || !ak.ok()) state.SkipWithError("cannot parse keys");
  for (auto _ : state) {
    auto challenge = MakeCredential(*ek, ak->name(), secret);
    if (!challenge.ok()) state.SkipWithError(challenge.status().ToString().c_str());
    benchmark::DoNotOptimize(challenge);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel("ceiling=rsa2048:verify");
}

BENCHMARK(BM_VerifyQuoteP256);
BENCHMARK(BM_VerifyCertificationP256);
BENCHMARK(BM_ParseAkAndVerifyQuoteP256);
BENCHMARK(BM_MakeCredentialRsa2048);

}  // namespace
}  // namespace agentroot::attestation

BENCHMARK_MAIN();
