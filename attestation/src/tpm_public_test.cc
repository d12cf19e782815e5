#include "agentroot/attestation/tpm_public.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "agentroot/common/signer.h"
#include "testing/fake_tpm.h"

namespace agentroot::attestation {
namespace {

using testing::MakeEccKey;
using testing::MakeRsaKey;

TEST(TpmPublicTest, ParsesEccKeyAndComputesName) {
  auto fake = MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  auto pub = TpmPublic::Parse(fake.tpm2b_public);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->type(), tpm_alg::kEcc);
  EXPECT_EQ(pub->ecc_curve(), kTpmEccNistP256);
  EXPECT_EQ(pub->scheme(), tpm_alg::kEcdsa);
  EXPECT_EQ(pub->scheme_hash(), tpm_alg::kSha256);
  EXPECT_TRUE(pub->HasAttributes(tpma_object::kFixedTpm | tpma_object::kRestricted | tpma_object::kSign));
  // Name = nameAlg || SHA-256(TPMT_PUBLIC), computed independently here.
  Bytes expected = {0x00, 0x0b};
  Bytes digest = common::Sha256(ByteView(fake.tpm2b_public).subspan(2));
  expected.insert(expected.end(), digest.begin(), digest.end());
  EXPECT_EQ(pub->name(), expected);
  auto key = pub->ToOpenSslKey();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), fake.key.get()), 1);
  EXPECT_TRUE(CheckAttestationKey(*pub).ok());
}

TEST(TpmPublicTest, ParsesRsaKeyWithDefaultExponent) {
  auto fake = MakeRsaKey(testing::kAgentKeyAttributes);
  auto pub = TpmPublic::Parse(fake.tpm2b_public);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->rsa_bits(), 2048);
  auto key = pub->ToOpenSslKey();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), fake.key.get()), 1);
  EXPECT_FALSE(CheckAttestationKey(*pub).ok());  // not restricted
}

TEST(TpmPublicTest, RejectsTruncationAndTrailingBytes) {
  auto fake = MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  for (std::size_t len = 0; len < fake.tpm2b_public.size(); ++len) {
    EXPECT_FALSE(TpmPublic::Parse(ByteView(fake.tpm2b_public).first(len)).ok()) << len;
  }
  Bytes trailing = fake.tpm2b_public;
  trailing.push_back(0);
  auto result = TpmPublic::Parse(trailing);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("trailing"), std::string::npos);
}

TEST(TpmPublicTest, RejectsInconsistentSizePrefix) {
  auto fake = MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  Bytes bigger = fake.tpm2b_public;
  bigger[1] = static_cast<uint8_t>(bigger[1] + 1);
  bigger.push_back(0);
  EXPECT_FALSE(TpmPublic::Parse(bigger).ok());
  Bytes huge = fake.tpm2b_public;
  huge[0] = 0xff;
  huge[1] = 0xff;
  EXPECT_FALSE(TpmPublic::Parse(huge).ok());
}

TEST(TpmPublicTest, RejectsWeakOrUnknownAlgorithms) {
  // SHA-1 name algorithm.
  auto sha1 = MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes, TPM2_ALG_ECDSA, TPM2_ALG_SHA256,
                         TPM2_ALG_SHA1);
  EXPECT_FALSE(TpmPublic::Parse(sha1.tpm2b_public).ok());
  // Unknown curve id patched into a valid structure (curveID follows the
  // scheme; flip the P-256 id 0x0003 to 0x0020).
  auto p256 = MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  auto pub = TpmPublic::Parse(p256.tpm2b_public);
  ASSERT_TRUE(pub.ok());
  // Bit flips anywhere must either fail to parse or change the Name.
  for (std::size_t i = 2; i < p256.tpm2b_public.size(); ++i) {
    Bytes flipped = p256.tpm2b_public;
    flipped[i] ^= 0x01;
    auto other = TpmPublic::Parse(flipped);
    if (other.ok()) {
      EXPECT_NE(other->name(), pub->name()) << i;
    }
  }
}

TEST(TpmPublicTest, P384KeysParse) {
  auto fake = MakeEccKey(TPM2_ECC_NIST_P384, testing::kAkAttributes, TPM2_ALG_ECDSA, TPM2_ALG_SHA384,
                         TPM2_ALG_SHA384);
  auto pub = TpmPublic::Parse(fake.tpm2b_public);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->name().size(), 2u + 48u);
  EXPECT_EQ(pub->ecc_x().size(), 48u);
}

}  // namespace
}  // namespace agentroot::attestation
