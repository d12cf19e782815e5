#include "agentroot/attestation/tpm_evidence.h"

#include <gtest/gtest.h>

#include "testing/fake_tpm.h"

namespace agentroot::attestation {
namespace {

using testing::FakeKey;

Bytes Filled(std::size_t n, uint8_t v) { return Bytes(n, v); }

class QuoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ak_ = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
    ak_public_ = *TpmPublic::Parse(ak_.tpm2b_public);
    nonce_ = Filled(32, 0xab);
    for (uint32_t pcr : pcrs_) {
      Bytes value = Filled(32, static_cast<uint8_t>(pcr + 1));
      values_.push_back(value);
      pcr_values_[{tpm_alg::kSha256, pcr}] = value;
    }
    attest_ = testing::QuoteAttest(nonce_, pcrs_, values_);
    signature_ = testing::SignTpm(ak_, attest_, TPM2_ALG_ECDSA);
  }

  FakeKey ak_;
  TpmPublic ak_public_ = *TpmPublic::Parse(testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes).tpm2b_public);
  Bytes nonce_;
  std::vector<uint32_t> pcrs_ = {0, 1, 7, 15};
  std::vector<Bytes> values_;
  PcrValues pcr_values_;
  Bytes attest_;
  Bytes signature_;
};

TEST_F(QuoteTest, ValidQuoteVerifies) {
  auto verified = VerifyQuote(ak_public_, attest_, signature_, nonce_, pcr_values_);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(PcrSelectionToString(verified->selection), "sha256:0,1,7,15");
  EXPECT_EQ(verified->attest.clock_info.reset_count, 3u);
  EXPECT_EQ(verified->attest.clock_info.restart_count, 7u);
  EXPECT_TRUE(SelectionCovers(verified->selection, tpm_alg::kSha256, 7));
  EXPECT_FALSE(SelectionCovers(verified->selection, tpm_alg::kSha256, 8));
  EXPECT_FALSE(SelectionCovers(verified->selection, tpm_alg::kSha384, 7));
}

TEST_F(QuoteTest, WrongNonceIsRejected) {
  Bytes other = nonce_;
  other[0] ^= 1;
  auto result = VerifyQuote(ak_public_, attest_, signature_, other, pcr_values_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), common::StatusCode::kUnauthenticated);
  EXPECT_FALSE(VerifyQuote(ak_public_, attest_, signature_, {}, pcr_values_).ok());
}

TEST_F(QuoteTest, ChangedOrMissingPcrValueIsRejected) {
  PcrValues changed = pcr_values_;
  changed[{tpm_alg::kSha256, 7}][31] ^= 1;
  auto result = VerifyQuote(ak_public_, attest_, signature_, nonce_, changed);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("PCR"), std::string::npos);
  PcrValues missing = pcr_values_;
  missing.erase({tpm_alg::kSha256, 15});
  EXPECT_FALSE(VerifyQuote(ak_public_, attest_, signature_, nonce_, missing).ok());
  PcrValues short_value = pcr_values_;
  short_value[{tpm_alg::kSha256, 0}].pop_back();
  EXPECT_FALSE(VerifyQuote(ak_public_, attest_, signature_, nonce_, short_value).ok());
}

TEST_F(QuoteTest, EveryBitFlipOfAttestOrSignatureIsRejected) {
  for (std::size_t i = 0; i < attest_.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = attest_;
      flipped[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(VerifyQuote(ak_public_, flipped, signature_, nonce_, pcr_values_).ok()) << i << ":" << bit;
    }
  }
  for (std::size_t i = 0; i < signature_.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = signature_;
      flipped[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(VerifyQuote(ak_public_, attest_, flipped, nonce_, pcr_values_).ok()) << i << ":" << bit;
    }
  }
}

TEST_F(QuoteTest, TruncationAndTrailingBytesAreRejected) {
  for (std::size_t len = 0; len < attest_.size(); ++len) {
    EXPECT_FALSE(VerifyQuote(ak_public_, ByteView(attest_).first(len), signature_, nonce_, pcr_values_).ok());
  }
  for (std::size_t len = 0; len < signature_.size(); ++len) {
    EXPECT_FALSE(VerifyQuote(ak_public_, attest_, ByteView(signature_).first(len), nonce_, pcr_values_).ok());
  }
  Bytes trailing = signature_;
  trailing.push_back(0);
  EXPECT_FALSE(VerifyQuote(ak_public_, attest_, trailing, nonce_, pcr_values_).ok());
}

TEST_F(QuoteTest, WrongKeyIsRejected) {
  auto other = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  auto other_public = TpmPublic::Parse(other.tpm2b_public);
  auto result = VerifyQuote(*other_public, attest_, signature_, nonce_, pcr_values_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), common::StatusCode::kUnauthenticated);
  // Signed by the right key but with a hash the key's scheme does not fix.
  Bytes sha384 = testing::SignTpm(ak_, attest_, TPM2_ALG_ECDSA, TPM2_ALG_SHA384);
  EXPECT_FALSE(VerifyQuote(ak_public_, attest_, sha384, nonce_, pcr_values_).ok());
}

TEST_F(QuoteTest, Sha1SignaturesAreRejectedEvenFromAnUnboundKey) {
  auto loose = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes, TPM2_ALG_NULL);
  auto loose_public = *TpmPublic::Parse(loose.tpm2b_public);
  Bytes sha1 = testing::SignTpm(loose, attest_, TPM2_ALG_ECDSA, TPM2_ALG_SHA1);
  EXPECT_FALSE(VerifyQuote(loose_public, attest_, sha1, nonce_, pcr_values_).ok());
}

TEST_F(QuoteTest, WrongMagicOrTypeIsRejectedEvenWhenSigned) {
  TPMS_ATTEST attest = testing::BaseAttest(TPM2_ST_ATTEST_QUOTE, nonce_);
  attest.magic = 0xff544346;
  Bytes bad_magic = testing::MarshalAttest(attest);
  EXPECT_FALSE(VerifyQuote(ak_public_, bad_magic, testing::SignTpm(ak_, bad_magic, TPM2_ALG_ECDSA), nonce_,
                           pcr_values_).ok());
  TPMS_ATTEST certify = testing::BaseAttest(TPM2_ST_ATTEST_CERTIFY, nonce_);
  Bytes certify_bytes = testing::MarshalAttest(certify);
  auto result = VerifyQuote(ak_public_, certify_bytes, testing::SignTpm(ak_, certify_bytes, TPM2_ALG_ECDSA),
                            nonce_, pcr_values_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("not a quote"), std::string::npos);
}

TEST(QuoteRsaTest, RsaSsaAndRsaPssAttestationKeys) {
  for (uint16_t scheme : {TPM2_ALG_RSASSA, TPM2_ALG_RSAPSS}) {
    auto ak = testing::MakeRsaKey(testing::kAkAttributes, scheme);
    auto ak_public = *TpmPublic::Parse(ak.tpm2b_public);
    Bytes nonce(20, 0x11);
    Bytes value(32, 0x22);
    Bytes attest = testing::QuoteAttest(nonce, {3}, {value});
    Bytes sig = testing::SignTpm(ak, attest, scheme);
    PcrValues values = {{{tpm_alg::kSha256, 3}, value}};
    EXPECT_TRUE(VerifyQuote(ak_public, attest, sig, nonce, values).ok()) << scheme;
    // The other RSA scheme with the same key is not accepted (scheme fixed).
    uint16_t other = scheme == TPM2_ALG_RSASSA ? TPM2_ALG_RSAPSS : TPM2_ALG_RSASSA;
    EXPECT_FALSE(VerifyQuote(ak_public, attest, testing::SignTpm(ak, attest, other), nonce, values).ok());
    // An ECDSA signature claimed for an RSA key.
    auto ecc = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
    EXPECT_FALSE(VerifyQuote(ak_public, attest, testing::SignTpm(ecc, attest, TPM2_ALG_ECDSA), nonce, values).ok());
  }
}

class CertifyTest : public ::testing::Test {
 protected:
  Result<VerifiedCertification> Certify(const FakeKey& key, ByteView qualifying, ByteView expected) {
    auto pub = TpmPublic::Parse(key.tpm2b_public);
    EXPECT_TRUE(pub.ok());
    TPMS_ATTEST attest = testing::BaseAttest(TPM2_ST_ATTEST_CERTIFY, qualifying);
    attest.attested.certify.name.size = static_cast<uint16_t>(pub->name().size());
    std::copy(pub->name().begin(), pub->name().end(), attest.attested.certify.name.name);
    Bytes bytes = testing::MarshalAttest(attest);
    return VerifyCertification(ak_public_, bytes, testing::SignTpm(ak_, bytes, TPM2_ALG_ECDSA), expected, *pub);
  }

  FakeKey ak_ = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  TpmPublic ak_public_ = *TpmPublic::Parse(ak_.tpm2b_public);
  Bytes nonce_ = Bytes(32, 0x5a);
};

TEST_F(CertifyTest, TpmResidentAgentKeyIsAccepted) {
  auto agent = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAgentKeyAttributes);
  auto result = Certify(agent, nonce_, nonce_);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
}

TEST_F(CertifyTest, ImportedOrDuplicableKeysAreRejected) {
  for (uint32_t missing : {TPMA_OBJECT_FIXEDTPM, TPMA_OBJECT_FIXEDPARENT, TPMA_OBJECT_SENSITIVEDATAORIGIN,
                           TPMA_OBJECT_SIGN_ENCRYPT}) {
    auto agent = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAgentKeyAttributes & ~missing);
    auto result = Certify(agent, nonce_, nonce_);
    ASSERT_FALSE(result.ok()) << missing;
    EXPECT_EQ(result.status().code(), common::StatusCode::kPermissionDenied);
  }
}

TEST_F(CertifyTest, SubstitutedKeyOrWrongNonceIsRejected) {
  auto agent = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAgentKeyAttributes);
  auto other = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAgentKeyAttributes);
  auto agent_public = *TpmPublic::Parse(agent.tpm2b_public);
  auto other_public = *TpmPublic::Parse(other.tpm2b_public);
  // Certification of `agent` presented with `other` (THREATS #9).
  TPMS_ATTEST attest = testing::BaseAttest(TPM2_ST_ATTEST_CERTIFY, nonce_);
  attest.attested.certify.name.size = static_cast<uint16_t>(agent_public.name().size());
  std::copy(agent_public.name().begin(), agent_public.name().end(), attest.attested.certify.name.name);
  Bytes bytes = testing::MarshalAttest(attest);
  Bytes sig = testing::SignTpm(ak_, bytes, TPM2_ALG_ECDSA);
  EXPECT_TRUE(VerifyCertification(ak_public_, bytes, sig, nonce_, agent_public).ok());
  EXPECT_FALSE(VerifyCertification(ak_public_, bytes, sig, nonce_, other_public).ok());
  Bytes wrong_nonce = nonce_;
  wrong_nonce[5] ^= 0x80;
  EXPECT_FALSE(VerifyCertification(ak_public_, bytes, sig, wrong_nonce, agent_public).ok());
  // Signed by a key other than the AK.
  auto rogue = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  EXPECT_FALSE(VerifyCertification(ak_public_, bytes, testing::SignTpm(rogue, bytes, TPM2_ALG_ECDSA), nonce_,
                                   agent_public).ok());
}

TEST(AttestParseTest, RejectsGarbage) {
  EXPECT_FALSE(ParseTpmsAttest({}).ok());
  EXPECT_FALSE(ParseTpmsAttest(Bytes(100, 0xff)).ok());
  EXPECT_FALSE(ParseTpmtSignature(Bytes{0x00, 0x18}).ok());
  EXPECT_FALSE(ParseTpmtSignature(Bytes{0x00, 0x05, 0x00, 0x0b}).ok());  // HMAC signature
}

}  // namespace
}  // namespace agentroot::attestation
