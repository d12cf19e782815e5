// Interop with pkcs11-tool (OpenSC) and the openssl CLI as independent peers
// of Pkcs11KeyManager, on a SoftHSM2 token created for this process.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "agentroot/common/jws.h"
#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"
#include "agentroot/hsm/testing/key_manager_conformance.h"
#include "agentroot/hsm/testing/scoped_softhsm_token.h"

namespace agentroot::hsm {
namespace {

using common::Bytes;
using common::JwsAlgorithm;
using common::StatusCode;
using testing::ProcessResult;
using testing::RunProcess;
using testing::ScopedSoftHsmToken;

std::unique_ptr<ScopedSoftHsmToken>& TokenSlot() {
  static auto* token = new std::unique_ptr<ScopedSoftHsmToken>();
  return *token;
}

class RemoveToken : public ::testing::Environment {
 public:
  void TearDown() override { TokenSlot().reset(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RemoveToken);

void WriteFile(const std::filesystem::path& path, common::ByteView data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

Bytes ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Pkcs11ToolInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TokenSlot()) {
      auto token = ScopedSoftHsmToken::Create("agentroot-interop");
      ASSERT_TRUE(token.ok()) << token.status().ToString();
      TokenSlot() = std::move(token).value();
    }
    token_ = TokenSlot().get();
    Pkcs11Config config;
    config.module_path = ScopedSoftHsmToken::module_path();
    config.token_label = token_->label();
    config.pin = token_->UserPinSecret();
    auto manager = Pkcs11KeyManager::Create(std::move(config));
    ASSERT_TRUE(manager.ok()) << manager.status().ToString();
    manager_ = std::move(manager).value();
    work_ = token_->dir() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(work_);
  }

  void TearDown() override {
    if (manager_) {
      auto ids = manager_->List();
      if (ids.ok()) {
        for (const auto& id : *ids) manager_->Delete(id).IgnoreError();
      }
    }
    manager_.reset();
    std::error_code ec;
    std::filesystem::remove_all(work_, ec);
  }

  // pkcs11-tool logged in to our token.
  Result<ProcessResult> Tool(std::vector<std::string> args) {
    std::vector<std::string> argv = {"pkcs11-tool", "--module", ScopedSoftHsmToken::module_path(),
                                     "--token-label", token_->label(), "--login", "--pin",
                                     token_->user_pin()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv);
  }

  ScopedSoftHsmToken* token_ = nullptr;
  std::unique_ptr<Pkcs11KeyManager> manager_;
  std::filesystem::path work_;
};

TEST_F(Pkcs11ToolInteropTest, OurKeyIsListedAndSignsThroughPkcs11Tool) {
  KeyPolicy policy;
  auto key = manager_->Generate("ours-ec", policy);
  ASSERT_TRUE(key.ok()) << key.status().ToString();

  auto listed = Tool({"-O"});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->exit_code, 0) << listed->output;
  EXPECT_NE(listed->output.find("label:      ours-ec"), std::string::npos) << listed->output;
  EXPECT_NE(listed->output.find("sensitive, always sensitive, never extractable, local"),
            std::string::npos)
      << listed->output;

  // pkcs11-tool signs with our key; the signature verifies with our JWK.
  const Bytes message = common::ToBytes("signed by pkcs11-tool with a key agentroot generated");
  WriteFile(work_ / "digest.bin", common::Sha256(message));
  auto signed_by_tool = Tool({"--sign", "--mechanism", "ECDSA", "--label", "ours-ec", "-i",
                              (work_ / "digest.bin").string(), "-o", (work_ / "sig.bin").string()});
  ASSERT_TRUE(signed_by_tool.ok());
  ASSERT_EQ(signed_by_tool->exit_code, 0) << signed_by_tool->output;
  Bytes sig = ReadFile(work_ / "sig.bin");
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_TRUE(testing::VerifyWithOpenSsl((*key)->public_jwk(), JwsAlgorithm::kEs256, message, sig).ok());
  sig[10] ^= 0x01;
  EXPECT_FALSE(testing::VerifyWithOpenSsl((*key)->public_jwk(), JwsAlgorithm::kEs256, message, sig).ok());

  // Sign-only usage, fixed mechanism.
  const std::string& out = listed->output;
  const std::size_t priv = out.find("Private Key Object; EC");
  ASSERT_NE(priv, std::string::npos) << out;
  const std::string priv_block = out.substr(priv, out.find("Public Key Object", priv) - priv);
  EXPECT_NE(priv_block.find("Usage:      sign"), std::string::npos) << priv_block;
  EXPECT_EQ(priv_block.find("decrypt"), std::string::npos) << priv_block;
  EXPECT_EQ(priv_block.find("derive"), std::string::npos) << priv_block;
  EXPECT_EQ(priv_block.find("unwrap"), std::string::npos) << priv_block;
  EXPECT_NE(priv_block.find("Allowed mechanisms: ECDSA"), std::string::npos) << priv_block;
}

TEST_F(Pkcs11ToolInteropTest, TokenItselfEnforcesTheRsaPolicy) {
  KeyPolicy policy;
  policy.algorithm = JwsAlgorithm::kRs256;
  auto key = manager_->Generate("ours-rs256", policy);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  const Bytes message = common::ToBytes("RS256 through pkcs11-tool");
  const Bytes digest = common::Sha256(message);
  WriteFile(work_ / "digest.bin", digest);

  // PSS is outside the key's CKA_ALLOWED_MECHANISMS: the token refuses.
  auto pss = Tool({"--sign", "--mechanism", "RSA-PKCS-PSS", "--hash-algorithm", "SHA256",
                   "--mgf", "MGF1-SHA256", "--label", "ours-rs256", "-i",
                   (work_ / "digest.bin").string(), "-o", (work_ / "pss.bin").string()});
  ASSERT_TRUE(pss.ok());
  EXPECT_NE(pss->exit_code, 0) << pss->output;

  // PKCS#1 v1.5 over DigestInfo || digest is what RS256 means.
  Bytes digest_info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                       0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  digest_info.insert(digest_info.end(), digest.begin(), digest.end());
  WriteFile(work_ / "digest_info.bin", digest_info);
  auto pkcs1 = Tool({"--sign", "--mechanism", "RSA-PKCS", "--label", "ours-rs256", "-i",
                     (work_ / "digest_info.bin").string(), "-o", (work_ / "sig.bin").string()});
  ASSERT_TRUE(pkcs1.ok());
  ASSERT_EQ(pkcs1->exit_code, 0) << pkcs1->output;
  EXPECT_TRUE(testing::VerifyWithOpenSsl((*key)->public_jwk(), JwsAlgorithm::kRs256, message,
                                         ReadFile(work_ / "sig.bin"))
                  .ok());
}

TEST_F(Pkcs11ToolInteropTest, Pkcs11ToolKeyIsFoundAndVerifiesWithOpensslCli) {
  // CKA_ID = hex of the label, so label and id agree as for our own keys.
  auto gen = Tool({"--keypairgen", "--key-type", "EC:prime256v1", "--label", "tool-ec", "--id",
                   common::HexEncode(common::AsBytes("tool-ec"))});
  ASSERT_TRUE(gen.ok());
  ASSERT_EQ(gen->exit_code, 0) << gen->output;

  auto key = manager_->Get("tool-ec");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->policy().algorithm, JwsAlgorithm::kEs256);
  auto listed = manager_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{"tool-ec"});

  const Bytes message = common::ToBytes("signed by agentroot, verified by the openssl CLI");
  auto jose = (*key)->Sign(JwsAlgorithm::kEs256, common::Sha256(message));
  ASSERT_TRUE(jose.ok()) << jose.status().ToString();
  auto der = common::EcdsaJoseToDer(*jose);
  ASSERT_TRUE(der.ok());
  WriteFile(work_ / "msg.bin", message);
  WriteFile(work_ / "sig.der", *der);

  // The public key as pkcs11-tool exports it, independently of our reading.
  auto exported = Tool({"--read-object", "--type", "pubkey", "--label", "tool-ec", "-o",
                        (work_ / "pub.der").string()});
  ASSERT_TRUE(exported.ok());
  ASSERT_EQ(exported->exit_code, 0) << exported->output;
  EXPECT_EQ(ReadFile(work_ / "pub.der"), (*key)->native_public());
  auto pem = RunProcess({"openssl", "pkey", "-pubin", "-inform", "DER", "-in",
                         (work_ / "pub.der").string(), "-out", (work_ / "pub.pem").string()});
  ASSERT_TRUE(pem.ok());
  ASSERT_EQ(pem->exit_code, 0) << pem->output;

  auto verify = RunProcess({"openssl", "dgst", "-sha256", "-verify", (work_ / "pub.pem").string(),
                            "-signature", (work_ / "sig.der").string(), (work_ / "msg.bin").string()});
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->exit_code, 0) << verify->output;
  EXPECT_NE(verify->output.find("Verified OK"), std::string::npos) << verify->output;

  // A flipped bit in the message: openssl rejects.
  Bytes tampered = message;
  tampered[0] ^= 0x20;
  WriteFile(work_ / "msg.bin", tampered);
  auto rejected = RunProcess({"openssl", "dgst", "-sha256", "-verify", (work_ / "pub.pem").string(),
                              "-signature", (work_ / "sig.der").string(), (work_ / "msg.bin").string()});
  ASSERT_TRUE(rejected.ok());
  EXPECT_NE(rejected->exit_code, 0) << rejected->output;
}

TEST_F(Pkcs11ToolInteropTest, RsaKeyNeedsAllowedMechanismsToFixItsAlgorithm) {
  auto loose = Tool({"--keypairgen", "--key-type", "rsa:2048", "--label", "tool-rsa-loose"});
  ASSERT_TRUE(loose.ok());
  ASSERT_EQ(loose->exit_code, 0) << loose->output;
  auto refused = manager_->Get("tool-rsa-loose");
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("CKA_ALLOWED_MECHANISMS"), std::string::npos);

  auto pinned = Tool({"--keypairgen", "--key-type", "rsa:2048", "--label", "tool-rsa-pss",
                      "--allowed-mechanisms", "RSA-PKCS-PSS"});
  ASSERT_TRUE(pinned.ok());
  ASSERT_EQ(pinned->exit_code, 0) << pinned->output;
  auto key = manager_->Get("tool-rsa-pss");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->policy().algorithm, JwsAlgorithm::kPs256);
  EXPECT_TRUE(testing::SignAndVerify(**key, common::ToBytes("PS256 with a pkcs11-tool key")).ok());
}

TEST_F(Pkcs11ToolInteropTest, ImportedPrivateKeyIsRefused) {
  // A key born outside the token (openssl) and written into it is not
  // "always sensitive / never extractable": Get must refuse it.
  auto genkey = RunProcess({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-outform", "DER", "-out",
                            (work_ / "key.der").string()});
  ASSERT_TRUE(genkey.ok());
  ASSERT_EQ(genkey->exit_code, 0) << genkey->output;
  auto pub = RunProcess({"openssl", "pkey", "-inform", "DER", "-in", (work_ / "key.der").string(),
                         "-pubout", "-outform", "DER", "-out", (work_ / "pub.der").string()});
  ASSERT_TRUE(pub.ok());
  ASSERT_EQ(pub->exit_code, 0) << pub->output;
  const std::string id_hex = common::HexEncode(common::AsBytes("imported"));
  auto write_priv = Tool({"--write-object", (work_ / "key.der").string(), "--type", "privkey",
                          "--label", "imported", "--id", id_hex, "--sensitive"});
  ASSERT_TRUE(write_priv.ok());
  ASSERT_EQ(write_priv->exit_code, 0) << write_priv->output;
  auto write_pub = Tool({"--write-object", (work_ / "pub.der").string(), "--type", "pubkey",
                         "--label", "imported", "--id", id_hex});
  ASSERT_TRUE(write_pub.ok());
  ASSERT_EQ(write_pub->exit_code, 0) << write_pub->output;

  auto key = manager_->Get("imported");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kFailedPrecondition) << key.status().ToString();
  EXPECT_TRUE(key.status().message().find("CKA_ALWAYS_SENSITIVE") != std::string::npos ||
              key.status().message().find("CKA_NEVER_EXTRACTABLE") != std::string::npos ||
              key.status().message().find("CKA_EXTRACTABLE") != std::string::npos)
      << key.status().ToString();
}

}  // namespace
}  // namespace agentroot::hsm
