// TPM-specific tests of the TPM backend against swtpm machines: reload after
// a daemon restart and after a TPM restart, many keys without a resource
// manager, PCR binding, tampered blobs, and the attestation operations'
// TPM side (the verifier side is exercised in tests/interop).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>

#include "agentroot/common/signer.h"
#include "agentroot/hsm/testing/key_manager_conformance.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "tpm_objects.h"
#include "tpm_test_util.h"

namespace agentroot::hsm::tpm {
namespace {

using common::JwsAlgorithm;
using common::StatusCode;
using hsm::testing::SignAndVerify;
using simulators::testing::ScopedFleet;

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    auto ar_s_ = (expr);                                      \
    ASSERT_TRUE(ar_s_.ok()) << ar_s_.ToString();              \
  } while (false)

class TpmBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fleet = ScopedFleet::Create(1);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    fleet_ = std::move(fleet).value();
    machine_ = fleet_->info().machines[0];
    state_dir_ = fleet_->dir() / "tpm-state";
    Open(16);
  }

  void Open(int cached_keys) {
    manager_.reset();
    attestor_.reset();
    device_.reset();
    auto device = testing::OpenDevice(machine_.tcti, cached_keys);
    ASSERT_TRUE(device.ok()) << device.status().ToString();
    device_ = *device;
    auto manager = TpmKeyManager::Create(device_, state_dir_);
    ASSERT_TRUE(manager.ok()) << manager.status().ToString();
    manager_ = std::move(manager).value();
    auto attestor = TpmAttestor::Create(device_, state_dir_);
    ASSERT_TRUE(attestor.ok()) << attestor.status().ToString();
    attestor_ = std::move(attestor).value();
  }

  std::shared_ptr<Key> MustGenerate(const std::string& id, KeyPolicy policy = {}) {
    auto key = manager_->Generate(id, policy);
    EXPECT_TRUE(key.ok()) << id << ": " << key.status().ToString();
    return key.ok() ? *key : nullptr;
  }

  std::unique_ptr<ScopedFleet> fleet_;
  simulators::MachineInfo machine_;
  std::filesystem::path state_dir_;
  std::shared_ptr<TpmDevice> device_;
  std::unique_ptr<TpmKeyManager> manager_;
  std::unique_ptr<TpmAttestor> attestor_;
};

const common::Bytes kMessage = common::ToBytes("agentroot tpm backend");

TEST_F(TpmBackendTest, KeysReloadAfterDaemonRestart) {
  auto es = MustGenerate("es", {JwsAlgorithm::kEs256, {}});
  auto rs = MustGenerate("rs", {JwsAlgorithm::kRs256, {}});
  ASSERT_NE(es, nullptr);
  ASSERT_NE(rs, nullptr);
  const common::Jwk es_jwk = es->public_jwk();
  const common::Jwk rs_jwk = rs->public_jwk();
  es.reset();
  rs.reset();
  Open(16);  // New device connection and manager on the same state directory.
  for (auto [id, jwk] : {std::pair{"es", es_jwk}, std::pair{"rs", rs_jwk}}) {
    auto key = manager_->Get(id);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    EXPECT_TRUE((*key)->public_jwk().SameKey(jwk));
    ASSERT_OK(SignAndVerify(**key, kMessage));
  }
  // The files are private.
  struct stat st {};
  ASSERT_EQ(::stat((state_dir_ / "keys" / "es.tpmkey").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(TpmBackendTest, KeysAndAksSurviveASwtpmRestart) {
  auto key = MustGenerate("agent", {JwsAlgorithm::kEs256, {}});
  ASSERT_NE(key, nullptr);
  auto ak = attestor_->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  ASSERT_OK(SignAndVerify(*key, kMessage));  // SRK and key now cached.

  ASSERT_OK(testing::RestartSwtpm(&machine_));
  // The same manager notices the reset, drops its stale handles and reloads.
  ASSERT_OK(SignAndVerify(*key, kMessage));
  EXPECT_GE(device_->stats().resets_seen, 1u);
  auto quote = attestor_->Quote("ak", {{kTpmAlgSha256, {0, 1}}}, common::ToBytes("n"));
  EXPECT_TRUE(quote.ok()) << quote.status().ToString();

  // And a new daemon too.
  ASSERT_OK(testing::RestartSwtpm(&machine_));
  key.reset();
  Open(16);
  auto reloaded = manager_->Get("agent");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  ASSERT_OK(SignAndVerify(**reloaded, kMessage));
  auto certified = attestor_->Certify("ak", **reloaded, common::ToBytes("q"));
  EXPECT_TRUE(certified.ok()) << certified.status().ToString();
  // Keep the fleet's pid file in sync so ScopedFleet stops the new process.
  fleet_.reset();
}

TEST_F(TpmBackendTest, ManyKeysInSequenceWithoutResourceManager) {
  for (int cached : {0, 2, 16}) {
    SCOPED_TRACE("cached_keys=" + std::to_string(cached));
    Open(cached);
    std::vector<std::shared_ptr<Key>> keys;
    for (int i = 0; i < 10; ++i) {
      const std::string id = "k" + std::to_string(cached) + "-" + std::to_string(i);
      auto key = MustGenerate(id, {i == 3 ? JwsAlgorithm::kRs256 : JwsAlgorithm::kEs256, {}});
      ASSERT_NE(key, nullptr);
      keys.push_back(key);
    }
    auto ak = attestor_->CreateAk("ak" + std::to_string(cached));
    ASSERT_TRUE(ak.ok()) << ak.status().ToString();
    for (int round = 0; round < 3; ++round) {
      for (const auto& key : keys) ASSERT_OK(SignAndVerify(*key, kMessage));
      // Certify needs SRK + AK + key: all three slots.
      auto cert = attestor_->Certify(ak->id, *keys[static_cast<size_t>(round)], common::ToBytes("c"));
      ASSERT_TRUE(cert.ok()) << cert.status().ToString();
    }
    const TpmDeviceStats stats = device_->stats();
    EXPECT_LE(stats.max_loaded, 3);  // Certify of a fresh key: SRK + key, then SRK + AK + key.
    EXPECT_EQ(stats.srk_creations, 1u);
    if (cached == 16) {
      EXPECT_EQ(stats.loads, 11u);  // Each blob loaded once, then from its saved context.
    } else {
      EXPECT_GT(stats.loads, 30u);
    }
  }
}

TEST_F(TpmBackendTest, TwoDevicesAndToolsTakeTurnsOnThreeSlots) {
  auto a = MustGenerate("a", {JwsAlgorithm::kEs256, {}});
  ASSERT_NE(a, nullptr);
  ASSERT_OK(SignAndVerify(*a, kMessage));
  // A second daemon on the same TPM while the first one's keys stay alive.
  auto other_device = testing::OpenDevice(machine_.tcti);
  ASSERT_TRUE(other_device.ok());
  auto other = TpmKeyManager::Create(*other_device, fleet_->dir() / "other-state");
  ASSERT_TRUE(other.ok());
  auto b = (*other)->Generate("b", {JwsAlgorithm::kEs256, {}});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(SignAndVerify(*a, kMessage));
    ASSERT_OK(SignAndVerify(**b, kMessage));
  }
  // Nothing is left loaded in between: tpm2-tools finds all 3 slots free.
  auto handles = simulators::testing::RunCommand({"tpm2_getcap", "-T", machine_.tcti, "handles-transient"});
  ASSERT_TRUE(handles.ok());
  EXPECT_EQ(handles->exit_code, 0) << handles->stderr_text;
  EXPECT_EQ(handles->stdout_text.find("0x80"), std::string::npos) << handles->stdout_text;
}

TEST_F(TpmBackendTest, PcrBoundKeyStopsSigningAfterExtend) {
  auto bound = MustGenerate("bound", {JwsAlgorithm::kEs256, {15}});
  auto other_pcr = MustGenerate("bound14", {JwsAlgorithm::kEs256, {14}});
  auto free_key = MustGenerate("free", {JwsAlgorithm::kEs256, {}});
  ASSERT_NE(bound, nullptr);
  ASSERT_NE(other_pcr, nullptr);
  ASSERT_NE(free_key, nullptr);
  ASSERT_OK(SignAndVerify(*bound, kMessage));
  // The binding is in the TPM object: no userWithAuth, a policy digest.
  auto pub = UnmarshalPublic(bound->native_public());
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0u);
  EXPECT_EQ(pub->publicArea.authPolicy.size, 32);

  ASSERT_OK(attestor_->PcrExtend(15, common::Sha256(common::ToBytes("tamper"))));
  auto sig = bound->SignDigest(common::Sha256(kMessage));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), StatusCode::kFailedPrecondition) << sig.status().ToString();
  EXPECT_NE(sig.status().message().find("TSS2_RC 0x"), std::string::npos) << sig.status().ToString();
  // Other keys are unaffected.
  ASSERT_OK(SignAndVerify(*other_pcr, kMessage));
  ASSERT_OK(SignAndVerify(*free_key, kMessage));
  // Still refused after a daemon restart.
  bound.reset();
  Open(16);
  auto reloaded = manager_->Get("bound");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  EXPECT_EQ((*reloaded)->policy().pcr_binding, std::vector<uint32_t>{15});
  EXPECT_EQ((*reloaded)->SignDigest(common::Sha256(kMessage)).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(TpmBackendTest, RefusesResettableAndOutOfRangePcrs) {
  for (uint32_t pcr : {16u, 23u, 24u}) {
    auto key = manager_->Generate("p" + std::to_string(pcr), {JwsAlgorithm::kEs256, {pcr}});
    EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument) << pcr;
  }
  EXPECT_EQ(manager_->Generate("dup", {JwsAlgorithm::kEs256, {1, 1}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(manager_->List()->empty());
}

TEST_F(TpmBackendTest, TamperedBlobFailsWithTssCode) {
  auto key = MustGenerate("victim", {JwsAlgorithm::kEs256, {}});
  ASSERT_NE(key, nullptr);
  key.reset();
  const auto path = state_dir_ / "keys" / "victim.tpmkey";
  auto bytes = ReadWholeFile(path);
  ASSERT_TRUE(bytes.ok());
  (*bytes)[bytes->size() - 5] ^= 0x01;  // Inside the TPM-wrapped private area.
  ASSERT_OK(WriteFileAtomic(path, *bytes));
  Open(16);
  auto tampered = manager_->Get("victim");
  ASSERT_TRUE(tampered.ok()) << tampered.status().ToString();
  auto sig = (*tampered)->SignDigest(common::Sha256(kMessage));
  ASSERT_FALSE(sig.ok());
  EXPECT_NE(sig.status().message().find("TPM2_Load"), std::string::npos) << sig.status().ToString();
  EXPECT_NE(sig.status().message().find("TSS2_RC 0x"), std::string::npos) << sig.status().ToString();
  // A truncated file is DATA_LOSS.
  bytes->resize(bytes->size() - 3);
  ASSERT_OK(WriteFileAtomic(path, *bytes));
  Open(16);
  EXPECT_EQ(manager_->Get("victim").status().code(), StatusCode::kDataLoss);
}

TEST_F(TpmBackendTest, EkPublicAreasMatchCertificatesAndTemplates) {
  for (EkKind kind : {EkKind::kRsa2048, EkKind::kEccP384}) {
    SCOPED_TRACE(std::string(EkKindName(kind)));
    auto pub = attestor_->ReadEkPublic(kind);
    ASSERT_TRUE(pub.ok()) << pub.status().ToString();
    auto cert = attestor_->ReadEkCertificate(kind);
    ASSERT_TRUE(cert.ok()) << cert.status().ToString();
    const unsigned char* p = cert->data();
    common::X509Ptr x509(d2i_X509(nullptr, &p, static_cast<long>(cert->size())));
    ASSERT_NE(x509, nullptr);
    auto parsed_pub = UnmarshalPublic(*pub);
    ASSERT_TRUE(parsed_pub.ok());
    auto tpm_pkey = PublicToEvp(parsed_pub->publicArea);
    ASSERT_TRUE(tpm_pkey.ok()) << tpm_pkey.status().ToString();
    EXPECT_EQ(EVP_PKEY_eq(tpm_pkey->get(), X509_get0_pubkey(x509.get())), 1);
    // The template reproduces the persisted EK: CreatePrimary gives the same key.
    auto parsed = UnmarshalPublic(*pub);
    ASSERT_TRUE(parsed.ok());
    TPM2B_PUBLIC tmpl = EkTemplate(kind);
    EXPECT_EQ(parsed->publicArea.objectAttributes, tmpl.publicArea.objectAttributes);
    EXPECT_EQ(parsed->publicArea.nameAlg, tmpl.publicArea.nameAlg);
    EXPECT_EQ(common::Bytes(parsed->publicArea.authPolicy.buffer,
                            parsed->publicArea.authPolicy.buffer + parsed->publicArea.authPolicy.size),
              common::Bytes(tmpl.publicArea.authPolicy.buffer,
                            tmpl.publicArea.authPolicy.buffer + tmpl.publicArea.authPolicy.size));
  }
  // No P-256 EK is persisted on swtpm: it is recreated from template L-2,
  // deterministically.
  auto first = attestor_->ReadEkPublic(EkKind::kEccP256);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = attestor_->ReadEkPublic(EkKind::kEccP256);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*first, *second);
}

TEST_F(TpmBackendTest, QuoteCertifyAndPcrsProduceTpmStructures) {
  auto ak = attestor_->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  EXPECT_EQ(attestor_->CreateAk("ak").status().code(), StatusCode::kAlreadyExists);
  auto again = attestor_->GetAk("ak");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->name, ak->name);
  auto akpub = UnmarshalPublic(ak->tpm2b_public);
  ASSERT_TRUE(akpub.ok());
  EXPECT_NE(akpub->publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED, 0u);
  EXPECT_EQ(ObjectName(akpub->publicArea).value(), ak->name);

  auto before = attestor_->PcrRead({{kTpmAlgSha256, {0, 9, 10, 11, 12, 13, 14, 15, 16, 23}}});
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->size(), 10u);  // More than one PCR_Read round (8 per call).
  ASSERT_OK(attestor_->PcrExtend(10, common::Sha256(common::ToBytes("m"))));
  auto after = attestor_->PcrRead({{kTpmAlgSha256, {10}}});
  ASSERT_TRUE(after.ok());
  // PCR10 = SHA256(old || digest)
  common::Bytes expected_input = before->at({kTpmAlgSha256, 10});
  common::Bytes d = common::Sha256(common::ToBytes("m"));
  expected_input.insert(expected_input.end(), d.begin(), d.end());
  EXPECT_EQ(after->at({kTpmAlgSha256, 10}), common::Sha256(expected_input));

  const common::Bytes nonce = common::ToBytes("nonce-123");
  auto quote = attestor_->Quote("ak", {{kTpmAlgSha256, {10}}}, nonce);
  ASSERT_TRUE(quote.ok()) << quote.status().ToString();
  ASSERT_GT(quote->tpms_attest.size(), 10u);
  EXPECT_EQ(common::HexEncode(common::ByteView(quote->tpms_attest.data(), 6)), "ff5443478018");
  EXPECT_EQ(quote->tpmt_signature[1], 0x18);  // TPM_ALG_ECDSA

  auto key = MustGenerate("agent");
  ASSERT_NE(key, nullptr);
  auto cert = attestor_->Certify("ak", *key, nonce);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  EXPECT_EQ(common::HexEncode(common::ByteView(cert->tpms_attest.data(), 6)), "ff5443478017");

  EXPECT_EQ(attestor_->Quote("nope", {{kTpmAlgSha256, {0}}}, nonce).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(attestor_->Quote("ak", {{kTpmAlgSha256, {0}}}, common::Bytes(65, 1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(attestor_->PcrExtend(24, d).code(), StatusCode::kInvalidArgument);
}

TEST_F(TpmBackendTest, ActivateCredentialRejectsGarbageWithTssCode) {
  auto ak = attestor_->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  // Malformed structures: INVALID_ARGUMENT before the TPM sees them.
  EXPECT_EQ(attestor_->ActivateCredential("ak", EkKind::kRsa2048, common::Bytes{0, 5, 1},
                                          common::Bytes{0, 0})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // Well-formed but not made for this TPM: the TPM refuses, code kept.
  common::Bytes blob = {0x00, 0x04, 0x00, 0x02, 0xaa, 0xbb};
  common::Bytes secret(2 + 256, 0x11);
  secret[0] = 0x01;
  secret[1] = 0x00;
  auto result = attestor_->ActivateCredential("ak", EkKind::kRsa2048, blob, secret);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("TSS2_RC 0x"), std::string::npos)
      << result.status().ToString();
}

}  // namespace
}  // namespace agentroot::hsm::tpm
