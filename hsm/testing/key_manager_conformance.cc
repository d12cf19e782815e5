#include "agentroot/hsm/testing/key_manager_conformance.h"

#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/signer.h"

namespace agentroot::hsm::testing {
namespace {

using common::JwsAlgorithm;
using common::StatusCode;

constexpr JwsAlgorithm kAllAlgorithms[] = {JwsAlgorithm::kEs256, JwsAlgorithm::kRs256,
                                           JwsAlgorithm::kPs256};

KeyPolicy PolicyFor(JwsAlgorithm alg) {
  KeyPolicy policy;
  policy.algorithm = alg;
  return policy;
}

Result<common::Jwk> NativeToJwk(const KeyManagerFactory& factory, common::ByteView native) {
  if (factory.native_public_to_jwk) return factory.native_public_to_jwk(native);
  const unsigned char* p = native.data();
  common::EvpPkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(native.size())));
  if (!pkey) return common::OpenSslError(StatusCode::kInvalidArgument, "native_public: not SPKI");
  if (p != native.data() + native.size()) {
    return common::InvalidArgumentError("native_public: trailing bytes after SPKI");
  }
  return common::Jwk::FromPublicKey(pkey.get());
}

// Keys a test created, deleted in TearDown even when the test fails midway.
std::vector<std::string> ListOrEmpty(KeyManager& manager) {
  auto ids = manager.List();
  return ids.ok() ? *ids : std::vector<std::string>{};
}

}  // namespace

std::string KeyManagerFactoryName(const ::testing::TestParamInfo<KeyManagerFactory>& info) {
  return info.param.name;
}

void PrintTo(const KeyManagerFactory& factory, std::ostream* os) { *os << factory.name; }

// Binaries that link this library only for its helpers (SignAndVerify) do
// not instantiate the suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KeyManagerConformanceTest);

Status VerifyWithOpenSsl(const common::Jwk& jwk, JwsAlgorithm alg, common::ByteView message,
                         common::ByteView signature) {
  AR_ASSIGN_OR_RETURN(auto vk, common::VerificationKey::Create(jwk, {alg}));
  return common::VerifySignature(vk, alg, message, signature);
}

Status SignAndVerify(const Key& key, common::ByteView message) {
  const JwsAlgorithm alg = key.policy().algorithm;
  common::Bytes digest = common::Sha256(message);
  AR_ASSIGN_OR_RETURN(common::Bytes sig, key.Sign(alg, digest));
  const std::size_t want = alg == JwsAlgorithm::kEs256 ? common::kEs256SignatureSize
                                                       : static_cast<std::size_t>(
                                                             key.public_jwk().bits() / 8);
  if (sig.size() != want) {
    return common::InternalError("signature is " + std::to_string(sig.size()) + " bytes, want " +
                                 std::to_string(want));
  }
  AR_RETURN_IF_ERROR(VerifyWithOpenSsl(key.public_jwk(), alg, message, sig).WithContext(
      "valid signature did not verify"));
  for (std::size_t bit : {std::size_t{0}, sig.size() * 8 / 2 + 3, sig.size() * 8 - 1}) {
    common::Bytes flipped = sig;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    common::ClearOpenSslErrors();
    if (VerifyWithOpenSsl(key.public_jwk(), alg, message, flipped).ok()) {
      return common::InternalError("signature with bit " + std::to_string(bit) +
                                   " flipped verified");
    }
  }
  common::Bytes other_message(message.begin(), message.end());
  other_message.push_back(0);
  if (VerifyWithOpenSsl(key.public_jwk(), alg, other_message, sig).ok()) {
    return common::InternalError("signature verified for a different message");
  }
  return Status::Ok();
}

void KeyManagerConformanceTest::SetUp() {
  ASSERT_TRUE(GetParam().open) << "factory " << GetParam().name << " has no open function";
  auto opened = GetParam().open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  manager_ = std::move(opened).value();
  ASSERT_NE(manager_, nullptr);
  auto ids = manager_->List();
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  for (const std::string& id : *ids) {
    Status deleted = manager_->Delete(id);
    ASSERT_TRUE(deleted.ok()) << "clearing store, " << id << ": " << deleted.ToString();
  }
}

void KeyManagerConformanceTest::TearDown() {
  if (!manager_) return;
  for (const std::string& id : ListOrEmpty(*manager_)) manager_->Delete(id).IgnoreError();
  manager_.reset();
}

Result<KeyManager*> KeyManagerConformanceTest::Reopen() {
  manager_.reset();
  AR_ASSIGN_OR_RETURN(manager_, GetParam().open());
  if (!manager_) return common::InternalError("factory returned a null manager");
  return manager_.get();
}

namespace {

#define AR_ASSERT_OK(expr)                                   \
  do {                                                       \
    ::agentroot::common::Status ar_s_ = (expr);              \
    ASSERT_TRUE(ar_s_.ok()) << #expr << ": " << ar_s_.ToString(); \
  } while (false)

#define AR_ASSERT_OK_AND_ASSIGN(lhs, expr)                                              \
  AR_ASSERT_OK_AND_ASSIGN_IMPL_(AGENTROOT_STATUS_CONCAT_(ar_t_, __LINE__), lhs, expr)
#define AR_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr)          \
  auto tmp = (expr);                                           \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

#define AR_EXPECT_CODE(expr, code_value)                                          \
  do {                                                                            \
    auto ar_st_ = ::agentroot::hsm::testing::StatusOf(expr);                      \
    EXPECT_EQ(::agentroot::common::StatusCodeName(ar_st_.code()),                 \
              ::agentroot::common::StatusCodeName(code_value))                    \
        << #expr << ": " << ar_st_.ToString();                                    \
  } while (false)

}  // namespace

template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}
inline Status StatusOf(const Status& s) { return s; }

namespace {

const common::Bytes kMessage = common::ToBytes("agentroot conformance: the quick brown fox");

void GenerateSignVerify(KeyManager& manager, const KeyManagerFactory& factory, JwsAlgorithm alg) {
  const std::string id = "conf-" + std::string(common::JwsAlgorithmName(alg));
  AR_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Key> key, manager.Generate(id, PolicyFor(alg)));
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->id(), id);
  EXPECT_EQ(key->policy().algorithm, alg);
  EXPECT_TRUE(key->policy().pcr_binding.empty());
  EXPECT_EQ(key->algorithm(), alg);
  if (alg == JwsAlgorithm::kEs256) {
    EXPECT_EQ(key->public_jwk().type(), common::JwkKeyType::kEcP256);
  } else {
    EXPECT_EQ(key->public_jwk().type(), common::JwkKeyType::kRsa);
    EXPECT_GE(key->public_jwk().bits(), 2048);
  }
  AR_ASSERT_OK(SignAndVerify(*key, kMessage));

  // Through the common::Signer interface: a JWS that verifies.
  auto jws = common::SignJwsCompact(common::Json::object(), kMessage, *key);
  ASSERT_TRUE(jws.ok()) << jws.status().ToString();
  AR_ASSERT_OK_AND_ASSIGN(auto vk, common::VerificationKey::Create(key->public_jwk(), {alg}));
  std::vector<common::VerificationKey> keys = {vk};
  auto verified = common::VerifyJwsCompact(*jws, keys);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->payload, kMessage);

  // Wrong key: a second key of the same type must not verify the first's
  // signatures.
  AR_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Key> other, manager.Generate(id + "-other", PolicyFor(alg)));
  EXPECT_FALSE(other->public_jwk().SameKey(key->public_jwk()));
  AR_ASSERT_OK_AND_ASSIGN(common::Bytes sig, key->Sign(alg, common::Sha256(kMessage)));
  common::ClearOpenSslErrors();
  EXPECT_FALSE(VerifyWithOpenSsl(other->public_jwk(), alg, kMessage, sig).ok());

  // native_public and public_jwk are the same key.
  AR_ASSERT_OK_AND_ASSIGN(common::Jwk native, NativeToJwk(factory, key->native_public()));
  EXPECT_TRUE(native.SameKey(key->public_jwk()));
}

}  // namespace

TEST_P(KeyManagerConformanceTest, BackendHasKnownName) {
  const std::string_view name = manager().backend();
  EXPECT_TRUE(name == "tpm" || name == "pkcs11" || name == "appliance" || name == "software")
      << name;
}

TEST_P(KeyManagerConformanceTest, GenerateSignVerifyEs256) {
  GenerateSignVerify(manager(), GetParam(), JwsAlgorithm::kEs256);
}

TEST_P(KeyManagerConformanceTest, GenerateSignVerifyRs256) {
  GenerateSignVerify(manager(), GetParam(), JwsAlgorithm::kRs256);
}

TEST_P(KeyManagerConformanceTest, GenerateSignVerifyPs256) {
  GenerateSignVerify(manager(), GetParam(), JwsAlgorithm::kPs256);
}

TEST_P(KeyManagerConformanceTest, PublicJwkMatchesNativePublic) {
  for (JwsAlgorithm alg : {JwsAlgorithm::kEs256, JwsAlgorithm::kRs256}) {
    const std::string id = "native-" + std::string(common::JwsAlgorithmName(alg));
    AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate(id, PolicyFor(alg)));
    common::Bytes native = key->native_public();
    ASSERT_FALSE(native.empty());
    AR_ASSERT_OK_AND_ASSIGN(common::Jwk jwk, NativeToJwk(GetParam(), native));
    EXPECT_TRUE(jwk.SameKey(key->public_jwk())) << id;
  }
}

TEST_P(KeyManagerConformanceTest, PersistAndReload) {
  std::vector<std::pair<std::shared_ptr<Key>, common::Jwk>> before;
  for (JwsAlgorithm alg : kAllAlgorithms) {
    const std::string id = "persist-" + std::string(common::JwsAlgorithmName(alg));
    AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate(id, PolicyFor(alg)));
    before.emplace_back(key, key->public_jwk());
  }
  AR_ASSERT_OK_AND_ASSIGN(KeyManager * reopened, Reopen());
  for (const auto& [old_key, old_jwk] : before) {
    AR_ASSERT_OK_AND_ASSIGN(auto key, reopened->Get(old_key->id()));
    EXPECT_EQ(key->id(), old_key->id());
    EXPECT_EQ(key->policy().algorithm, old_key->policy().algorithm) << key->id();
    EXPECT_TRUE(key->public_jwk().SameKey(old_jwk)) << key->id();
    EXPECT_EQ(key->native_public(), old_key->native_public()) << key->id();
    const JwsAlgorithm alg = key->policy().algorithm;
    AR_ASSERT_OK_AND_ASSIGN(common::Bytes sig, key->Sign(alg, common::Sha256(kMessage)));
    AR_ASSERT_OK(VerifyWithOpenSsl(old_jwk, alg, kMessage, sig));
    // The Key object from the closed manager instance, if the backend keeps
    // it usable, must still sign for the same key; failing cleanly is fine.
    auto old_sig = old_key->Sign(alg, common::Sha256(kMessage));
    if (old_sig.ok()) AR_ASSERT_OK(VerifyWithOpenSsl(old_jwk, alg, kMessage, *old_sig));
  }
}

TEST_P(KeyManagerConformanceTest, GetUnknownIsNotFound) {
  AR_EXPECT_CODE(manager().Get("no-such-key"), StatusCode::kNotFound);
  AR_EXPECT_CODE(manager().Delete("no-such-key"), StatusCode::kNotFound);
}

TEST_P(KeyManagerConformanceTest, ListIsSorted) {
  AR_ASSERT_OK_AND_ASSIGN(auto empty, manager().List());
  EXPECT_TRUE(empty.empty());
  const std::vector<std::string> ids = {"zeta", "Alpha", "beta-2", "beta-10", "0day", "a.b_c"};
  for (const auto& id : ids) {
    AR_ASSERT_OK(manager().Generate(id, PolicyFor(JwsAlgorithm::kEs256)).status());
  }
  std::vector<std::string> want = ids;
  std::sort(want.begin(), want.end());
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_EQ(listed, want);
  AR_ASSERT_OK_AND_ASSIGN(KeyManager * reopened, Reopen());
  AR_ASSERT_OK_AND_ASSIGN(auto relisted, reopened->List());
  EXPECT_EQ(relisted, want);
}

TEST_P(KeyManagerConformanceTest, DeleteDestroysKey) {
  AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate("doomed", PolicyFor(JwsAlgorithm::kEs256)));
  AR_ASSERT_OK_AND_ASSIGN(auto keep, manager().Generate("kept", PolicyFor(JwsAlgorithm::kEs256)));
  AR_ASSERT_OK(SignAndVerify(*key, kMessage));
  AR_ASSERT_OK(manager().Delete("doomed"));
  AR_EXPECT_CODE(manager().Get("doomed"), StatusCode::kNotFound);
  AR_EXPECT_CODE(manager().Delete("doomed"), StatusCode::kNotFound);
  EXPECT_FALSE(key->Sign(JwsAlgorithm::kEs256, common::Sha256(kMessage)).ok())
      << "a Key object must stop signing once its key is deleted";
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_EQ(listed, std::vector<std::string>{"kept"});
  AR_ASSERT_OK(SignAndVerify(*keep, kMessage));
  AR_ASSERT_OK_AND_ASSIGN(KeyManager * reopened, Reopen());
  AR_EXPECT_CODE(reopened->Get("doomed"), StatusCode::kNotFound);
  // The id can be reused; the new key is a different key.
  AR_ASSERT_OK_AND_ASSIGN(auto reborn, reopened->Generate("doomed", PolicyFor(JwsAlgorithm::kEs256)));
  EXPECT_FALSE(reborn->public_jwk().SameKey(key->public_jwk()));
  EXPECT_FALSE(key->Sign(JwsAlgorithm::kEs256, common::Sha256(kMessage)).ok())
      << "a deleted key's Key object must not sign with a new key of the same id";
}

TEST_P(KeyManagerConformanceTest, DeleteThroughAnotherInstance) {
  AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate("shared", PolicyFor(JwsAlgorithm::kEs256)));
  AR_ASSERT_OK_AND_ASSIGN(auto other, OpenAnother());
  AR_ASSERT_OK(other->Delete("shared"));
  AR_EXPECT_CODE(manager().Get("shared"), StatusCode::kNotFound);
  EXPECT_FALSE(key->Sign(JwsAlgorithm::kEs256, common::Sha256(kMessage)).ok());
}

TEST_P(KeyManagerConformanceTest, DuplicateIdIsAlreadyExists) {
  AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate("dup", PolicyFor(JwsAlgorithm::kEs256)));
  AR_EXPECT_CODE(manager().Generate("dup", PolicyFor(JwsAlgorithm::kEs256)), StatusCode::kAlreadyExists);
  AR_EXPECT_CODE(manager().Generate("dup", PolicyFor(JwsAlgorithm::kRs256)), StatusCode::kAlreadyExists);
  AR_ASSERT_OK_AND_ASSIGN(auto again, manager().Get("dup"));
  EXPECT_TRUE(again->public_jwk().SameKey(key->public_jwk()));
  EXPECT_EQ(again->policy().algorithm, JwsAlgorithm::kEs256);
  AR_ASSERT_OK_AND_ASSIGN(KeyManager * reopened, Reopen());
  AR_EXPECT_CODE(reopened->Generate("dup", PolicyFor(JwsAlgorithm::kEs256)), StatusCode::kAlreadyExists);
  AR_ASSERT_OK_AND_ASSIGN(auto listed, reopened->List());
  EXPECT_EQ(listed, std::vector<std::string>{"dup"});
}

TEST_P(KeyManagerConformanceTest, BadIdsAreRejected) {
  const std::vector<std::string> bad = {"",    std::string(65, 'a'), "../x",          "a/b", ".",
                                        "..",  "a b",                "caf\xc3\xa9",   "a\\b",
                                        std::string("a\0b", 3),      "key\n"};
  for (const std::string& id : bad) {
    SCOPED_TRACE("id of " + std::to_string(id.size()) + " bytes: " + common::HexEncode(common::AsBytes(id)));
    AR_EXPECT_CODE(manager().Generate(id, PolicyFor(JwsAlgorithm::kEs256)), StatusCode::kInvalidArgument);
    AR_EXPECT_CODE(manager().Get(id), StatusCode::kInvalidArgument);
    AR_EXPECT_CODE(manager().Delete(id), StatusCode::kInvalidArgument);
  }
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_TRUE(listed.empty());
  // The longest valid id works.
  AR_ASSERT_OK(manager().Generate(std::string(64, 'k'), PolicyFor(JwsAlgorithm::kEs256)).status());
}

TEST_P(KeyManagerConformanceTest, AlgorithmOutsidePolicyIsRefused) {
  const common::Bytes digest = common::Sha256(kMessage);
  for (JwsAlgorithm alg : kAllAlgorithms) {
    const std::string id = "policy-" + std::string(common::JwsAlgorithmName(alg));
    AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate(id, PolicyFor(alg)));
    for (JwsAlgorithm other : kAllAlgorithms) {
      if (other == alg) continue;
      SCOPED_TRACE(id + " asked for " + std::string(common::JwsAlgorithmName(other)));
      AR_EXPECT_CODE(key->Sign(other, digest), StatusCode::kFailedPrecondition);
    }
    // Also after a reload: the policy is part of the stored key.
    AR_ASSERT_OK_AND_ASSIGN(auto other_manager, OpenAnother());
    AR_ASSERT_OK_AND_ASSIGN(auto reloaded, other_manager->Get(id));
    EXPECT_EQ(reloaded->policy().algorithm, alg);
    for (JwsAlgorithm other : kAllAlgorithms) {
      if (other == alg) continue;
      AR_EXPECT_CODE(reloaded->Sign(other, digest), StatusCode::kFailedPrecondition);
    }
  }
}

TEST_P(KeyManagerConformanceTest, WrongDigestSizeIsRejected) {
  for (JwsAlgorithm alg : {JwsAlgorithm::kEs256, JwsAlgorithm::kRs256}) {
    const std::string id = "digest-" + std::string(common::JwsAlgorithmName(alg));
    AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate(id, PolicyFor(alg)));
    for (std::size_t size : {0, 1, 20, 31, 33, 48, 64}) {
      SCOPED_TRACE(id + ", digest of " + std::to_string(size) + " bytes");
      common::Bytes digest(size, 0x5a);
      AR_EXPECT_CODE(key->Sign(alg, digest), StatusCode::kInvalidArgument);
    }
  }
}

TEST_P(KeyManagerConformanceTest, ConcurrentSignOnOneKey) {
  AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate("busy", PolicyFor(JwsAlgorithm::kEs256)));
  constexpr int kThreads = 4;
  constexpr int kSignsPerThread = 25;
  std::atomic<int> good{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kSignsPerThread; ++i) {
        common::Bytes message = common::ToBytes("thread " + std::to_string(t) + " sign " +
                                                std::to_string(i));
        auto sig = key->Sign(JwsAlgorithm::kEs256, common::Sha256(message));
        if (!sig.ok()) {
          errors[t] = sig.status().ToString();
          return;
        }
        Status verified = VerifyWithOpenSsl(key->public_jwk(), JwsAlgorithm::kEs256, message, *sig);
        if (!verified.ok()) {
          errors[t] = verified.ToString();
          return;
        }
        ++good;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ(good.load(), kThreads * kSignsPerThread);
}

TEST_P(KeyManagerConformanceTest, ConcurrentGenerateOfDistinctIds) {
  constexpr int kThreads = 4;
  constexpr int kKeysPerThread = 3;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeysPerThread; ++i) {
        const std::string id = "par-" + std::to_string(t) + "-" + std::to_string(i);
        auto key = manager().Generate(id, PolicyFor(JwsAlgorithm::kEs256));
        if (!key.ok()) {
          errors[t] = id + ": " + key.status().ToString();
          return;
        }
        Status signed_ok = SignAndVerify(**key, common::ToBytes(id));
        if (!signed_ok.ok()) {
          errors[t] = id + ": " + signed_ok.ToString();
          return;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_EQ(listed.size(), static_cast<std::size_t>(kThreads * kKeysPerThread));
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
}

TEST_P(KeyManagerConformanceTest, ConcurrentGenerateOfOneIdHasOneWinner) {
  constexpr int kThreads = 4;
  std::atomic<int> created{0};
  std::atomic<int> exists{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto key = manager().Generate("contended", PolicyFor(JwsAlgorithm::kEs256));
      if (key.ok()) {
        ++created;
      } else if (key.status().code() == StatusCode::kAlreadyExists) {
        ++exists;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(exists.load(), kThreads - 1);
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_EQ(listed, std::vector<std::string>{"contended"});
}

TEST_P(KeyManagerConformanceTest, PcrBindingIsHonouredOrRefused) {
  KeyPolicy policy = PolicyFor(JwsAlgorithm::kEs256);
  policy.pcr_binding = {7};
  if (GetParam().supports_pcr_binding) {
    // The binding is kept as policy and the key signs while PCR 7 is
    // unchanged (the backend's own tests extend the PCR and watch it stop).
    AR_ASSERT_OK_AND_ASSIGN(auto key, manager().Generate("bound", policy));
    EXPECT_EQ(key->policy().pcr_binding, std::vector<uint32_t>{7});
    AR_ASSERT_OK_AND_ASSIGN(auto reloaded, manager().Get("bound"));
    EXPECT_EQ(reloaded->policy().pcr_binding, std::vector<uint32_t>{7});
    EXPECT_TRUE(key->SignDigest(common::Sha256(common::AsBytes("bound"))).ok());
    return;
  }
  AR_EXPECT_CODE(manager().Generate("bound", policy), StatusCode::kUnimplemented);
  AR_EXPECT_CODE(manager().Get("bound"), StatusCode::kNotFound);
  AR_ASSERT_OK_AND_ASSIGN(auto listed, manager().List());
  EXPECT_TRUE(listed.empty());
}

}  // namespace agentroot::hsm::testing
