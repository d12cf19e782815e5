#include "agentroot/common/jws.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <vector>

#include "agentroot/common/signer.h"
#include "test_vectors.h"

namespace agentroot::common {

// Readable test names in ctest output (found by ADL, so not in the anonymous namespace).
void PrintTo(JwsAlgorithm alg, std::ostream* os) { *os << JwsAlgorithmName(alg); }

namespace {

using testing::LoadVector;

VerificationKey KeyFor(const Json& jwk_json, std::set<JwsAlgorithm> allowed) {
  auto jwk = Jwk::FromJson(jwk_json);
  EXPECT_TRUE(jwk.ok()) << jwk.status().ToString();
  auto key = VerificationKey::Create(*jwk, std::move(allowed));
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return *key;
}

VerificationKey KeyFor(const Signer& signer, std::set<JwsAlgorithm> allowed) {
  return *VerificationKey::Create(signer.public_jwk(), std::move(allowed));
}

std::vector<std::string> Split(const std::string& compact) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = compact.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(compact.substr(start, dot - start));
  }
  parts.push_back(compact.substr(start));
  return parts;
}

std::string Join(const std::vector<std::string>& parts) {
  return parts[0] + "." + parts[1] + "." + parts[2];
}

class Rfc7515Test : public ::testing::Test {
 protected:
  Json a2_ = LoadVector("rfc7515_a2.json");
  Json a3_ = LoadVector("rfc7515_a3.json");
};

TEST_F(Rfc7515Test, A3Es256VectorVerifies) {
  VerificationKey key = KeyFor(a3_["jwk"], {JwsAlgorithm::kEs256});
  std::vector<VerificationKey> keys = {key};
  auto verified = VerifyJwsCompact(a3_["jws"].get<std::string>(), keys);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->algorithm, JwsAlgorithm::kEs256);
  EXPECT_EQ(ToString(verified->payload), a3_["payload"].get<std::string>());
}

TEST_F(Rfc7515Test, A2Rs256VectorVerifies) {
  std::vector<VerificationKey> keys = {KeyFor(a2_["jwk"], {JwsAlgorithm::kRs256})};
  auto verified = VerifyJwsCompact(a2_["jws"].get<std::string>(), keys);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->algorithm, JwsAlgorithm::kRs256);
  EXPECT_EQ(ToString(verified->payload), a2_["payload"].get<std::string>());
}

TEST_F(Rfc7515Test, SigningWithA3PrivateKeyVerifiesWithA3PublicKey) {
  EvpPkeyPtr priv = testing::P256PrivateKey(a3_["d"], a3_["jwk"]["x"], a3_["jwk"]["y"]);
  auto signer = OpenSslSigner::Create(std::move(priv), JwsAlgorithm::kEs256, "a3");
  ASSERT_TRUE(signer.ok());
  auto jws = SignJwsCompact(Json::object(), AsBytes(a3_["payload"].get<std::string>()), **signer);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(Base64UrlDecode(Split(*jws)[2])->size(), 64u);  // raw r||s, not DER
  Json jwk = a3_["jwk"];
  jwk["kid"] = "a3";
  std::vector<VerificationKey> keys = {KeyFor(jwk, {JwsAlgorithm::kEs256})};
  EXPECT_TRUE(VerifyJwsCompact(*jws, keys).ok());
}

TEST_F(Rfc7515Test, EveryBitFlipIsRejected) {
  for (const Json* vector : {&a2_, &a3_}) {
    bool is_ec = (*vector)["jwk"]["kty"] == "EC";
    std::vector<VerificationKey> keys = {
        KeyFor((*vector)["jwk"], {is_ec ? JwsAlgorithm::kEs256 : JwsAlgorithm::kRs256})};
    std::vector<std::string> parts = Split((*vector)["jws"].get<std::string>());
    int checked = 0;
    for (int part = 0; part < 3; ++part) {
      Bytes decoded = *Base64UrlDecode(parts[part]);
      for (std::size_t i = 0; i < decoded.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
          Bytes flipped = decoded;
          flipped[i] ^= static_cast<uint8_t>(1u << bit);
          std::vector<std::string> tampered = parts;
          tampered[part] = Base64UrlEncode(flipped);
          EXPECT_FALSE(VerifyJwsCompact(Join(tampered), keys).ok())
              << "part " << part << " byte " << i << " bit " << bit;
          ++checked;
        }
      }
    }
    EXPECT_GT(checked, 700);
  }
}

TEST_F(Rfc7515Test, EveryTruncationIsRejected) {
  std::vector<VerificationKey> keys = {KeyFor(a3_["jwk"], {JwsAlgorithm::kEs256})};
  std::string jws = a3_["jws"].get<std::string>();
  for (std::size_t len = 0; len < jws.size(); ++len) {
    EXPECT_FALSE(VerifyJwsCompact(jws.substr(0, len), keys).ok()) << len;
  }
  // Dropping bytes of the decoded signature, and extending it.
  std::vector<std::string> parts = Split(jws);
  Bytes sig = *Base64UrlDecode(parts[2]);
  for (std::size_t len : {0u, 1u, 32u, 63u}) {
    parts[2] = Base64UrlEncode(ByteView(sig).first(len));
    EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok()) << len;
  }
  Bytes longer = sig;
  longer.push_back(0);
  parts[2] = Base64UrlEncode(longer);
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
}

TEST_F(Rfc7515Test, WrongKeyIsRejected) {
  auto other = OpenSslSigner::Generate(JwsAlgorithm::kEs256);
  ASSERT_TRUE(other.ok());
  std::vector<VerificationKey> keys = {KeyFor(**other, {JwsAlgorithm::kEs256})};
  auto result = VerifyJwsCompact(a3_["jws"].get<std::string>(), keys);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
}

TEST_F(Rfc7515Test, KeyThatDoesNotAllowTheAlgorithmRejects) {
  // The A.2 RSA key trusted for PS256 only must refuse the RS256 token.
  std::vector<VerificationKey> keys = {KeyFor(a2_["jwk"], {JwsAlgorithm::kPs256})};
  auto result = VerifyJwsCompact(a2_["jws"].get<std::string>(), keys);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("not allowed"), std::string::npos);
}

TEST(VerificationKeyTest, RejectsAllowlistThatDoesNotFitTheKey) {
  Json a3 = LoadVector("rfc7515_a3.json");
  auto jwk = Jwk::FromJson(a3["jwk"]);
  ASSERT_TRUE(jwk.ok());
  EXPECT_FALSE(VerificationKey::Create(*jwk, {JwsAlgorithm::kRs256}).ok());
  EXPECT_FALSE(VerificationKey::Create(*jwk, {}).ok());
}

class JwsRoundTripTest : public ::testing::TestWithParam<JwsAlgorithm> {};

TEST_P(JwsRoundTripTest, SignsAndVerifies) {
  auto signer = OpenSslSigner::Generate(GetParam(), "k1");
  ASSERT_TRUE(signer.ok());
  auto jws = SignJwsCompact(Json{{"typ", "test"}}, AsBytes("hello"), **signer);
  ASSERT_TRUE(jws.ok()) << jws.status().ToString();
  std::vector<VerificationKey> keys = {KeyFor(**signer, {GetParam()})};
  auto verified = VerifyJwsCompact(*jws, keys);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(ToString(verified->payload), "hello");
  EXPECT_EQ(verified->header["kid"], "k1");
  EXPECT_EQ(verified->header["typ"], "test");
  EXPECT_EQ(verified->kid, "k1");
  // Flip one bit of the signature.
  std::vector<std::string> parts = Split(*jws);
  Bytes sig = *Base64UrlDecode(parts[2]);
  sig[sig.size() / 2] ^= 0x01;
  parts[2] = Base64UrlEncode(sig);
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
}

INSTANTIATE_TEST_SUITE_P(Algorithms, JwsRoundTripTest,
                         ::testing::Values(JwsAlgorithm::kEs256, JwsAlgorithm::kRs256,
                                           JwsAlgorithm::kPs256),
                         [](const auto& param_info) { return std::string(JwsAlgorithmName(param_info.param)); });

// --- Algorithm confusion and header injection (THREATS.md #10) ---

std::string Unsigned(const Json& header, std::string_view payload, ByteView sig) {
  return Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(payload) + "." +
         Base64UrlEncode(sig);
}

TEST(JwsAttackTest, AlgNoneIsRejected) {
  Json a3 = LoadVector("rfc7515_a3.json");
  std::vector<VerificationKey> keys = {KeyFor(a3["jwk"], {JwsAlgorithm::kEs256})};
  for (const char* none : {"none", "None", "NONE"}) {
    std::string token = Base64UrlEncode(Json{{"alg", none}}.dump()) + "." +
                        Base64UrlEncode(std::string_view("{\"iss\":\"joe\"}")) + ".";
    EXPECT_FALSE(VerifyJwsCompact(token, keys).ok()) << none;
    std::string with_sig = Unsigned(Json{{"alg", none}}, "{}", Bytes(64, 1));
    EXPECT_FALSE(VerifyJwsCompact(with_sig, keys).ok()) << none;
  }
}

TEST(JwsAttackTest, Hs256KeyedWithThePublicKeyIsRejected) {
  // The classic confusion: the attacker MACs with the verifier's public key
  // (as JWK JSON, as PEM, as raw point) and sets alg HS256.
  auto signer = OpenSslSigner::Generate(JwsAlgorithm::kRs256);
  ASSERT_TRUE(signer.ok());
  std::vector<VerificationKey> keys = {
      KeyFor(**signer, {JwsAlgorithm::kRs256, JwsAlgorithm::kPs256})};
  auto pkey = (*signer)->public_jwk().ToPublicKey();
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), pkey->get());
  char* pem_data = nullptr;
  long pem_len = BIO_get_mem_data(bio.get(), &pem_data);
  std::vector<std::string> secrets = {(*signer)->public_jwk().ToJson().dump(),
                                      std::string(pem_data, static_cast<std::size_t>(pem_len)),
                                      ToString((*signer)->public_jwk().n())};
  for (const std::string& secret : secrets) {
    Json header = {{"alg", "HS256"}, {"kid", (*signer)->public_jwk().kid()}};
    std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(std::string_view("{}"));
    uint8_t mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const uint8_t*>(input.data()), input.size(), mac, &mac_len);
    std::string token = input + "." + Base64UrlEncode(ByteView(mac, mac_len));
    auto result = VerifyJwsCompact(token, keys);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  }
}

TEST(JwsAttackTest, AlgorithmSwitchingIsRejected) {
  // An RS256-only key refuses a PS256 signature made by the same key.
  auto rsa = OpenSslSigner::Generate(JwsAlgorithm::kPs256, "rsa");
  ASSERT_TRUE(rsa.ok());
  auto ps256 = SignJwsCompact(Json::object(), AsBytes("x"), **rsa);
  ASSERT_TRUE(ps256.ok());
  std::vector<VerificationKey> rs_only = {KeyFor(**rsa, {JwsAlgorithm::kRs256})};
  EXPECT_FALSE(VerifyJwsCompact(*ps256, rs_only).ok());
  // Relabelling the header alg does not help: the signature no longer matches.
  std::vector<std::string> parts = Split(*ps256);
  parts[0] = Base64UrlEncode(Json{{"alg", "RS256"}, {"kid", "rsa"}}.dump());
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), rs_only).ok());
  // An EC key never verifies an RSA alg, whatever the header says.
  auto ec = OpenSslSigner::Generate(JwsAlgorithm::kEs256, "ec");
  auto es = SignJwsCompact(Json::object(), AsBytes("x"), **ec);
  std::vector<std::string> es_parts = Split(*es);
  es_parts[0] = Base64UrlEncode(Json{{"alg", "RS256"}, {"kid", "ec"}}.dump());
  std::vector<VerificationKey> ec_keys = {KeyFor(**ec, {JwsAlgorithm::kEs256})};
  EXPECT_FALSE(VerifyJwsCompact(Join(es_parts), ec_keys).ok());
}

TEST(JwsAttackTest, EmbeddedJwkAndJkuAreNotTrusted) {
  auto trusted = OpenSslSigner::Generate(JwsAlgorithm::kEs256);
  auto attacker = OpenSslSigner::Generate(JwsAlgorithm::kEs256);
  ASSERT_TRUE(trusted.ok() && attacker.ok());
  std::vector<VerificationKey> keys = {KeyFor(**trusted, {JwsAlgorithm::kEs256})};
  // The attacker's token carries its own key in "jwk" and a "jku" URL, and
  // names the trusted key's kid.
  Json header = {{"jwk", (*attacker)->public_jwk().ToJson()},
                 {"jku", "https://attacker.example/jwks.json"},
                 {"kid", (*trusted)->public_jwk().kid()}};
  auto forged = SignJwsCompact(header, AsBytes("{}"), **attacker);
  ASSERT_TRUE(forged.ok());
  EXPECT_FALSE(VerifyJwsCompact(*forged, keys).ok());
  // Without a kid.
  Json header2 = {{"jwk", (*attacker)->public_jwk().ToJson()}, {"kid", "attacker"}};
  auto forged2 = SignJwsCompact(header2, AsBytes("{}"), **attacker);
  auto result = VerifyJwsCompact(*forged2, keys);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("kid"), std::string::npos);
}

TEST(JwsAttackTest, KidSelectsAmongSeveralKeysAndUnknownKidFails) {
  auto a = OpenSslSigner::Generate(JwsAlgorithm::kEs256, "a");
  auto b = OpenSslSigner::Generate(JwsAlgorithm::kEs256, "b");
  std::vector<VerificationKey> keys = {KeyFor(**a, {JwsAlgorithm::kEs256}),
                                       KeyFor(**b, {JwsAlgorithm::kEs256})};
  auto by_b = SignJwsCompact(Json::object(), AsBytes("p"), **b);
  auto verified = VerifyJwsCompact(*by_b, keys);
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(verified->kid, "b");
  // b's signature relabelled as a's: wrong key, rejected.
  std::vector<std::string> parts = Split(*by_b);
  parts[0] = Base64UrlEncode(Json{{"alg", "ES256"}, {"kid", "a"}}.dump());
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
  parts[0] = Base64UrlEncode(Json{{"alg", "ES256"}, {"kid", "c"}}.dump());
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
  parts[0] = Base64UrlEncode(Json{{"alg", "ES256"}}.dump());
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());  // ambiguous
  parts[0] = Base64UrlEncode(Json{{"alg", "ES256"}, {"kid", 7}}.dump());
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
}

TEST(JwsAttackTest, EcdsaZeroAndOutOfRangeScalarsAreRejected) {
  Json a3 = LoadVector("rfc7515_a3.json");
  std::vector<VerificationKey> keys = {KeyFor(a3["jwk"], {JwsAlgorithm::kEs256})};
  std::vector<std::string> parts = Split(a3["jws"].get<std::string>());
  Bytes good = *Base64UrlDecode(parts[2]);
  Bytes order = *HexDecode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
  std::vector<Bytes> bad_sigs;
  bad_sigs.push_back(Bytes(64, 0));  // r = s = 0
  Bytes r_zero = good;
  std::fill(r_zero.begin(), r_zero.begin() + 32, 0);
  bad_sigs.push_back(r_zero);
  Bytes s_zero = good;
  std::fill(s_zero.begin() + 32, s_zero.end(), 0);
  bad_sigs.push_back(s_zero);
  Bytes r_n = good;
  std::copy(order.begin(), order.end(), r_n.begin());
  bad_sigs.push_back(r_n);
  Bytes s_n = good;
  std::copy(order.begin(), order.end(), s_n.begin() + 32);
  bad_sigs.push_back(s_n);
  bad_sigs.push_back(Bytes(64, 0xff));
  for (const Bytes& sig : bad_sigs) {
    parts[2] = Base64UrlEncode(sig);
    auto result = VerifyJwsCompact(Join(parts), keys);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  }
  // DER-encoded signature in place of r||s (a common interop bug) is refused.
  auto der = EcdsaJoseToDer(good);
  ASSERT_TRUE(der.ok());
  parts[2] = Base64UrlEncode(*der);
  EXPECT_FALSE(VerifyJwsCompact(Join(parts), keys).ok());
}

TEST(JwsAttackTest, MalformedStructureIsRejected) {
  Json a3 = LoadVector("rfc7515_a3.json");
  std::vector<VerificationKey> keys = {KeyFor(a3["jwk"], {JwsAlgorithm::kEs256})};
  std::string jws = a3["jws"].get<std::string>();
  std::vector<std::string> parts = Split(jws);
  EXPECT_FALSE(VerifyJwsCompact(jws + ".", keys).ok());
  EXPECT_FALSE(VerifyJwsCompact(jws + "=", keys).ok());
  EXPECT_FALSE(VerifyJwsCompact(jws + ".extra.parts", keys).ok());
  EXPECT_FALSE(VerifyJwsCompact(" " + jws, keys).ok());
  EXPECT_FALSE(VerifyJwsCompact("..", keys).ok());
  EXPECT_FALSE(VerifyJwsCompact(std::string(70000, 'a'), keys).ok());
  // Duplicate "alg": parsers disagree on which wins, so neither does.
  std::string dup = R"({"alg":"ES256","alg":"none"})";
  EXPECT_FALSE(VerifyJwsCompact(Base64UrlEncode(dup) + "." + parts[1] + "." + parts[2], keys).ok());
  // crit with an unknown extension.
  Json crit = {{"alg", "ES256"}, {"crit", {"exp"}}, {"exp", 1}};
  EXPECT_FALSE(VerifyJwsCompact(Base64UrlEncode(crit.dump()) + "." + parts[1] + "." + parts[2], keys).ok());
  // Header that is not an object, alg that is not a string.
  EXPECT_FALSE(VerifyJwsCompact(Base64UrlEncode(std::string_view("[1]")) + "." + parts[1] + "." + parts[2], keys).ok());
  EXPECT_FALSE(VerifyJwsCompact(Base64UrlEncode(std::string_view(R"({"alg":256})")) + "." + parts[1] + "." + parts[2], keys).ok());
  // No trusted keys at all.
  EXPECT_EQ(VerifyJwsCompact(jws, {}).status().code(), StatusCode::kFailedPrecondition);
}

// ParseJwsCompact: the one unverified parser every JWS goes through.

class ParseJwsCompactTest : public ::testing::Test {
 protected:
  Json a3_ = LoadVector("rfc7515_a3.json");
  std::string jws_ = a3_["jws"].get<std::string>();
  std::vector<std::string> parts_ = Split(jws_);

  // Expects INVALID_ARGUMENT with `what` in the message.
  static void ExpectRejected(std::string_view compact, std::string_view what,
                             JwsPayload payload = JwsPayload::kBytes, const JwsLimits& limits = {}) {
    auto parsed = ParseJwsCompact(compact, payload, limits);
    ASSERT_FALSE(parsed.ok()) << "accepted: " << compact.substr(0, 80);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(what), std::string::npos) << parsed.status().message();
  }
};

TEST_F(ParseJwsCompactTest, DecodesEveryPartOfTheRfcVector) {
  auto parsed = ParseJwsCompact(jws_, JwsPayload::kJsonObject);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->header, (Json{{"alg", "ES256"}}));
  EXPECT_EQ(ToString(parsed->payload), a3_["payload"].get<std::string>());
  EXPECT_EQ(parsed->payload_json["iss"], "joe");
  EXPECT_EQ(parsed->payload_json["exp"], 1300819380);
  EXPECT_EQ(parsed->signing_input, parts_[0] + "." + parts_[1]);
  // The view points into the caller's string, not into a copy.
  EXPECT_EQ(parsed->signing_input.data(), jws_.data());
  EXPECT_EQ(parsed->signature, *Base64UrlDecode(parts_[2]));
  EXPECT_EQ(parsed->signature.size(), 64u);

  auto bytes_only = ParseJwsCompact(jws_);
  ASSERT_TRUE(bytes_only.ok());
  EXPECT_TRUE(bytes_only->payload_json.is_null());
  EXPECT_EQ(bytes_only->payload, parsed->payload);
}

TEST_F(ParseJwsCompactTest, VerifiesNothing) {
  // A signature of the right shape by nobody: the parse accepts it (it is
  // unverified by definition); verifying the parse refuses it.
  std::string forged = parts_[0] + "." + parts_[1] + "." + Base64UrlEncode(Bytes(64, 0x5a));
  auto parsed = ParseJwsCompact(forged);
  ASSERT_TRUE(parsed.ok());
  std::vector<VerificationKey> keys = {KeyFor(a3_["jwk"], {JwsAlgorithm::kEs256})};
  auto verified = VerifyJwsCompact(*std::move(parsed), keys);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.status().code(), StatusCode::kUnauthenticated);
  // alg "none" and a header jwk parse too; only verification refuses them.
  Json none = {{"alg", "none"}, {"jwk", a3_["jwk"]}};
  EXPECT_TRUE(ParseJwsCompact(Base64UrlEncode(none.dump()) + "." + parts_[1] + ".AA").ok());
}

TEST_F(ParseJwsCompactTest, VerifyingTheParseEqualsVerifyingTheString) {
  std::vector<VerificationKey> keys = {KeyFor(a3_["jwk"], {JwsAlgorithm::kEs256})};
  auto parsed = ParseJwsCompact(jws_, JwsPayload::kJsonObject);
  ASSERT_TRUE(parsed.ok());
  auto from_parse = VerifyJwsCompact(*std::move(parsed), keys);
  auto from_string = VerifyJwsCompact(jws_, keys);
  ASSERT_TRUE(from_parse.ok()) << from_parse.status().ToString();
  ASSERT_TRUE(from_string.ok());
  EXPECT_EQ(from_parse->header, from_string->header);
  EXPECT_EQ(from_parse->payload, from_string->payload);
  EXPECT_EQ(from_parse->payload_json["iss"], "joe");
  EXPECT_TRUE(from_string->payload_json.is_null());
}

TEST_F(ParseJwsCompactTest, RequiresExactlyThreeParts) {
  ExpectRejected(parts_[0], "got 1");
  ExpectRejected(parts_[0] + "." + parts_[1], "got 2");
  ExpectRejected(jws_ + ".", "more than 3 parts");
  ExpectRejected(jws_ + "." + parts_[2], "more than 3 parts");
  ExpectRejected(jws_ + ".a.b", "more than 3 parts");
  ExpectRejected("", "got 1");
  ExpectRejected("..", "empty header");
  ExpectRejected("." + parts_[1] + "." + parts_[2], "empty header");
  ExpectRejected(parts_[0] + "." + parts_[1] + ".", "empty signature");
  // An empty payload is a valid JWS (RFC 7515 §7.1) but not a JSON object.
  EXPECT_TRUE(ParseJwsCompact(parts_[0] + ".." + parts_[2]).ok());
  ExpectRejected(parts_[0] + ".." + parts_[2], "jws payload", JwsPayload::kJsonObject);
}

TEST_F(ParseJwsCompactTest, RequiresStrictBase64UrlInEveryPart) {
  for (int part = 0; part < 3; ++part) {
    const char* context = part == 0 ? "jws header" : part == 1 ? "jws payload" : "jws signature";
    for (std::string_view bad : {"=", "==", "+", "/", " ", "\n", "%", "!"}) {
      std::vector<std::string> mutated = parts_;
      mutated[part] += bad;
      ExpectRejected(Join(mutated), context);
    }
    // Length 1 (mod 4) is impossible; "AB" has non-zero trailing bits.
    std::vector<std::string> mutated = parts_;
    mutated[part] = part == 0 ? Base64UrlEncode(std::string_view(R"({"alg":"ES256"})")) + "A" : "A";
    ExpectRejected(Join(mutated), context);
    mutated[part] = "AB";
    ExpectRejected(Join(mutated), context);
  }
  // Standard base64 in place of base64url.
  std::string std_alphabet = parts_[2];
  for (char& c : std_alphabet) c = c == '-' ? '+' : c == '_' ? '/' : c;
  ASSERT_NE(std_alphabet, parts_[2]);
  ExpectRejected(parts_[0] + "." + parts_[1] + "." + std_alphabet, "jws signature");
}

TEST_F(ParseJwsCompactTest, HeaderMustBeOneJsonObject) {
  for (std::string_view header : {"[1]", "[]", "\"alg\"", "1", "null", "true"}) {
    ExpectRejected(Base64UrlEncode(header) + "." + parts_[1] + "." + parts_[2], "not a JSON object");
  }
  for (std::string_view header : {"{", R"({"alg":"ES256"} {})", R"({"alg":"ES256",})",
                                  R"({"alg":"ES256","alg":"none"})", "{\"alg\":\"\xff\"}"}) {
    ExpectRejected(Base64UrlEncode(header) + "." + parts_[1] + "." + parts_[2], "jws header");
  }
  // The payload is only bytes unless asked for as a JSON object.
  std::string array_payload = parts_[0] + "." + Base64UrlEncode(std::string_view("[1]")) + "." + parts_[2];
  EXPECT_TRUE(ParseJwsCompact(array_payload).ok());
  ExpectRejected(array_payload, "payload is not a JSON object", JwsPayload::kJsonObject);
  ExpectRejected(parts_[0] + "." + Base64UrlEncode(std::string_view(R"({"a":1,"a":2})")) + "." + parts_[2],
                 "duplicate", JwsPayload::kJsonObject);
}

TEST_F(ParseJwsCompactTest, SizesAndDepthsAreBounded) {
  JwsLimits limits;
  // The whole token.
  limits.max_compact_bytes = jws_.size();
  EXPECT_TRUE(ParseJwsCompact(jws_, JwsPayload::kJsonObject, limits).ok());
  limits.max_compact_bytes = jws_.size() - 1;
  ExpectRejected(jws_, "exceeds the limit", JwsPayload::kBytes, limits);
  ExpectRejected(std::string(70000, 'a'), "exceeds the limit");
  // The encoded header.
  limits = {};
  limits.max_header_bytes = parts_[0].size();
  EXPECT_TRUE(ParseJwsCompact(jws_, JwsPayload::kBytes, limits).ok());
  limits.max_header_bytes = parts_[0].size() - 1;
  ExpectRejected(jws_, "header exceeds the limit", JwsPayload::kBytes, limits);
  // Nesting: the header at most max_header_depth deep, the payload at most
  // max_payload_depth.
  Json nested = 1;
  for (int i = 0; i < 9; ++i) nested = Json::array({nested});
  Json deep_header = {{"alg", "ES256"}, {"x", nested}};
  ExpectRejected(Base64UrlEncode(deep_header.dump()) + "." + parts_[1] + "." + parts_[2], "nesting");
  Json deep_claims = {{"x", nested}};
  std::string deep_payload = parts_[0] + "." + Base64UrlEncode(deep_claims.dump()) + "." + parts_[2];
  EXPECT_TRUE(ParseJwsCompact(deep_payload, JwsPayload::kJsonObject).ok());
  limits = {};
  limits.max_payload_depth = 8;
  ExpectRejected(deep_payload, "nesting", JwsPayload::kJsonObject, limits);
}

TEST(JwsSignTest, RefusesCallerSuppliedAlgAndCrit) {
  auto signer = OpenSslSigner::Generate(JwsAlgorithm::kEs256);
  EXPECT_FALSE(SignJwsCompact(Json{{"alg", "none"}}, AsBytes("x"), **signer).ok());
  EXPECT_FALSE(SignJwsCompact(Json{{"crit", {"b64"}}}, AsBytes("x"), **signer).ok());
  EXPECT_FALSE(SignJwsCompact(Json::array(), AsBytes("x"), **signer).ok());
  EXPECT_FALSE((*signer)->SignDigest(Bytes(31, 0)).ok());
}

TEST(EcdsaConversionTest, DerJoseRoundTripAndStrictness) {
  auto signer = OpenSslSigner::Generate(JwsAlgorithm::kEs256);
  Bytes digest = Sha256(AsBytes("m"));
  auto jose = (*signer)->SignDigest(digest);
  ASSERT_TRUE(jose.ok());
  auto der = EcdsaJoseToDer(*jose);
  ASSERT_TRUE(der.ok());
  auto back = EcdsaDerToJose(*der);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *jose);
  Bytes trailing = *der;
  trailing.push_back(0);
  EXPECT_FALSE(EcdsaDerToJose(trailing).ok());
  EXPECT_FALSE(EcdsaDerToJose(ByteView(*der).first(der->size() - 1)).ok());
  EXPECT_FALSE(EcdsaJoseToDer(ByteView(*jose).first(63)).ok());
}

TEST(SignerTest, KeyMustMatchAlgorithm) {
  EvpPkeyPtr ec(EVP_EC_gen("P-256"));
  EXPECT_FALSE(OpenSslSigner::Create(std::move(ec), JwsAlgorithm::kRs256).ok());
  EvpPkeyPtr p384(EVP_EC_gen("P-384"));
  EXPECT_FALSE(OpenSslSigner::Create(std::move(p384), JwsAlgorithm::kEs256).ok());
  EXPECT_FALSE(OpenSslSigner::Create(nullptr, JwsAlgorithm::kEs256).ok());
}

TEST(AlgorithmNameTest, ParsesOnlyAcceptedAlgorithms) {
  EXPECT_EQ(*ParseJwsAlgorithm("ES256"), JwsAlgorithm::kEs256);
  EXPECT_EQ(*ParseJwsAlgorithm("RS256"), JwsAlgorithm::kRs256);
  EXPECT_EQ(*ParseJwsAlgorithm("PS256"), JwsAlgorithm::kPs256);
  EXPECT_EQ(ParseJwsAlgorithm("none").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(ParseJwsAlgorithm("HS256").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(ParseJwsAlgorithm("es256").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseJwsAlgorithm("").ok());
}

}  // namespace
}  // namespace agentroot::common
