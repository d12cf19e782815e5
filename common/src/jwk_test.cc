#include "agentroot/common/jwk.h"

#include <gtest/gtest.h>

#include "agentroot/common/signer.h"
#include "test_vectors.h"

namespace agentroot::common {
namespace {

using testing::LoadVector;

TEST(JwkTest, Rfc7638ThumbprintVector) {
  Json vector = LoadVector("rfc7638.json");
  auto jwk = Jwk::FromJson(vector["jwk"]);
  ASSERT_TRUE(jwk.ok()) << jwk.status().ToString();
  EXPECT_EQ(jwk->Thumbprint(), vector["thumbprint"].get<std::string>());
  EXPECT_EQ(jwk->kid(), "2011-04-29");
  EXPECT_EQ(jwk->bits(), 2048);
}

TEST(JwkTest, ThumbprintIgnoresMetadataAndMemberOrder) {
  Json vector = LoadVector("rfc7638.json");
  Json reordered = Json::object();
  reordered["e"] = vector["jwk"]["e"];
  reordered["n"] = vector["jwk"]["n"];
  reordered["kty"] = "RSA";
  reordered["use"] = "sig";
  auto jwk = Jwk::FromJson(reordered);
  ASSERT_TRUE(jwk.ok());
  EXPECT_EQ(jwk->Thumbprint(), vector["thumbprint"].get<std::string>());
}

TEST(JwkTest, EcKeyFromRfc7515RoundTripsThroughOpenSsl) {
  Json vector = LoadVector("rfc7515_a3.json");
  auto jwk = Jwk::FromJson(vector["jwk"]);
  ASSERT_TRUE(jwk.ok()) << jwk.status().ToString();
  auto pkey = jwk->ToPublicKey();
  ASSERT_TRUE(pkey.ok());
  auto back = Jwk::FromPublicKey(pkey->get());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->SameKey(*jwk));
  EXPECT_EQ(back->ToJson()["x"], vector["jwk"]["x"]);
  EXPECT_EQ(back->Thumbprint(), jwk->Thumbprint());
}

TEST(JwkTest, PrivateKeyPairMatchesPublicVector) {
  // The RFC's d really belongs to its (x, y): OpenSSL's pairwise check.
  Json v = LoadVector("rfc7515_a3.json");
  EvpPkeyPtr key = testing::P256PrivateKey(v["d"], v["jwk"]["x"], v["jwk"]["y"]);
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  EXPECT_EQ(EVP_PKEY_pairwise_check(ctx.get()), 1);
}

TEST(JwkTest, GeneratedKeysRoundTrip) {
  for (JwsAlgorithm alg : {JwsAlgorithm::kEs256, JwsAlgorithm::kRs256}) {
    auto signer = OpenSslSigner::Generate(alg);
    ASSERT_TRUE(signer.ok());
    const Jwk& jwk = (*signer)->public_jwk();
    auto parsed = Jwk::Parse(jwk.ToJson().dump());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_TRUE(parsed->SameKey(jwk));
    EXPECT_EQ(parsed->kid(), jwk.Thumbprint());  // default kid is the thumbprint
  }
}

TEST(JwkTest, RejectsPrivateMembers) {
  Json v = LoadVector("rfc7515_a3.json");
  Json with_d = v["jwk"];
  with_d["d"] = v["d"];
  auto parsed = Jwk::FromJson(with_d);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("private"), std::string::npos);
  // The error must not echo the secret.
  EXPECT_EQ(parsed.status().message().find(v["d"].get<std::string>()), std::string::npos);
}

TEST(JwkTest, RejectsMalformedEcKeys) {
  Json base = LoadVector("rfc7515_a3.json")["jwk"];
  Json bad_curve = base;
  bad_curve["crv"] = "P-384";
  EXPECT_FALSE(Jwk::FromJson(bad_curve).ok());
  Json short_x = base;
  short_x["x"] = Base64UrlEncode(Bytes(31, 1));
  EXPECT_FALSE(Jwk::FromJson(short_x).ok());
  Json padded = base;
  padded["x"] = base["x"].get<std::string>() + "=";
  EXPECT_FALSE(Jwk::FromJson(padded).ok());
  // A point not on the curve (y + 1).
  Json off_curve = base;
  Bytes y = *Base64UrlDecode(base["y"].get<std::string>());
  y.back() ^= 1;
  off_curve["y"] = Base64UrlEncode(y);
  EXPECT_FALSE(Jwk::FromJson(off_curve).ok());
  Json no_kty = base;
  no_kty.erase("kty");
  EXPECT_FALSE(Jwk::FromJson(no_kty).ok());
  Json oct = Json::parse(R"({"kty":"oct","k":"AAAA"})");
  EXPECT_FALSE(Jwk::FromJson(oct).ok());
}

TEST(JwkTest, RejectsWeakOrNonMinimalRsaKeys) {
  Json base = LoadVector("rfc7638.json")["jwk"];
  Bytes n = *Base64UrlDecode(base["n"].get<std::string>());
  Json leading_zero = base;
  Bytes n0 = n;
  n0.insert(n0.begin(), 0);
  leading_zero["n"] = Base64UrlEncode(n0);
  EXPECT_FALSE(Jwk::FromJson(leading_zero).ok());
  Json short_n = base;
  short_n["n"] = Base64UrlEncode(ByteView(n).first(128));  // 1024 bits
  EXPECT_FALSE(Jwk::FromJson(short_n).ok());
  Json even_e = base;
  even_e["e"] = Base64UrlEncode(Bytes{0x01, 0x00, 0x00});
  EXPECT_FALSE(Jwk::FromJson(even_e).ok());
  Json e_one = base;
  e_one["e"] = "AQ";
  EXPECT_FALSE(Jwk::FromJson(e_one).ok());
}

TEST(JwkTest, RejectsSmallRsaOpenSslKey) {
  EvpPkeyPtr small(EVP_RSA_gen(1024));
  ASSERT_TRUE(small);
  EXPECT_FALSE(Jwk::FromPublicKey(small.get()).ok());
}

}  // namespace
}  // namespace agentroot::common
