#include "agentroot/attestation/session_binding.h"

#include <gtest/gtest.h>

#include "agentroot/attestation/dpop.h"
#include "agentroot/common/jwt.h"

namespace agentroot::attestation {
namespace {

using common::Json;

constexpr char kAgent[] = "spiffe://example.org/agent/sales-bot";
constexpr int64_t kNow = 1'800'000'000;

class SessionBindingTest : public ::testing::Test {
 protected:
  SessionBindingTest() : clock_(kNow) {}
  std::unique_ptr<common::OpenSslSigner> Key(common::JwsAlgorithm alg = common::JwsAlgorithm::kEs256) {
    return std::move(common::OpenSslSigner::Generate(alg)).value();
  }
  common::FakeClock clock_;
};

TEST_F(SessionBindingTest, ABindingByTheRegisteredKeyVerifies) {
  auto tpm = Key();
  auto session = Key();
  auto binding = CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow, 300);
  ASSERT_TRUE(binding.ok()) << binding.status().ToString();
  auto verified = VerifySessionBinding(*binding, tpm->public_jwk().ToJson(), kAgent, clock_);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->session_jkt, session->public_jwk().Thumbprint());
  EXPECT_EQ(verified->tpm_jkt, tpm->public_jwk().Thumbprint());
  EXPECT_EQ(verified->expires_at, kNow + 300);

  auto rsa = Key(common::JwsAlgorithm::kRs256);
  auto rsa_binding = CreateSessionBinding(*rsa, kAgent, session->public_jwk(), kNow, 300);
  ASSERT_TRUE(rsa_binding.ok());
  EXPECT_TRUE(VerifySessionBinding(*rsa_binding, rsa->public_jwk().ToJson(), kAgent, clock_).ok());
}

TEST_F(SessionBindingTest, VerifiesAgainstARegisteredKeyWithoutKid) {
  // The verifier registers agent keys from TPM2B_PUBLIC: their JWK has no kid,
  // while a TPM key signs with one in the header.
  auto tpm = Key();
  auto session = Key();
  Json registered = tpm->public_jwk().ToJson();
  ASSERT_TRUE(registered.contains("kid"));
  registered.erase("kid");
  auto binding = CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow, 300);
  ASSERT_TRUE(binding.ok());
  auto verified = VerifySessionBinding(*binding, registered, kAgent, clock_);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  // ... and still only that key: another key's binding fails whatever its kid.
  auto other = Key();
  auto forged = *CreateSessionBinding(*other, kAgent, session->public_jwk(), kNow, 300);
  EXPECT_FALSE(VerifySessionBinding(forged, registered, kAgent, clock_).ok());
}

TEST_F(SessionBindingTest, EverythingElseIsRefused) {
  auto tpm = Key();
  auto other = Key();
  auto session = Key();
  const Json registered = tpm->public_jwk().ToJson();
  auto good = *CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow, 300);

  // Signed by a key that is not the registered one.
  auto forged = *CreateSessionBinding(*other, kAgent, session->public_jwk(), kNow, 300);
  EXPECT_FALSE(VerifySessionBinding(forged, registered, kAgent, clock_).ok());
  // For another agent.
  EXPECT_FALSE(VerifySessionBinding(good, registered, "spiffe://example.org/agent/other", clock_).ok());
  // Expired, and not yet valid.
  common::FakeClock later(kNow + 331);
  EXPECT_FALSE(VerifySessionBinding(good, registered, kAgent, later).ok());
  auto future = *CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow + 120, 300);
  EXPECT_FALSE(VerifySessionBinding(future, registered, kAgent, clock_).ok());
  // Lifetimes outside (0, 1 h] are not created, and not accepted when crafted.
  EXPECT_FALSE(CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow, 3601).ok());
  EXPECT_FALSE(CreateSessionBinding(*tpm, kAgent, session->public_jwk(), kNow, 0).ok());
  auto crafted = [&](Json claims, std::string_view typ = kSessionBindingTyp) {
    return *common::SignJwt(claims, *tpm, typ);
  };
  Json base = {{"iss", kAgent}, {"jkt", session->public_jwk().Thumbprint()},
               {"tpm_jkt", tpm->public_jwk().Thumbprint()}, {"iat", kNow}, {"exp", kNow + 300}};
  EXPECT_TRUE(VerifySessionBinding(crafted(base), registered, kAgent, clock_).ok()) << "the crafting itself works";
  Json too_long = base;
  too_long["exp"] = kNow + 7200;
  EXPECT_FALSE(VerifySessionBinding(crafted(too_long), registered, kAgent, clock_).ok());
  Json no_iat = base;
  no_iat.erase("iat");
  EXPECT_FALSE(VerifySessionBinding(crafted(no_iat), registered, kAgent, clock_).ok());
  Json wrong_tpm = base;
  wrong_tpm["tpm_jkt"] = other->public_jwk().Thumbprint();
  EXPECT_FALSE(VerifySessionBinding(crafted(wrong_tpm), registered, kAgent, clock_).ok());
  Json bad_jkt = base;
  bad_jkt["jkt"] = "short";
  EXPECT_FALSE(VerifySessionBinding(crafted(bad_jkt), registered, kAgent, clock_).ok());
  // Another typ: a DPoP proof or an access token signed by the same key is
  // not a binding.
  EXPECT_FALSE(VerifySessionBinding(crafted(base, "dpop+jwt"), registered, kAgent, clock_).ok());
  EXPECT_FALSE(VerifySessionBinding(crafted(base, ""), registered, kAgent, clock_).ok());
  // A bit flip in the signature.
  std::string flipped = good;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifySessionBinding(flipped, registered, kAgent, clock_).ok());
  // Errors carry the OAuth code the token endpoint answers with.
  auto status = VerifySessionBinding(forged, registered, kAgent, clock_).status();
  EXPECT_EQ(OAuthErrorOf(status), oauth_error::kInvalidGrant);
}

}  // namespace
}  // namespace agentroot::attestation
