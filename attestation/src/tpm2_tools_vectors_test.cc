// Verifies evidence produced by tpm2-tools against swtpm (testdata/tpm2-tools,
// see its README): our parsers and verifiers accept an independent
// implementation's bytes, and reject them once altered.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "agentroot/attestation/tpm_evidence.h"

namespace agentroot::attestation {
namespace {

Bytes Load(const std::string& name) {
  std::ifstream in(std::string(AGENTROOT_ATTESTATION_TESTDATA) + "/tpm2-tools/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Tpm2ToolsVectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ak = TpmPublic::Parse(Load("ak_ecc.pub"));
    ASSERT_TRUE(ak.ok()) << ak.status().ToString();
    ak_ = std::make_unique<TpmPublic>(*ak);
    Bytes values = Load("quote_ecc.pcrvalues");
    ASSERT_EQ(values.size(), 96u);
    uint32_t pcrs[] = {0, 1, 7};
    for (int i = 0; i < 3; ++i) {
      pcr_values_[{tpm_alg::kSha256, pcrs[i]}] = Bytes(values.begin() + i * 32, values.begin() + (i + 1) * 32);
    }
  }

  std::unique_ptr<TpmPublic> ak_;
  PcrValues pcr_values_;
  Bytes nonce_ = *common::HexDecode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
};

TEST_F(Tpm2ToolsVectorTest, AkIsARestrictedTpmKeyWithTheToolsName) {
  EXPECT_EQ(ak_->name(), Load("ak_ecc.name"));
  EXPECT_TRUE(CheckAttestationKey(*ak_).ok());
  auto ek = TpmPublic::Parse(Load("ek_rsa.pub"));
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  EXPECT_EQ(ek->symmetric_alg(), tpm_alg::kAes);
  EXPECT_EQ(ek->symmetric_bits(), 128);
  EXPECT_FALSE(CheckAttestationKey(*ek).ok());
}

TEST_F(Tpm2ToolsVectorTest, Tpm2QuoteVerifies) {
  auto verified = VerifyQuote(*ak_, Load("quote_ecc.attest"), Load("quote_ecc.sig"), nonce_, pcr_values_);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(PcrSelectionToString(verified->selection), "sha256:0,1,7");
}

TEST_F(Tpm2ToolsVectorTest, Tpm2QuoteWithWrongNonceOrPcrFails) {
  Bytes nonce = nonce_;
  nonce[0] ^= 1;
  EXPECT_FALSE(VerifyQuote(*ak_, Load("quote_ecc.attest"), Load("quote_ecc.sig"), nonce, pcr_values_).ok());
  PcrValues changed = pcr_values_;
  changed[{tpm_alg::kSha256, 7}][0] ^= 1;
  EXPECT_FALSE(VerifyQuote(*ak_, Load("quote_ecc.attest"), Load("quote_ecc.sig"), nonce_, changed).ok());
  Bytes attest = Load("quote_ecc.attest");
  for (std::size_t i = 0; i < attest.size(); ++i) {
    Bytes flipped = attest;
    flipped[i] ^= 0x10;
    EXPECT_FALSE(VerifyQuote(*ak_, flipped, Load("quote_ecc.sig"), nonce_, pcr_values_).ok()) << i;
  }
}

TEST_F(Tpm2ToolsVectorTest, Tpm2CertifyVerifiesForTheCertifiedKeyOnly) {
  auto agent = TpmPublic::Parse(Load("agent.pub"));
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  // tpm2_certify 5.4 has no option for qualifying data and always sends
  // 00ff55aa.
  Bytes qualifying = {0x00, 0xff, 0x55, 0xaa};
  auto verified = VerifyCertification(*ak_, Load("certify_ecc.attest"), Load("certify_ecc.sig"), qualifying, *agent);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_FALSE(VerifyCertification(*ak_, Load("certify_ecc.attest"), Load("certify_ecc.sig"), {}, *agent).ok());
  // The AK's own public area is not the certified key.
  EXPECT_FALSE(
      VerifyCertification(*ak_, Load("certify_ecc.attest"), Load("certify_ecc.sig"), qualifying, *ak_).ok());
  // Nor is the quote a certification.
  EXPECT_FALSE(VerifyCertification(*ak_, Load("quote_ecc.attest"), Load("quote_ecc.sig"), nonce_, *agent).ok());
}

}  // namespace
}  // namespace agentroot::attestation
