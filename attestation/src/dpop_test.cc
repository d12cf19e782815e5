#include "agentroot/attestation/dpop.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agentroot/common/jws.h"

namespace agentroot::attestation {
namespace {

using common::Json;

Json Vectors() {
  std::ifstream in(std::string(AGENTROOT_ATTESTATION_TESTDATA) + "/rfc9449.json");
  std::stringstream buf;
  buf << in.rdbuf();
  return Json::parse(buf.str());
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1) out.push_back(s.substr(start, dot - start));
  out.push_back(s.substr(start));
  return out;
}

class Rfc9449Test : public ::testing::Test {
 protected:
  DpopRequirements TokenRequest() {
    DpopRequirements r;
    r.method = v_["token_request"]["method"];
    r.url = v_["token_request"]["url"];
    r.clock = &clock_;
    return r;
  }
  Json v_ = Vectors();
  common::FakeClock clock_{1562262616};
};

TEST_F(Rfc9449Test, TokenRequestProofVerifies) {
  auto proof = VerifyDpopProof(v_["token_request_proof"].get<std::string>(), TokenRequest(), nullptr);
  ASSERT_TRUE(proof.ok()) << proof.status().ToString();
  EXPECT_EQ(proof->jkt, v_["jkt"].get<std::string>());
  EXPECT_EQ(proof->jti, "-BwC3ESc6acc2lTc");
  EXPECT_EQ(proof->iat, 1562262616);
}

TEST_F(Rfc9449Test, ResourceProofWithAthVerifies) {
  const Json& r = v_["resource_request"];
  EXPECT_EQ(AccessTokenHash(r["access_token"].get<std::string>()), r["ath"].get<std::string>());
  clock_.SetUnixSeconds(r["iat"].get<int64_t>() + 10);
  DpopRequirements req;
  req.method = r["method"];
  req.url = r["url"];
  req.access_token = r["access_token"].get<std::string>();
  req.clock = &clock_;
  auto proof = VerifyDpopProof(v_["resource_proof"].get<std::string>(), req, nullptr);
  ASSERT_TRUE(proof.ok()) << proof.status().ToString();
  EXPECT_EQ(proof->jkt, v_["jkt"].get<std::string>());
  // Another token with the same proof: ath mismatch (THREATS #1).
  req.access_token = "another-token";
  auto wrong = VerifyDpopProof(v_["resource_proof"].get<std::string>(), req, nullptr);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(OAuthErrorOf(wrong.status()), oauth_error::kInvalidDpopProof);
}

TEST_F(Rfc9449Test, WrongMethodOrUrlIsRejected) {
  DpopRequirements req = TokenRequest();
  req.method = "GET";
  EXPECT_FALSE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok());
  req = TokenRequest();
  req.method = "post";  // methods are case-sensitive
  EXPECT_FALSE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok());
  for (const char* url : {"https://server.example.com/token2", "https://evil.example.com/token",
                          "http://server.example.com/token", "https://server.example.com:8443/token"}) {
    req = TokenRequest();
    req.url = url;
    EXPECT_FALSE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok()) << url;
  }
  // Equivalent spellings of the same URL match (RFC 3986 normalization).
  for (const char* url : {"HTTPS://Server.Example.COM:443/token", "https://server.example.com/token?x=1#f",
                          "https://server.example.com/./a/../token", "https://server.example.com/%74oken"}) {
    req = TokenRequest();
    req.url = url;
    EXPECT_TRUE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok()) << url;
  }
}

TEST_F(Rfc9449Test, IatWindowIsEnforced) {
  DpopRequirements req = TokenRequest();
  clock_.SetUnixSeconds(1562262616 + 60);
  EXPECT_TRUE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok());
  clock_.SetUnixSeconds(1562262616 + 61);
  EXPECT_FALSE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok());
  clock_.SetUnixSeconds(1562262616 - 6);
  EXPECT_FALSE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), req, nullptr).ok());
}

TEST_F(Rfc9449Test, ReplayedProofIsRejectedOnce) {
  InMemoryReplayCache cache(100, clock_);
  EXPECT_TRUE(VerifyDpopProof(v_["token_request_proof"].get<std::string>(), TokenRequest(), &cache).ok());
  auto again = VerifyDpopProof(v_["token_request_proof"].get<std::string>(), TokenRequest(), &cache);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("replayed"), std::string::npos);
}

TEST_F(Rfc9449Test, ParsedProofIsUnverifiedUntilVerified) {
  // ParseDpopProof reads claims without checking anything; verifying that
  // parse is the same as verifying the string.
  const std::string proof = v_["token_request_proof"].get<std::string>();
  auto parsed = ParseDpopProof(proof, TokenRequest());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->payload_json["htm"], "POST");
  auto verified = VerifyDpopProof(*std::move(parsed), TokenRequest(), nullptr);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->jkt, v_["jkt"].get<std::string>());
  // A forged signature parses (nothing is verified yet) and then fails.
  std::vector<std::string> parts = Split(proof);
  std::string forged = parts[0] + "." + parts[1] + "." + common::Base64UrlEncode(common::Bytes(64, 7));
  auto forged_parse = ParseDpopProof(forged, TokenRequest());
  ASSERT_TRUE(forged_parse.ok());
  auto refused = VerifyDpopProof(*std::move(forged_parse), TokenRequest(), nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(OAuthErrorOf(refused.status()), oauth_error::kInvalidDpopProof);
  // Malformed or oversized proofs fail the parse itself, as invalid_dpop_proof.
  DpopRequirements small = TokenRequest();
  small.max_proof_bytes = proof.size() - 1;
  for (const auto& [text, req] : {std::pair{proof + ".x", TokenRequest()}, std::pair{parts[0] + "." + parts[1], TokenRequest()},
                                  std::pair{std::string("[1]." + parts[1] + "." + parts[2]), TokenRequest()},
                                  std::pair{proof, small}}) {
    auto failed = ParseDpopProof(text, req);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(OAuthErrorOf(failed.status()), oauth_error::kInvalidDpopProof) << failed.status().message();
  }
}

TEST_F(Rfc9449Test, EveryBitFlipAndTruncationIsRejected) {
  std::string proof = v_["token_request_proof"].get<std::string>();
  std::vector<std::string> parts = Split(proof);
  for (int part = 0; part < 3; ++part) {
    common::Bytes decoded = *common::Base64UrlDecode(parts[part]);
    for (std::size_t i = 0; i < decoded.size(); ++i) {
      common::Bytes flipped = decoded;
      flipped[i] ^= 0x04;
      std::vector<std::string> t = parts;
      t[part] = common::Base64UrlEncode(flipped);
      EXPECT_FALSE(VerifyDpopProof(t[0] + "." + t[1] + "." + t[2], TokenRequest(), nullptr).ok()) << part << ":" << i;
    }
  }
  for (std::size_t len = 0; len < proof.size(); len += 7) {
    EXPECT_FALSE(VerifyDpopProof(proof.substr(0, len), TokenRequest(), nullptr).ok()) << len;
  }
}

class DpopProofTest : public ::testing::Test {
 protected:
  std::string Forge(Json header, Json claims, const common::Signer& signer) {
    return *common::SignJwsCompact(header, common::AsBytes(claims.dump()), signer);
  }
  Json Claims() { return {{"jti", "j1"}, {"htm", "POST"}, {"htu", "https://v.example/token"}, {"iat", kNow}}; }
  Json Header() {
    Json jwk = signer_->public_jwk().ToJson();
    jwk.erase("kid");
    return {{"typ", "dpop+jwt"}, {"jwk", jwk}};
  }
  DpopRequirements Req() {
    DpopRequirements r;
    r.method = "POST";
    r.url = "https://v.example/token";
    r.clock = &clock_;
    return r;
  }
  static constexpr int64_t kNow = 1800000000;
  common::FakeClock clock_{kNow};
  std::unique_ptr<common::OpenSslSigner> signer_ = *common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256);
};

TEST_F(DpopProofTest, CreatedProofsVerifyForEachAlgorithm) {
  for (auto alg : {common::JwsAlgorithm::kEs256, common::JwsAlgorithm::kPs256, common::JwsAlgorithm::kRs256}) {
    auto signer = common::OpenSslSigner::Generate(alg);
    auto proof = CreateDpopProof(**signer, "POST", "https://v.example/token?q=1", kNow, "tok", "n-1");
    ASSERT_TRUE(proof.ok());
    DpopRequirements req = Req();
    req.access_token = "tok";
    req.nonce = "n-1";
    auto verified = VerifyDpopProof(*proof, req, nullptr);
    ASSERT_TRUE(verified.ok()) << verified.status().ToString();
    EXPECT_EQ(verified->jkt, (*signer)->public_jwk().Thumbprint());
  }
}

TEST_F(DpopProofTest, HeaderRequirements) {
  Json h = Header();
  h["typ"] = "JWT";
  EXPECT_FALSE(VerifyDpopProof(Forge(h, Claims(), *signer_), Req(), nullptr).ok());
  h = Header();
  h.erase("typ");
  EXPECT_FALSE(VerifyDpopProof(Forge(h, Claims(), *signer_), Req(), nullptr).ok());
  h = Header();
  h.erase("jwk");
  EXPECT_FALSE(VerifyDpopProof(Forge(h, Claims(), *signer_), Req(), nullptr).ok());
  // The embedded key is not the signer's.
  auto other = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256);
  h = Header();
  h["jwk"] = (*other)->public_jwk().ToJson();
  EXPECT_FALSE(VerifyDpopProof(Forge(h, Claims(), *signer_), Req(), nullptr).ok());
  // A private key in the header is refused.
  h = Header();
  h["jwk"]["d"] = "AAAA";
  EXPECT_FALSE(VerifyDpopProof(Forge(h, Claims(), *signer_), Req(), nullptr).ok());
  // Algorithm not allowed by the server's policy.
  DpopRequirements only_ps = Req();
  only_ps.allowed_algorithms = {common::JwsAlgorithm::kPs256};
  EXPECT_FALSE(VerifyDpopProof(Forge(Header(), Claims(), *signer_), only_ps, nullptr).ok());
}

TEST_F(DpopProofTest, AlgNoneAndHmacAreRejected) {
  Json h = Header();
  h["alg"] = "none";
  std::string unsigned_proof = common::Base64UrlEncode(h.dump()) + "." + common::Base64UrlEncode(Claims().dump()) + ".";
  EXPECT_FALSE(VerifyDpopProof(unsigned_proof, Req(), nullptr).ok());
  h["alg"] = "HS256";
  EXPECT_FALSE(VerifyDpopProof(unsigned_proof + "AAAA", Req(), nullptr).ok());
}

TEST_F(DpopProofTest, ClaimRequirements) {
  for (const char* missing : {"jti", "htm", "htu", "iat"}) {
    Json c = Claims();
    c.erase(missing);
    EXPECT_FALSE(VerifyDpopProof(Forge(Header(), c, *signer_), Req(), nullptr).ok()) << missing;
  }
  Json c = Claims();
  c["iat"] = std::to_string(kNow);
  EXPECT_FALSE(VerifyDpopProof(Forge(Header(), c, *signer_), Req(), nullptr).ok());
  c = Claims();
  c["jti"] = std::string(300, 'a');
  EXPECT_FALSE(VerifyDpopProof(Forge(Header(), c, *signer_), Req(), nullptr).ok());
  // ath is required once a token is presented.
  DpopRequirements with_token = Req();
  with_token.access_token = "tok";
  EXPECT_FALSE(VerifyDpopProof(Forge(Header(), Claims(), *signer_), with_token, nullptr).ok());
}

TEST_F(DpopProofTest, ServerNonceMismatchAsksForANewNonce) {
  DpopRequirements req = Req();
  req.nonce = "expected";
  auto result = VerifyDpopProof(Forge(Header(), Claims(), *signer_), req, nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(OAuthErrorOf(result.status()), oauth_error::kUseDpopNonce);
  Json c = Claims();
  c["nonce"] = "expected";
  EXPECT_TRUE(VerifyDpopProof(Forge(Header(), c, *signer_), req, nullptr).ok());
}

TEST(NormalizeHtuTest, NormalizesAndRejects) {
  EXPECT_EQ(*NormalizeHtu("HTTPS://A.Example:443"), "https://a.example/");
  EXPECT_EQ(*NormalizeHtu("http://a.example:80/x/./y/../z?q#f"), "http://a.example/x/z");
  EXPECT_EQ(*NormalizeHtu("https://a.example:8443/%7euser/%2f"), "https://a.example:8443/~user/%2F");
  EXPECT_EQ(*NormalizeHtu("https://[::1]:443/p"), "https://[::1]/p");
  for (const char* bad : {"ftp://a/", "https://user@a.example/", "a.example/x", "https://a.example:99999/",
                          "https://a.example/%zz", "https://a.example/%4", "https:///x", "https://a b/"}) {
    EXPECT_FALSE(NormalizeHtu(bad).ok()) << bad;
  }
}

TEST(ReplayCacheTest, BoundedFailsClosedAndForgetsExpired) {
  common::FakeClock clock(1000);
  InMemoryReplayCache cache(2, clock);
  EXPECT_TRUE(cache.CheckAndRecord("a", 1010).ok());
  EXPECT_EQ(cache.CheckAndRecord("a", 1010).code(), common::StatusCode::kAlreadyExists);
  EXPECT_TRUE(cache.CheckAndRecord("b", 1020).ok());
  EXPECT_EQ(cache.CheckAndRecord("c", 1020).code(), common::StatusCode::kResourceExhausted);
  clock.SetUnixSeconds(1011);  // "a" expired
  EXPECT_TRUE(cache.CheckAndRecord("c", 1020).ok());
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace agentroot::attestation
