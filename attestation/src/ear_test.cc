#include "agentroot/attestation/ear.h"

#include <gtest/gtest.h>

#include <vector>

#include "agentroot/common/jwt.h"

namespace agentroot::attestation {
namespace {

constexpr int64_t kNow = 1800000000;

AttestationResult Good() {
  AttestationResult r;
  r.issuer = "https://verifier.test";
  r.verifier_build = "agentroot 0.1.0";
  r.iat = kNow;
  r.exp = kNow + 120;
  r.nonce = common::Bytes(32, 7);
  r.trust.instance_identity = 2;
  r.trust.configuration = 2;
  r.trust.executables = 2;
  r.trust.hardware = 2;
  r.trust.storage_opaque = 2;
  r.policy_id = "agentroot/default/v1";
  r.agent_id = "spiffe://example.org/agent/crm-bot";
  r.host_id = "host-1";
  r.jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
  r.manifest_version = 3;
  return r;
}

class EarTest : public ::testing::Test {
 protected:
  std::unique_ptr<common::OpenSslSigner> signer_ =
      *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "verifier-1");
  std::vector<common::VerificationKey> keys_ = {
      *common::VerificationKey::Create(signer_->public_jwk(), {common::JwsAlgorithm::kEs256})};
  common::FakeClock clock_{kNow + 10};
};

TEST_F(EarTest, SignedResultRoundTrips) {
  auto jwt = SignEar(Good(), *signer_);
  ASSERT_TRUE(jwt.ok()) << jwt.status().ToString();
  auto result = VerifyEar(*jwt, keys_, "https://verifier.test", clock_);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, EarStatus::kAffirming);
  EXPECT_EQ(result->nonce, common::Bytes(32, 7));
  EXPECT_EQ(result->jkt, Good().jkt);
  EXPECT_EQ(result->manifest_version, 3);
  EXPECT_EQ(result->trust.hardware, 2);
}

TEST_F(EarTest, StatusFollowsTheWorstClaim) {
  TrustVector v;
  EXPECT_EQ(DeriveStatus(v), EarStatus::kNone);
  v.hardware = 2;
  EXPECT_EQ(DeriveStatus(v), EarStatus::kAffirming);
  v.executables = 33;
  EXPECT_EQ(DeriveStatus(v), EarStatus::kWarning);
  v.configuration = 96;
  EXPECT_EQ(DeriveStatus(v), EarStatus::kContraindicated);
  TrustVector negative;
  negative.hardware = -1;
  EXPECT_EQ(DeriveStatus(negative), EarStatus::kContraindicated);
}

TEST_F(EarTest, ExpiredWrongIssuerOrTamperedResultsFail) {
  auto jwt = *SignEar(Good(), *signer_);
  common::FakeClock late(kNow + 120 + 5);
  EXPECT_FALSE(VerifyEar(jwt, keys_, "https://verifier.test", late).ok());
  EXPECT_FALSE(VerifyEar(jwt, keys_, "https://other.test", clock_).ok());
  std::string tampered = jwt;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyEar(tampered, keys_, "https://verifier.test", clock_).ok());
  auto other = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "verifier-1");
  auto forged = *SignEar(Good(), **other);
  EXPECT_FALSE(VerifyEar(forged, keys_, "https://verifier.test", clock_).ok());
}

TEST_F(EarTest, ContradictoryStatusIsRejected) {
  // A result whose status claims affirming over a contraindicated vector.
  common::Json claims = {{"eat_profile", kEarProfile}, {"iss", "https://verifier.test"}, {"iat", kNow},
                         {"exp", kNow + 60}, {"eat_nonce", "AAAA"},
                         {"ear.verifier-id", {{"developer", "x"}, {"build", "y"}}},
                         {"submods", {{"agent", {{"ear.status", "affirming"},
                                                 {"ear.trustworthiness-vector", {{"hardware", 97}}},
                                                 {"ear.appraisal-policy-id", "p"}}}}},
                         {"cnf", {{"jkt", "j"}}}, {"agentroot.agent", "a"}, {"agentroot.host", "h"},
                         {"agentroot.manifest_version", 1}};
  auto jwt = common::SignJwt(claims, *signer_, "ear+jwt");
  auto result = VerifyEar(*jwt, keys_, "https://verifier.test", clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("contradicts"), std::string::npos);
}

TEST_F(EarTest, IncompleteResultsAreNotSigned) {
  AttestationResult r = Good();
  r.jkt.clear();
  EXPECT_FALSE(SignEar(r, *signer_).ok());
  r = Good();
  r.exp = r.iat;
  EXPECT_FALSE(SignEar(r, *signer_).ok());
}

}  // namespace
}  // namespace agentroot::attestation
