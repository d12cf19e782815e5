#include "agentroot/common/jwt.h"

#include <gtest/gtest.h>

#include <vector>

#include "test_vectors.h"

namespace agentroot::common {
namespace {

constexpr int64_t kNow = 1'800'000'000;

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto signer = OpenSslSigner::Generate(JwsAlgorithm::kEs256, "issuer-key");
    ASSERT_TRUE(signer.ok());
    signer_ = std::move(signer).value();
    keys_.push_back(*VerificationKey::Create(signer_->public_jwk(), {JwsAlgorithm::kEs256}));
    options_.issuer = "https://verifier.agentroot.test";
    options_.audience = "https://crm.example";
    options_.typ = "at+jwt";
    options_.leeway = std::chrono::seconds(30);
    options_.clock = &clock_;
  }

  Json Claims() const {
    return Json{{"iss", "https://verifier.agentroot.test"},
                {"aud", "https://crm.example"},
                {"sub", "spiffe://example.org/agent/crm-bot"},
                {"iat", kNow},
                {"exp", kNow + 300}};
  }

  Result<VerifiedJwt> Verify(const Json& claims, std::string_view typ = "at+jwt") {
    auto token = SignJwt(claims, *signer_, typ);
    EXPECT_TRUE(token.ok());
    return VerifyJwt(*token, keys_, options_);
  }

  FakeClock clock_{kNow};
  std::unique_ptr<OpenSslSigner> signer_;
  std::vector<VerificationKey> keys_;
  JwtValidationOptions options_;
};

TEST_F(JwtTest, ValidTokenVerifies) {
  auto verified = Verify(Claims());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->claims["sub"], "spiffe://example.org/agent/crm-bot");
  EXPECT_EQ(verified->kid, "issuer-key");
}

TEST_F(JwtTest, ExpiryHonoursLeewayExactly) {
  clock_.SetUnixSeconds(kNow + 300 + 29);
  EXPECT_TRUE(Verify(Claims()).ok());
  clock_.SetUnixSeconds(kNow + 300 + 30);  // exp + leeway: rejected
  auto result = Verify(Claims());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("expired"), std::string::npos);
  options_.leeway = std::chrono::seconds(0);
  clock_.SetUnixSeconds(kNow + 300);
  EXPECT_FALSE(Verify(Claims()).ok());
  clock_.SetUnixSeconds(kNow + 299);
  EXPECT_TRUE(Verify(Claims()).ok());
}

TEST_F(JwtTest, NotBeforeAndIssuedInTheFuture) {
  Json claims = Claims();
  claims["nbf"] = kNow + 31;
  EXPECT_FALSE(Verify(claims).ok());
  claims["nbf"] = kNow + 30;
  EXPECT_TRUE(Verify(claims).ok());
  claims = Claims();
  claims["iat"] = kNow + 31;
  auto result = Verify(claims);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("future"), std::string::npos);
}

TEST_F(JwtTest, ExpIsRequiredAndMustBeANumber) {
  Json claims = Claims();
  claims.erase("exp");
  EXPECT_FALSE(Verify(claims).ok());
  claims["exp"] = std::to_string(kNow + 300);
  EXPECT_FALSE(Verify(claims).ok());
  claims["exp"] = -1;
  EXPECT_FALSE(Verify(claims).ok());
  claims["exp"] = 1e300;
  EXPECT_FALSE(Verify(claims).ok());
  claims["exp"] = static_cast<double>(kNow) + 10.5;  // fractional NumericDate is valid
  EXPECT_TRUE(Verify(claims).ok());
}

TEST_F(JwtTest, IssuerMustMatch) {
  Json claims = Claims();
  claims["iss"] = "https://evil.example";
  EXPECT_EQ(Verify(claims).status().code(), StatusCode::kUnauthenticated);
  claims.erase("iss");
  EXPECT_FALSE(Verify(claims).ok());
  options_.issuer.clear();
  EXPECT_EQ(Verify(Claims()).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(JwtTest, AudienceStringOrArray) {
  Json claims = Claims();
  claims["aud"] = Json::array({"https://other.example", "https://crm.example"});
  EXPECT_TRUE(Verify(claims).ok());
  claims["aud"] = Json::array({"https://other.example"});
  EXPECT_FALSE(Verify(claims).ok());
  claims["aud"] = "https://crm.example.evil";
  EXPECT_FALSE(Verify(claims).ok());
  claims["aud"] = 5;
  EXPECT_FALSE(Verify(claims).ok());
  claims.erase("aud");
  EXPECT_FALSE(Verify(claims).ok());
  options_.audience.reset();
  EXPECT_TRUE(Verify(claims).ok());
}

TEST_F(JwtTest, TypIsExplicitAndCompareCaseInsensitively) {
  EXPECT_TRUE(Verify(Claims(), "application/at+jwt").ok());
  EXPECT_TRUE(Verify(Claims(), "AT+JWT").ok());
  EXPECT_FALSE(Verify(Claims(), "JWT").ok());
  EXPECT_FALSE(Verify(Claims(), "dpop+jwt").ok());
  EXPECT_FALSE(Verify(Claims(), "").ok());  // missing typ
}

TEST_F(JwtTest, MaxLifetime) {
  options_.max_lifetime = std::chrono::seconds(300);
  EXPECT_TRUE(Verify(Claims()).ok());
  Json claims = Claims();
  claims["exp"] = kNow + 301;
  EXPECT_FALSE(Verify(claims).ok());
  claims = Claims();
  claims.erase("iat");
  EXPECT_FALSE(Verify(claims).ok());
}

TEST_F(JwtTest, LeewayIsBounded) {
  options_.leeway = std::chrono::seconds(301);
  EXPECT_EQ(Verify(Claims()).status().code(), StatusCode::kFailedPrecondition);
  options_.leeway = std::chrono::seconds(-1);
  EXPECT_EQ(Verify(Claims()).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(JwtTest, ClaimsMustBeAnObjectWithoutDuplicates) {
  auto token = SignJwsCompact(Json{{"typ", "at+jwt"}}, AsBytes("[1,2]"), *signer_);
  EXPECT_FALSE(VerifyJwt(*token, keys_, options_).ok());
  std::string dup = R"({"iss":"https://verifier.agentroot.test","exp":1800000300,"aud":"https://crm.example","aud":"x"})";
  token = SignJwsCompact(Json{{"typ", "at+jwt"}}, AsBytes(dup), *signer_);
  EXPECT_FALSE(VerifyJwt(*token, keys_, options_).ok());
  EXPECT_FALSE(SignJwt(Json::array(), *signer_, "at+jwt").ok());
}

TEST_F(JwtTest, SignatureStillCheckedFirst) {
  auto other = OpenSslSigner::Generate(JwsAlgorithm::kEs256, "issuer-key");
  auto token = SignJwt(Claims(), **other, "at+jwt");
  EXPECT_EQ(VerifyJwt(*token, keys_, options_).status().code(), StatusCode::kUnauthenticated);
}

TEST(JwtVectorTest, Rfc7515A3AsJwtHonoursItsExp) {
  Json a3 = testing::LoadVector("rfc7515_a3.json");
  std::vector<VerificationKey> keys = {
      *VerificationKey::Create(*Jwk::FromJson(a3["jwk"]), {JwsAlgorithm::kEs256})};
  FakeClock clock(1300819380 - 100);
  JwtValidationOptions options;
  options.issuer = "joe";
  options.clock = &clock;
  auto verified = VerifyJwt(a3["jws"].get<std::string>(), keys, options);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->claims["http://example.com/is_root"], true);
  clock.SetUnixSeconds(1300819380 + 30);
  EXPECT_FALSE(VerifyJwt(a3["jws"].get<std::string>(), keys, options).ok());
}

}  // namespace
}  // namespace agentroot::common
