// The TPM backend through a resource manager: tpm2-abrmd on a private D-Bus
// bus in front of a swtpm fleet machine (ScopedAbrmd), reached with the
// tabrmd TCTI. The backend code is the same as on the direct TCTI
// (tpm_backend_test.cc); what is tested here is that it works unchanged
// through the RM: more keys than swtpm's 3 object slots, saved contexts and
// policy sessions through abrmd's handle virtualization, an AK quote that
// verifies, two devices ("two daemons") used concurrently, and the shared
// KeyManager conformance suite.
#include <gtest/gtest.h>
#include <signal.h>
#include <tss2/tss2_mu.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/common/signer.h"
#include "agentroot/hsm/testing/key_manager_conformance.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "tpm_abrmd_fixture.h"
#include "tpm_objects.h"
#include "tpm_test_util.h"

namespace agentroot::hsm::tpm {
namespace {

using common::JwsAlgorithm;
using common::StatusCode;
using hsm::testing::SignAndVerify;
using simulators::testing::ScopedFleet;
using testing::ScopedAbrmd;

#define ASSERT_OK(expr)                          \
  do {                                           \
    auto ar_s_ = (expr);                         \
    ASSERT_TRUE(ar_s_.ok()) << ar_s_.ToString(); \
  } while (false)

const common::Bytes kMessage = common::ToBytes("agentroot tpm backend through tpm2-abrmd");

// A TPM-signed statement checked without the TPM: the ECDSA signature of the
// AK over the marshalled TPMS_ATTEST verifies (OpenSSL, through
// common::VerifySignature), and the TPMS_ATTEST parses with magic and
// `nonce` as extraData.
common::Result<TPMS_ATTEST> VerifyAttestation(const AttestationKeyInfo& ak,
                                              const SignedAttestation& signed_attest,
                                              common::ByteView nonce) {
  TPMT_SIGNATURE sig{};
  size_t offset = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(signed_attest.tpmt_signature.data(),
                                       signed_attest.tpmt_signature.size(), &offset, &sig) !=
          TSS2_RC_SUCCESS ||
      offset != signed_attest.tpmt_signature.size()) {
    return common::InvalidArgumentError("TPMT_SIGNATURE does not parse");
  }
  if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
    return common::InvalidArgumentError("not ECDSA-SHA256");
  }
  common::Bytes raw(common::kEs256SignatureSize, 0);  // r || s, each left-padded to 32
  const TPM2B_ECC_PARAMETER& r = sig.signature.ecdsa.signatureR;
  const TPM2B_ECC_PARAMETER& s = sig.signature.ecdsa.signatureS;
  if (r.size > 32 || s.size > 32) return common::InvalidArgumentError("r or s too long");
  std::copy(r.buffer, r.buffer + r.size, raw.begin() + (32 - r.size));
  std::copy(s.buffer, s.buffer + s.size, raw.begin() + (64 - s.size));
  AR_ASSIGN_OR_RETURN(common::Jwk jwk, testing::TpmPublicToJwk(ak.tpm2b_public));
  AR_ASSIGN_OR_RETURN(auto vk, common::VerificationKey::Create(jwk, {JwsAlgorithm::kEs256}));
  AR_RETURN_IF_ERROR(
      common::VerifySignature(vk, JwsAlgorithm::kEs256, signed_attest.tpms_attest, raw));

  TPMS_ATTEST attest{};
  offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(signed_attest.tpms_attest.data(),
                                    signed_attest.tpms_attest.size(), &offset, &attest) !=
      TSS2_RC_SUCCESS) {
    return common::InvalidArgumentError("TPMS_ATTEST does not parse");
  }
  if (attest.magic != TPM2_GENERATED_VALUE) return common::InvalidArgumentError("no magic");
  if (common::Bytes(attest.extraData.buffer, attest.extraData.buffer + attest.extraData.size) !=
      common::Bytes(nonce.begin(), nonce.end())) {
    return common::InvalidArgumentError("extraData is not the nonce");
  }
  return attest;
}

// One device + key manager + attestor over the resource manager.
struct Daemon {
  std::shared_ptr<TpmDevice> device;
  std::unique_ptr<TpmKeyManager> manager;
  std::unique_ptr<TpmAttestor> attestor;
};

common::Result<Daemon> OpenDaemon(const std::string& tcti, const std::filesystem::path& state_dir,
                                  int cached_keys = 16) {
  Daemon d;
  AR_ASSIGN_OR_RETURN(d.device, testing::OpenDevice(tcti, cached_keys));
  AR_ASSIGN_OR_RETURN(d.manager, TpmKeyManager::Create(d.device, state_dir));
  AR_ASSIGN_OR_RETURN(d.attestor, TpmAttestor::Create(d.device, state_dir));
  return d;
}

class TpmAbrmdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fleet = ScopedFleet::Create(1);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    fleet_ = std::move(fleet).value();
    auto abrmd = ScopedAbrmd::Start(fleet_->dir() / "abrmd", fleet_->info().machines[0].tcti);
    ASSERT_TRUE(abrmd.ok()) << abrmd.status().ToString();
    abrmd_ = std::move(abrmd).value();
    ASSERT_EQ(abrmd_->tcti(), "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=session");
    Open(16);
  }

  void TearDown() override {
    daemon_ = Daemon{};  // Close the TCTI connections before the bus goes away.
    if (abrmd_ != nullptr) {
      // abrmd and the bus end on SIGTERM, and nothing is left of them.
      const pid_t abrmd_pid = abrmd_->abrmd_pid();
      const pid_t dbus_pid = abrmd_->dbus_pid();
      EXPECT_TRUE(abrmd_->Stop().ok());
      EXPECT_NE(::kill(abrmd_pid, 0), 0);
      EXPECT_NE(::kill(dbus_pid, 0), 0);
    }
    abrmd_.reset();
    fleet_.reset();
  }

  void Open(int cached_keys) {
    daemon_ = Daemon{};
    auto daemon = OpenDaemon(abrmd_->tcti(), fleet_->dir() / "tpm-state", cached_keys);
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    daemon_ = std::move(daemon).value();
  }

  // Declared in teardown order (reverse): the devices close before abrmd
  // stops, abrmd stops before the swtpm does.
  std::unique_ptr<ScopedFleet> fleet_;
  std::unique_ptr<ScopedAbrmd> abrmd_;
  Daemon daemon_;
};

TEST_F(TpmAbrmdTest, ManyKeysSignInterleavedThroughAbrmd) {
  const JwsAlgorithm algs[] = {JwsAlgorithm::kEs256, JwsAlgorithm::kRs256, JwsAlgorithm::kEs256,
                               JwsAlgorithm::kPs256, JwsAlgorithm::kEs256, JwsAlgorithm::kEs256};
  // cached_keys 0: every sign is CreatePrimary/ContextLoad(SRK) + Load; 16:
  // ContextSave'd keys go through abrmd's handle virtualization.
  for (int cached : {0, 16}) {
    SCOPED_TRACE("cached_keys=" + std::to_string(cached));
    Open(cached);
    std::vector<std::shared_ptr<Key>> keys;
    for (int i = 0; i < 6; ++i) {
      const std::string id = "k" + std::to_string(cached) + "-" + std::to_string(i);
      auto key = daemon_.manager->Generate(id, {algs[i], {}});
      ASSERT_TRUE(key.ok()) << id << ": " << key.status().ToString();
      keys.push_back(*key);
    }
    // Interleaved: every round touches all six keys, more than the 3 slots.
    for (int round = 0; round < 3; ++round) {
      for (const auto& key : keys) ASSERT_OK(SignAndVerify(*key, kMessage));
    }
    const TpmDeviceStats stats = daemon_.device->stats();
    EXPECT_EQ(stats.srk_creations, 1u);
    EXPECT_LE(stats.max_loaded, 3);
    EXPECT_EQ(stats.resets_seen, 0u);
    if (cached == 16) {
      EXPECT_EQ(stats.loads, 6u);  // Each blob loaded once, then its saved context.
      EXPECT_GE(stats.context_loads, 18u);
    } else {
      EXPECT_GE(stats.loads, 18u);
    }
  }
  // A new daemon (new abrmd connection) reloads them all from the blobs.
  Open(16);
  auto ids = daemon_.manager->List();
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 12u);
  for (const std::string& id : *ids) {
    auto key = daemon_.manager->Get(id);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    ASSERT_OK(SignAndVerify(**key, kMessage));
  }
}

TEST_F(TpmAbrmdTest, AkQuoteAndCertifyVerifyThroughAbrmd) {
  auto ak = daemon_.attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  ASSERT_OK(daemon_.attestor->PcrExtend(10, common::Sha256(common::ToBytes("measured"))));
  const std::vector<PcrBank> selection = {{kTpmAlgSha256, {0, 10}}};
  auto pcrs = daemon_.attestor->PcrRead(selection);
  ASSERT_TRUE(pcrs.ok()) << pcrs.status().ToString();
  ASSERT_EQ(pcrs->size(), 2u);

  const common::Bytes nonce = common::ToBytes("abrmd-quote-nonce");
  auto quote = daemon_.attestor->Quote("ak", selection, nonce);
  ASSERT_TRUE(quote.ok()) << quote.status().ToString();
  auto attest = VerifyAttestation(*ak, *quote, nonce);
  ASSERT_TRUE(attest.ok()) << attest.status().ToString();
  EXPECT_EQ(attest->type, TPM2_ST_ATTEST_QUOTE);
  // pcrDigest = SHA-256(PCR0 || PCR10) of the values just read.
  common::Bytes concatenated = pcrs->at({kTpmAlgSha256, 0});
  const common::Bytes& pcr10 = pcrs->at({kTpmAlgSha256, 10});
  concatenated.insert(concatenated.end(), pcr10.begin(), pcr10.end());
  const TPM2B_DIGEST& digest = attest->attested.quote.pcrDigest;
  EXPECT_EQ(common::Bytes(digest.buffer, digest.buffer + digest.size), common::Sha256(concatenated));
  // A tampered statement does not verify.
  SignedAttestation tampered = *quote;
  tampered.tpms_attest.back() ^= 0x01;
  EXPECT_FALSE(VerifyAttestation(*ak, tampered, nonce).ok());

  // Certify (AK + key + SRK loaded at once) of an agent key.
  auto key = daemon_.manager->Generate("agent", {JwsAlgorithm::kEs256, {}});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto certified = daemon_.attestor->Certify("ak", **key, nonce);
  ASSERT_TRUE(certified.ok()) << certified.status().ToString();
  auto cert_attest = VerifyAttestation(*ak, *certified, nonce);
  ASSERT_TRUE(cert_attest.ok()) << cert_attest.status().ToString();
  EXPECT_EQ(cert_attest->type, TPM2_ST_ATTEST_CERTIFY);
  auto key_pub = UnmarshalPublic((*key)->native_public());
  ASSERT_TRUE(key_pub.ok());
  const TPM2B_NAME& name = cert_attest->attested.certify.name;
  EXPECT_EQ(common::Bytes(name.name, name.name + name.size), ObjectName(key_pub->publicArea).value());
}

TEST_F(TpmAbrmdTest, PcrBoundKeyPolicySessionThroughAbrmd) {
  auto bound = daemon_.manager->Generate("bound", {JwsAlgorithm::kEs256, {15}});
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  auto free_key = daemon_.manager->Generate("free", {JwsAlgorithm::kEs256, {}});
  ASSERT_TRUE(free_key.ok()) << free_key.status().ToString();
  for (int i = 0; i < 3; ++i) ASSERT_OK(SignAndVerify(**bound, kMessage));
  ASSERT_OK(daemon_.attestor->PcrExtend(15, common::Sha256(common::ToBytes("tamper"))));
  auto sig = (*bound)->SignDigest(common::Sha256(kMessage));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), StatusCode::kFailedPrecondition) << sig.status().ToString();
  ASSERT_OK(SignAndVerify(**free_key, kMessage));
}

// The point of a resource manager: two daemons (two TpmDevices, two abrmd
// connections) issue commands at the same time. Each holds up to 3 objects
// (Certify: SRK + AK + key), so together they need more than swtpm's 3 slots;
// abrmd swaps them. On the direct TCTI this only works taking turns.
TEST_F(TpmAbrmdTest, TwoDevicesConcurrentlyFromTwoThreads) {
  daemon_ = Daemon{};
  constexpr int kThreads = 2;
  constexpr int kIterations = 15;
  std::vector<Daemon> daemons;
  std::vector<std::vector<std::shared_ptr<Key>>> keys(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    // Device 0 keeps saved contexts, device 1 reloads every blob each time.
    auto daemon = OpenDaemon(abrmd_->tcti(), fleet_->dir() / ("state-" + std::to_string(t)),
                             t == 0 ? 16 : 0);
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    for (int i = 0; i < 3; ++i) {
      auto key = daemon->manager->Generate(
          "d" + std::to_string(t) + "-" + std::to_string(i),
          {i == 2 ? JwsAlgorithm::kRs256 : JwsAlgorithm::kEs256, {}});
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      keys[static_cast<size_t>(t)].push_back(*key);
    }
    auto ak = daemon->attestor->CreateAk("ak");
    ASSERT_TRUE(ak.ok()) << ak.status().ToString();
    daemons.push_back(std::move(daemon).value());
  }

  std::atomic<int> ready{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::vector<std::vector<std::string>> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto ut = static_cast<size_t>(t);
      Daemon& d = daemons[ut];
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      for (int it = 0; it < kIterations; ++it) {
        const int now = in_flight.fetch_add(1) + 1;
        int seen = max_in_flight.load();
        while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
        }
        for (const auto& key : keys[ut]) {
          common::Status s = SignAndVerify(*key, kMessage);
          if (!s.ok()) failures[ut].push_back("sign " + key->id() + ": " + s.ToString());
        }
        const common::Bytes nonce = common::ToBytes("t" + std::to_string(t) + "-" + std::to_string(it));
        auto cert = d.attestor->Certify("ak", *keys[ut][static_cast<size_t>(it % 3)], nonce);
        if (!cert.ok()) failures[ut].push_back("certify: " + cert.status().ToString());
        auto quote = d.attestor->Quote("ak", {{kTpmAlgSha256, {0, 1, 2}}}, nonce);
        if (!quote.ok()) failures[ut].push_back("quote: " + quote.status().ToString());
        in_flight.fetch_sub(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(failures[static_cast<size_t>(t)].empty())
        << "thread " << t << ": " << failures[static_cast<size_t>(t)].size() << " failures, first: "
        << failures[static_cast<size_t>(t)].front();
  }
  EXPECT_EQ(max_in_flight.load(), kThreads);  // The two really overlapped.
  for (const Daemon& d : daemons) {
    EXPECT_EQ(d.device->stats().resets_seen, 0u);
    EXPECT_EQ(d.device->stats().srk_creations, 1u);
  }
}

}  // namespace
}  // namespace agentroot::hsm::tpm

// The shared KeyManager conformance suite over tabrmd: one swtpm + abrmd per
// test process (each ctest entry is its own process), started on first use.
namespace agentroot::hsm::testing {
namespace {

class TpmAbrmdEnvironment : public ::testing::Environment {
 public:
  static TpmAbrmdEnvironment* Get() {
    static TpmAbrmdEnvironment* env = static_cast<TpmAbrmdEnvironment*>(
        ::testing::AddGlobalTestEnvironment(new TpmAbrmdEnvironment()));
    return env;
  }

  // The resource manager's TCTI, abrmd and swtpm started on first use.
  common::Result<std::string> Tcti() {
    if (fleet_ == nullptr) {
      AR_ASSIGN_OR_RETURN(fleet_, simulators::testing::ScopedFleet::Create(1));
    }
    if (abrmd_ == nullptr) {
      AR_ASSIGN_OR_RETURN(abrmd_, tpm::testing::ScopedAbrmd::Start(
                                      fleet_->dir() / "abrmd", fleet_->info().machines[0].tcti));
    }
    return abrmd_->tcti();
  }
  std::filesystem::path StateDir() const { return fleet_->dir() / "tpm-state"; }

  void TearDown() override {
    abrmd_.reset();
    fleet_.reset();
  }

 private:
  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
  std::unique_ptr<tpm::testing::ScopedAbrmd> abrmd_;
};

[[maybe_unused]] TpmAbrmdEnvironment* const kEnvironment = TpmAbrmdEnvironment::Get();

KeyManagerFactory TpmAbrmdFactory() {
  KeyManagerFactory f;
  f.name = "TpmAbrmd";
  f.supports_pcr_binding = true;
  f.open = []() -> Result<std::unique_ptr<KeyManager>> {
    TpmAbrmdEnvironment* env = TpmAbrmdEnvironment::Get();
    AR_ASSIGN_OR_RETURN(const std::string tcti, env->Tcti());
    AR_ASSIGN_OR_RETURN(auto device, tpm::testing::OpenDevice(tcti));
    AR_ASSIGN_OR_RETURN(auto manager, tpm::TpmKeyManager::Create(device, env->StateDir()));
    return std::unique_ptr<KeyManager>(std::move(manager));
  };
  f.native_public_to_jwk = [](common::ByteView native) {
    return tpm::testing::TpmPublicToJwk(native);
  };
  return f;
}

INSTANTIATE_TEST_SUITE_P(TpmAbrmd, KeyManagerConformanceTest, ::testing::Values(TpmAbrmdFactory()),
                         KeyManagerFactoryName);

}  // namespace
}  // namespace agentroot::hsm::testing
