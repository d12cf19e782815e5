// Pkcs11KeyManager against a real SoftHSM2 token created for this process
// (label: integration).
#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"

#include <gtest/gtest.h>

#include "agentroot/hsm/testing/key_manager_conformance.h"
#include "agentroot/hsm/testing/scoped_softhsm_token.h"

namespace agentroot::hsm {
namespace {

using common::StatusCode;
using testing::ScopedSoftHsmToken;

// The process's token: created on first use, removed by the Environment.
std::unique_ptr<ScopedSoftHsmToken>& TokenSlot() {
  static auto* token = new std::unique_ptr<ScopedSoftHsmToken>();
  return *token;
}

Result<ScopedSoftHsmToken*> TheToken() {
  if (!TokenSlot()) {
    AR_ASSIGN_OR_RETURN(TokenSlot(), ScopedSoftHsmToken::Create("agentroot-conformance"));
  }
  return TokenSlot().get();
}

class RemoveToken : public ::testing::Environment {
 public:
  void TearDown() override { TokenSlot().reset(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RemoveToken);

Pkcs11Config ConfigFor(const ScopedSoftHsmToken& token) {
  Pkcs11Config config;
  config.module_path = ScopedSoftHsmToken::module_path();
  config.token_label = token.label();
  config.pin = token.UserPinSecret();
  return config;
}

testing::KeyManagerFactory SoftHsmFactory() {
  testing::KeyManagerFactory factory;
  factory.name = "SoftHsm2";
  factory.open = []() -> Result<std::unique_ptr<KeyManager>> {
    AR_ASSIGN_OR_RETURN(ScopedSoftHsmToken * token, TheToken());
    AR_ASSIGN_OR_RETURN(auto manager, Pkcs11KeyManager::Create(ConfigFor(*token)));
    return std::unique_ptr<KeyManager>(std::move(manager));
  };
  return factory;
}

}  // namespace

namespace testing {
INSTANTIATE_TEST_SUITE_P(Pkcs11, KeyManagerConformanceTest, ::testing::Values(SoftHsmFactory()),
                         KeyManagerFactoryName);
}  // namespace testing

namespace {

class Pkcs11KeyManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = TheToken();
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    token_ = *token;
  }
  ScopedSoftHsmToken* token_ = nullptr;
};

TEST_F(Pkcs11KeyManagerTest, WrongPinIsPermissionDeniedWithCkr) {
  // A token of its own: no manager of this process is logged in to it.
  ASSERT_TRUE(token_->AddToken("wrong-pin-token", "right-pin").ok());
  Pkcs11Config config;
  config.module_path = ScopedSoftHsmToken::module_path();
  config.token_label = "wrong-pin-token";
  config.pin = common::SecretBytes(common::AsBytes("wrong-pin"));
  auto manager = Pkcs11KeyManager::Create(std::move(config));
  ASSERT_FALSE(manager.ok());
  EXPECT_EQ(manager.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(manager.status().message().find("CKR_PIN_INCORRECT"), std::string::npos)
      << manager.status().ToString();
  EXPECT_EQ(manager.status().message().find("wrong-pin\""), std::string::npos) << "PIN leaked";

  // The right PIN still works afterwards.
  Pkcs11Config good;
  good.module_path = ScopedSoftHsmToken::module_path();
  good.token_label = "wrong-pin-token";
  good.pin = common::SecretBytes(common::AsBytes("right-pin"));
  auto ok = Pkcs11KeyManager::Create(std::move(good));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST_F(Pkcs11KeyManagerTest, SecondManagerWithDifferentPinIsRefused) {
  auto first = Pkcs11KeyManager::Create(ConfigFor(*token_));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Pkcs11Config config = ConfigFor(*token_);
  config.pin = common::SecretBytes(common::AsBytes("not-the-pin"));
  auto second = Pkcs11KeyManager::Create(std::move(config));
  EXPECT_EQ(second.status().code(), StatusCode::kPermissionDenied) << second.status().ToString();
  auto third = Pkcs11KeyManager::Create(ConfigFor(*token_));
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(Pkcs11KeyManagerTest, UnknownTokenLabelIsNotFound) {
  Pkcs11Config config = ConfigFor(*token_);
  config.token_label = "no-such-token";
  auto manager = Pkcs11KeyManager::Create(std::move(config));
  EXPECT_EQ(manager.status().code(), StatusCode::kNotFound) << manager.status().ToString();
  EXPECT_NE(manager.status().message().find("no-such-token"), std::string::npos);
}

TEST_F(Pkcs11KeyManagerTest, MissingModuleIsAClearError) {
  Pkcs11Config config = ConfigFor(*token_);
  config.module_path = "/nonexistent/libpkcs11-missing.so";
  auto manager = Pkcs11KeyManager::Create(std::move(config));
  EXPECT_EQ(manager.status().code(), StatusCode::kNotFound);
  EXPECT_NE(manager.status().message().find("module not found: /nonexistent/libpkcs11-missing.so"),
            std::string::npos)
      << manager.status().ToString();

  Pkcs11Config relative = ConfigFor(*token_);
  relative.module_path = "libsofthsm2.so";
  EXPECT_EQ(Pkcs11KeyManager::Create(std::move(relative)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(Pkcs11KeyManagerTest, LibraryThatIsNotAModuleIsUnavailable) {
  Pkcs11Config config = ConfigFor(*token_);
  config.module_path = "/lib/x86_64-linux-gnu/libz.so.1";
  auto manager = Pkcs11KeyManager::Create(std::move(config));
  EXPECT_EQ(manager.status().code(), StatusCode::kUnavailable) << manager.status().ToString();
  EXPECT_NE(manager.status().message().find("C_GetFunctionList"), std::string::npos);
}

TEST_F(Pkcs11KeyManagerTest, EmptyPinAndLabelAreInvalid) {
  Pkcs11Config config = ConfigFor(*token_);
  config.pin = common::SecretBytes();
  EXPECT_EQ(Pkcs11KeyManager::Create(std::move(config)).status().code(), StatusCode::kInvalidArgument);
  Pkcs11Config no_label = ConfigFor(*token_);
  no_label.token_label = "";
  EXPECT_EQ(Pkcs11KeyManager::Create(std::move(no_label)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(Pkcs11KeyManagerTest, KeyOutlivesItsManager) {
  std::shared_ptr<Key> key;
  {
    auto manager = Pkcs11KeyManager::Create(ConfigFor(*token_));
    ASSERT_TRUE(manager.ok()) << manager.status().ToString();
    auto generated = (*manager)->Generate("outlives", KeyPolicy{});
    ASSERT_TRUE(generated.ok()) << generated.status().ToString();
    key = *generated;
  }
  EXPECT_TRUE(testing::SignAndVerify(*key, common::ToBytes("still here")).ok());
  auto manager = Pkcs11KeyManager::Create(ConfigFor(*token_));
  ASSERT_TRUE(manager.ok());
  EXPECT_TRUE((*manager)->Delete("outlives").ok());
  EXPECT_EQ(key->Sign(common::JwsAlgorithm::kEs256, common::Sha256(common::ToBytes("x"))).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace agentroot::hsm
