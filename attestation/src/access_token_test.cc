#include "agentroot/attestation/access_token.h"

#include <gtest/gtest.h>

#include <atomic>

#include "agentroot/common/jwt.h"

namespace agentroot::attestation {
namespace {

using common::Json;

constexpr int64_t kNow = 1800000000;
constexpr char kIssuer[] = "https://verifier.agentroot.test";
constexpr char kAudience[] = "https://crm.example";
constexpr char kUrl[] = "https://crm.example/v1/accounts";

class AccessTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    issuer_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value();
    agent_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
    attacker_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
    published_ = {IssuerJwk(*issuer_)};
    jwks_ = std::make_shared<JwksCache>(
        [this]() -> common::Result<std::string> {
          ++fetches_;
          return JwksDocument(published_).dump();
        },
        clock_, JwksCache::Options{});
    replay_ = std::make_shared<InMemoryReplayCache>(1000, clock_);
    AccessTokenPolicy policy;
    policy.issuer = kIssuer;
    policy.audience = kAudience;
    policy.is_revoked = [this](std::string_view jti) { return jti == revoked_jti_; };
    validator_ = std::move(AccessTokenValidator::Create(policy, jwks_, replay_, &clock_)).value();
  }

  static common::Jwk IssuerJwk(const common::Signer& s) {
    Json j = s.public_jwk().ToJson();
    j["alg"] = "ES256";
    return *common::Jwk::FromJson(j);
  }

  Json Claims(const common::Signer& bound_to) const {
    return Json{{"iss", kIssuer}, {"aud", kAudience}, {"sub", "spiffe://example.org/agent/crm-bot"},
                {"client_id", "spiffe://example.org/agent/crm-bot"}, {"scope", "crm.read crm.write"},
                {"jti", "tok-1"}, {"iat", kNow}, {"exp", kNow + 300},
                {"cnf", {{"jkt", bound_to.public_jwk().Thumbprint()}}}};
  }

  std::string Token(const Json& claims, const common::Signer* signer = nullptr) const {
    return *common::SignJwt(claims, signer != nullptr ? *signer : *issuer_, "at+jwt");
  }

  std::vector<std::string> Proof(const common::Signer& key, const std::string& token, const char* method = "GET",
                                 const char* url = kUrl) const {
    return {*CreateDpopProof(key, method, url, kNow, token)};
  }

  common::Result<AuthorizedRequest> Call(const std::string& token, const std::vector<std::string>& proofs,
                                         std::string_view scope = {}) {
    return validator_->Validate("DPoP " + token, proofs, "GET", kUrl, scope);
  }

  common::FakeClock clock_{kNow};
  std::unique_ptr<common::OpenSslSigner> issuer_, agent_, attacker_;
  std::vector<common::Jwk> published_;
  std::atomic<int> fetches_{0};
  std::string revoked_jti_ = "none";
  std::shared_ptr<JwksCache> jwks_;
  std::shared_ptr<InMemoryReplayCache> replay_;
  std::unique_ptr<AccessTokenValidator> validator_;
};

TEST_F(AccessTokenTest, MalformedTokenIsRefusedWithoutConsultingTheJwks) {
  std::string token = Token(Claims(*agent_));
  for (const std::string& bad : {token + ".x", token.substr(0, token.rfind('.')), "W10." + token.substr(token.find('.') + 1),
                                 std::string("!") + token}) {
    auto result = Call(bad, Proof(*agent_, token));
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(OAuthErrorOf(result.status()), oauth_error::kInvalidToken) << result.status().message();
  }
  EXPECT_EQ(fetches_.load(), 0);
  EXPECT_TRUE(Call(token, Proof(*agent_, token)).ok());
  EXPECT_EQ(fetches_.load(), 1);
}

TEST_F(AccessTokenTest, BoundTokenWithTheAgentsProofIsAuthorized) {
  std::string token = Token(Claims(*agent_));
  auto result = Call(token, Proof(*agent_, token), "crm.read");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->subject, "spiffe://example.org/agent/crm-bot");
  EXPECT_EQ(result->jkt, agent_->public_jwk().Thumbprint());
  EXPECT_EQ(result->scopes, (std::vector<std::string>{"crm.read", "crm.write"}));
}

// THREATS.md #1: the stolen token replayed from another host.
TEST_F(AccessTokenTest, StolenTokenIsUselessWithoutTheBoundKey) {
  std::string token = Token(Claims(*agent_));
  // No proof at all.
  auto no_proof = Call(token, {});
  ASSERT_FALSE(no_proof.ok());
  EXPECT_EQ(OAuthErrorOf(no_proof.status()), oauth_error::kInvalidToken);
  // A valid proof by the attacker's own key (right htm, htu, ath).
  auto foreign = Call(token, Proof(*attacker_, token));
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(OAuthErrorOf(foreign.status()), oauth_error::kInvalidDpopProof);
  EXPECT_NE(foreign.status().message().find("cnf.jkt"), std::string::npos);
  // As a bearer token.
  auto bearer = validator_->Validate("Bearer " + token, {}, "GET", kUrl);
  ASSERT_FALSE(bearer.ok());
  EXPECT_EQ(OAuthErrorOf(bearer.status()), oauth_error::kInvalidToken);
  // With a captured proof of the real agent: replayed jti.
  std::vector<std::string> captured = Proof(*agent_, token);
  ASSERT_TRUE(Call(token, captured).ok());
  auto replayed = Call(token, captured);
  ASSERT_FALSE(replayed.ok());
  EXPECT_NE(replayed.status().message().find("replayed"), std::string::npos);
  // With a captured proof made for another request.
  auto other_url = Call(token, Proof(*agent_, token, "GET", "https://crm.example/v1/contacts"));
  EXPECT_FALSE(other_url.ok());
  auto other_method = Call(token, Proof(*agent_, token, "POST"));
  EXPECT_FALSE(other_method.ok());
  // A proof for another token of the same agent (ath mismatch).
  Json c2 = Claims(*agent_);
  c2["jti"] = "tok-2";
  std::string token2 = Token(c2);
  EXPECT_FALSE(Call(token, Proof(*agent_, token2)).ok());
}

TEST_F(AccessTokenTest, ForeignProofDoesNotBurnTheOwnersJti) {
  // A proof by another key is rejected before its jti is recorded.
  std::string token = Token(Claims(*agent_));
  EXPECT_FALSE(Call(token, Proof(*attacker_, token)).ok());
  EXPECT_EQ(replay_->size(), 0u);
}

TEST_F(AccessTokenTest, ExactlyOneDpopHeader) {
  std::string token = Token(Claims(*agent_));
  std::vector<std::string> two = Proof(*agent_, token);
  two.push_back(two.front());
  auto result = Call(token, two);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(OAuthErrorOf(result.status()), oauth_error::kInvalidDpopProof);
}

TEST_F(AccessTokenTest, TokenClaimsAreEnforced) {
  auto check = [&](Json claims, const char* what) {
    std::string token = Token(claims);
    auto result = Call(token, Proof(*agent_, token));
    EXPECT_FALSE(result.ok()) << what;
    if (!result.ok()) {
      EXPECT_EQ(OAuthErrorOf(result.status()), oauth_error::kInvalidToken) << what;
    }
  };
  Json c = Claims(*agent_);
  c.erase("cnf");
  check(c, "unbound token");
  c = Claims(*agent_);
  c["aud"] = "https://other.example";
  check(c, "audience");
  c = Claims(*agent_);
  c["iss"] = "https://evil.example";
  check(c, "issuer");
  c = Claims(*agent_);
  c["exp"] = kNow - 31;
  check(c, "expired");
  c = Claims(*agent_);
  c["exp"] = kNow + 7200;
  check(c, "lifetime over the maximum");
  for (const char* required : {"sub", "client_id", "jti"}) {
    c = Claims(*agent_);
    c.erase(required);
    check(c, required);
  }
}

TEST_F(AccessTokenTest, TokenTypAndSignerAreEnforced) {
  // typ JWT instead of at+jwt.
  std::string jwt = *common::SignJwt(Claims(*agent_), *issuer_, "JWT");
  EXPECT_FALSE(Call(jwt, Proof(*agent_, jwt)).ok());
  // Signed by the agent's own key with the issuer's kid.
  auto forger = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1");
  std::string forged = Token(Claims(*agent_), forger->get());
  EXPECT_FALSE(Call(forged, Proof(*agent_, forged)).ok());
}

TEST_F(AccessTokenTest, RevokedTokenIsRefused) {
  revoked_jti_ = "tok-1";
  std::string token = Token(Claims(*agent_));
  auto result = Call(token, Proof(*agent_, token));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("revoked"), std::string::npos);
}

TEST_F(AccessTokenTest, InsufficientScope) {
  std::string token = Token(Claims(*agent_));
  auto result = Call(token, Proof(*agent_, token), "crm.admin");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(OAuthErrorOf(result.status()), oauth_error::kInsufficientScope);
  EXPECT_EQ(result.status().code(), common::StatusCode::kPermissionDenied);
}

TEST_F(AccessTokenTest, KeyRotationRefetchesOnceAndBogusKidsAreRateLimited) {
  std::string token = Token(Claims(*agent_));
  ASSERT_TRUE(Call(token, Proof(*agent_, token)).ok());
  EXPECT_EQ(fetches_.load(), 1);
  // Rotation: a new issuer key is published next to the old one.
  auto next = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-2");
  published_.push_back(IssuerJwk(**next));
  clock_.Advance(std::chrono::seconds(31));
  Json c = Claims(*agent_);
  c["iat"] = clock_.NowUnixSeconds();
  c["exp"] = clock_.NowUnixSeconds() + 300;
  std::string rotated = *common::SignJwt(c, **next, "at+jwt");
  std::vector<std::string> proof = {*CreateDpopProof(*agent_, "GET", kUrl, clock_.NowUnixSeconds(), rotated)};
  auto result = validator_->Validate("DPoP " + rotated, proof, "GET", kUrl);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(fetches_.load(), 2);
  // A flood of unknown kids fetches at most once per min_refresh_interval.
  for (int i = 0; i < 20; ++i) {
    auto bogus = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "bogus-" + std::to_string(i));
    std::string t = *common::SignJwt(c, **bogus, "at+jwt");
    EXPECT_FALSE(validator_->Validate("DPoP " + t, proof, "GET", kUrl).ok());
  }
  EXPECT_LE(fetches_.load(), 3);
}

TEST(JwksTest, ParsesOnlyUsableSigningKeys) {
  auto a = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "a");
  Json jwk = (*a)->public_jwk().ToJson();
  jwk["alg"] = "ES256";
  Json enc = jwk;
  enc["use"] = "enc";
  enc["kid"] = "e";
  auto keys = ParseJwks(Json{{"keys", {jwk, enc}}}.dump());
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys->size(), 1u);
  Json no_alg = jwk;
  no_alg.erase("alg");
  EXPECT_FALSE(ParseJwks(Json{{"keys", {no_alg}}}.dump()).ok());
  Json no_kid = jwk;
  no_kid.erase("kid");
  EXPECT_FALSE(ParseJwks(Json{{"keys", {no_kid}}}.dump()).ok());
  EXPECT_FALSE(ParseJwks(Json{{"keys", {jwk, jwk}}}.dump()).ok());  // duplicate kid
  Json hs = jwk;
  hs["alg"] = "HS256";
  EXPECT_FALSE(ParseJwks(Json{{"keys", {hs}}}.dump()).ok());
  EXPECT_FALSE(ParseJwks("{}").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":[]})").ok());
}

}  // namespace
}  // namespace agentroot::attestation
