// The verifier's flows end to end on swtpm machines (ARCHITECTURE.md flows
// 1-7): enrollment with credential activation, approval, registration and
// review, key certification, measurement, attestation, token exchange and
// validation by a resource server. Then every refusal, each on its own.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <openssl/pem.h>

#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/session_binding.h"
#include "agentroot/attestation/token_policy.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/attestation/verifier.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/jwt.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/scoped_fleet.h"

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using attestation::AttestRequest;
using attestation::VerifierCore;
using common::Bytes;
using common::Json;
using hsm::tpm::EkKind;

constexpr char kAgent[] = "spiffe://example.org/agent/crm-bot";
constexpr char kAudience[] = "https://crm.example";
constexpr char kTokenEndpoint[] = "https://verifier.test/oauth/token";
constexpr uint32_t kMeasurementPcr = 15;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string Hex(char c) { return std::string(64, c); }

// One simulated machine: its TPM device, attestor (AK) and key manager.
struct Machine {
  std::string tcti;
  fs::path state;
  std::shared_ptr<hsm::tpm::TpmDevice> device;
  std::unique_ptr<hsm::tpm::TpmAttestor> attestor;
  std::unique_ptr<hsm::tpm::TpmKeyManager> keys;
  std::string host_id;
};

class VerifierFlowTest : public ::testing::Test {
 protected:
  // Fresh machines per test: a measurement log replays from the PCR's value at
  // TPM start-up, and PCR 15 cannot be reset short of restarting the TPM.
  void SetUp() override {
    auto fleet = simulators::testing::ScopedFleet::Create(2);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    fleet_ = std::move(fleet).value();
    dir_ = fleet_->info().dir / "verifier";
    fs::create_directories(dir_);
    clock_ = std::make_unique<common::FakeClock>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    fs::path db = dir_ / "verifier.db";
    store_ = std::shared_ptr<attestation::store::Store>(
        std::move(attestation::store::Store::Open("sqlite:" + db.string(), *clock_)).value());
    issuer_ = std::shared_ptr<common::OpenSslSigner>(
        std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value());
    attestation::VerifierConfig config;
    config.issuer = "https://verifier.test";
    config.token_endpoint = kTokenEndpoint;
    config.trust_domain = "example.org";
    config.manufacturer_roots_pem = ReadFile(fleet_->info().manufacturer_ca);
    config.measurement_pcr = kMeasurementPcr;
    core_ = std::move(VerifierCore::Create(config, store_, issuer_, {}, *clock_)).value();
    for (auto [id, role] : {std::pair{"alice", attestation::store::Role::kOwner},
                            std::pair{"bob", attestation::store::Role::kReviewer},
                            std::pair{"carol", attestation::store::Role::kInfra},
                            std::pair{"dave", attestation::store::Role::kAuditor}}) {
      attestation::store::Operator op;
      op.id = id;
      op.display_name = id;
      op.roles = {role};
      op.client_cert_fingerprint = std::string("fp-") + id;
      ASSERT_TRUE(store_->CreateOperator(op, nullptr).ok());
    }
    for (int i = 0; i < 2; ++i) {
      Machine& m = machines_[i];
      m.tcti = fleet_->info().machines[i].tcti;
      m.state = dir_ / ("machine-" + std::to_string(i));
      fs::create_directories(m.state);
      hsm::tpm::TpmDeviceOptions options;
      options.tcti = m.tcti;
      m.device = std::move(hsm::tpm::TpmDevice::Open(std::move(options))).value();
      m.attestor = std::move(hsm::tpm::TpmAttestor::Create(m.device, m.state)).value();
      m.keys = std::move(hsm::tpm::TpmKeyManager::Create(m.device, m.state)).value();
      ASSERT_TRUE(m.attestor->CreateAk("ak").ok());
    }
  }

  // Flow 1: enroll + activate machine `i` in `group`.
  common::Result<attestation::ActivationResult> Enroll(int i, const std::string& group = "crm-hosts") {
    Machine& m = machines_[i];
    attestation::EnrollRequest request;
    AR_ASSIGN_OR_RETURN(request.ek_public, m.attestor->ReadEkPublic(EkKind::kRsa2048));
    AR_ASSIGN_OR_RETURN(request.ek_certificate, m.attestor->ReadEkCertificate(EkKind::kRsa2048));
    request.ek_intermediates_pem = ReadFile(fleet_->info().manufacturer_intermediate);
    AR_ASSIGN_OR_RETURN(auto ak, m.attestor->GetAk("ak"));
    request.ak_public = ak.tpm2b_public;
    request.host_group = group;
    AR_ASSIGN_OR_RETURN(auto challenge, core_->Enroll(request));
    AR_ASSIGN_OR_RETURN(auto secret, m.attestor->ActivateCredential("ak", EkKind::kRsa2048, challenge.credential_blob,
                                                                    challenge.encrypted_secret));
    m.host_id = challenge.host_id;
    return core_->Activate(challenge.host_id, challenge.activation_id, secret.Reveal());
  }

  attestation::MeasurementEvent Event(uint64_t seq, char exe = 'a') const {
    attestation::MeasurementEvent e;
    e.sequence = seq;
    e.time = clock_->NowUnixSeconds();
    e.agent_id = kAgent;
    e.pid = 4242;
    e.uid = 1001;
    e.exe_path = "/opt/agents/crm-bot";
    e.exe_sha256_hex = Hex(exe);
    e.files = {{"/etc/agents/crm-bot.toml", Hex('c')}};
    return e;
  }

  Json Manifest() const {
    return Json{{"exe_sha256", Hex('a')}, {"files", {{"/etc/agents/crm-bot.toml", Hex('c')}}},
                {"model_id", "gpt-x"}, {"allowed_tools", {"crm.search"}}};
  }

  // Flows 1-3 for machine 0: enrolled, approved, agent registered and
  // reviewed, key certified. Returns the agent key.
  std::shared_ptr<hsm::Key> Provision(bool review = true) {
    EXPECT_TRUE(Enroll(0).ok());
    EXPECT_TRUE(core_->ApproveHost("carol", machines_[0].host_id).ok());
    attestation::store::Agent agent;
    agent.id = kAgent;
    agent.name = "crm-bot";
    agent.host_group = "crm-hosts";
    agent.allowed_scopes = {"crm.read", "crm.write"};
    agent.allowed_audiences = {kAudience};
    agent.max_token_ttl_seconds = 300;
    agent.expires_at = clock_->NowUnixSeconds() + 30 * 86400;
    agent.owners = {"alice"};
    EXPECT_TRUE(core_->CreateAgent("alice", agent).ok());
    auto version = core_->AddManifest("alice", kAgent, Manifest());
    EXPECT_TRUE(version.ok());
    if (review) {
      EXPECT_TRUE(core_->ReviewManifest("bob", kAgent, *version, true, "reviewed").ok());
    }
    auto key = machines_[0].keys->Generate("crm-bot", hsm::KeyPolicy{});
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    auto nonce = core_->Challenge(machines_[0].host_id, "certify");
    EXPECT_TRUE(nonce.ok());
    auto certified = machines_[0].attestor->Certify(
        "ak", **key, attestation::CertifyQualifyingData(common::AsBytes(nonce->value)));
    EXPECT_TRUE(certified.ok()) << certified.status().ToString();
    auto registered = core_->RegisterAgentKey(machines_[0].host_id, kAgent, nonce->value, (*key)->native_public(),
                                              certified->tpms_attest, certified->tpmt_signature);
    EXPECT_TRUE(registered.ok()) << registered.status().ToString();
    return *key;
  }

  // Flows 4-5: measure, extend, quote, attest on machine `i`.
  common::Result<attestation::AttestOutcome> Attest(const hsm::Key& key, std::vector<attestation::MeasurementEvent> log,
                                                    int quoting_machine = 0, bool extend = true) {
    Machine& m = machines_[0];
    if (extend) AR_RETURN_IF_ERROR(m.attestor->PcrExtend(kMeasurementPcr, attestation::EventDigest(log.back())));
    AR_ASSIGN_OR_RETURN(auto nonce, core_->Challenge(m.host_id, "attest"));
    AR_ASSIGN_OR_RETURN(auto key_public, attestation::TpmPublic::Parse(key.native_public()));
    Bytes qualifying = attestation::QualifyingData(common::AsBytes(nonce.value), key_public.name(),
                                                   attestation::EventDigest(log.back()));
    std::vector<hsm::tpm::PcrBank> selection = {{hsm::tpm::kTpmAlgSha256, {0, 7, kMeasurementPcr}}};
    Machine& q = machines_[quoting_machine];
    AR_ASSIGN_OR_RETURN(auto quote, q.attestor->Quote("ak", selection, qualifying));
    AR_ASSIGN_OR_RETURN(auto values, q.attestor->PcrRead(selection));
    AttestRequest request;
    request.host_id = m.host_id;
    request.agent_id = kAgent;
    request.nonce = nonce.value;
    request.agent_key_public = key.native_public();
    request.quote_attest = quote.tpms_attest;
    request.quote_signature = quote.tpmt_signature;
    for (const auto& [bank_pcr, value] : values) request.pcr_values[bank_pcr.second] = value;
    request.measurement_log = attestation::SerializeLog(log);
    last_attest_ = request;
    return core_->Attest(request);
  }

  common::Result<attestation::IssuedToken> Token(const std::string& ear, const common::Signer& proof_key,
                                                 const std::string& scope = "crm.read",
                                                 const std::string& audience = kAudience,
                                                 std::optional<int64_t> ttl = std::nullopt) {
    attestation::TokenExchange exchange;
    exchange.subject_token = ear;
    exchange.dpop_proof = *attestation::CreateDpopProof(proof_key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
    exchange.scope = scope;
    exchange.audience = audience;
    exchange.requested_ttl = ttl;
    return core_->Token(exchange);
  }

  // A resource server's validator for kAudience, on the verifier's JWKS.
  std::unique_ptr<attestation::AccessTokenValidator> Validator() {
    std::string jwks = core_->Jwks().dump();
    auto cache = std::make_shared<attestation::JwksCache>([jwks]() -> common::Result<std::string> { return jwks; },
                                                          *clock_, attestation::JwksCache::Options{});
    auto replay = std::make_shared<attestation::InMemoryReplayCache>(1000, *clock_);
    attestation::AccessTokenPolicy policy;
    policy.issuer = "https://verifier.test";
    policy.audience = kAudience;
    policy.is_revoked = [this](std::string_view jti) { return store_->IsTokenRevoked(jti).value_or(true); };
    return std::move(attestation::AccessTokenValidator::Create(policy, cache, replay, clock_.get())).value();
  }

  // Token exchange in session proof mode: `binding` presented, the proof
  // signed by `proof_key` (the session key when honest).
  common::Result<attestation::IssuedToken> SessionToken(const std::string& ear, const std::string& binding,
                                                        const common::Signer& proof_key) {
    attestation::TokenExchange exchange;
    exchange.subject_token = ear;
    exchange.dpop_proof = *attestation::CreateDpopProof(proof_key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
    exchange.scope = "crm.read";
    exchange.audience = kAudience;
    exchange.session_binding = binding;
    return core_->Token(exchange);
  }

  void ExpectTokenRefused(const common::Status& status, std::string_view reason) {
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find(reason), std::string::npos) << status.ToString();
  }

  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
  fs::path dir_;
  std::unique_ptr<common::FakeClock> clock_;
  std::shared_ptr<attestation::store::Store> store_;
  std::shared_ptr<common::OpenSslSigner> issuer_;
  std::unique_ptr<VerifierCore> core_;
  Machine machines_[2];
  AttestRequest last_attest_;
};


TEST_F(VerifierFlowTest, FullFlowAndAStolenTokenIsUselessElsewhere) {
  auto key = Provision();
  // hostd would read the PCR and keep a log since boot; here the log starts
  // from the PCR's current value, so rebuild it from the TPM's value first.
  auto before = machines_[0].attestor->PcrRead({{hsm::tpm::kTpmAlgSha256, {kMeasurementPcr}}});
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->begin()->second, Bytes(32, 0)) << "machine-0 PCR 15 must start at zero";
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->result.status, attestation::EarStatus::kAffirming)
      << (outcome->reasons.empty() ? "" : outcome->reasons.front());
  auto token = Token(outcome->ear, *key);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->scope, "crm.read");
  EXPECT_EQ(token->expires_in, 300);

  // The resource server validates with the verifier's JWKS.
  auto validator = Validator();
  const std::string url = "https://crm.example/v1/accounts";
  auto proof = [&](const common::Signer& k) {
    return std::vector<std::string>{*attestation::CreateDpopProof(k, "GET", url, clock_->NowUnixSeconds(), token->access_token)};
  };
  auto ok = validator->Validate("DPoP " + token->access_token, proof(*key), "GET", url, "crm.read");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->subject, kAgent);

  // THREATS #1: machine B has the token but not machine A's TPM key.
  auto other = machines_[1].keys->Generate("thief", hsm::KeyPolicy{});
  ASSERT_TRUE(other.ok());
  auto stolen = validator->Validate("DPoP " + token->access_token, proof(**other), "GET", url, "crm.read");
  ASSERT_FALSE(stolen.ok());
  EXPECT_EQ(attestation::OAuthErrorOf(stolen.status()), attestation::oauth_error::kInvalidDpopProof);
  auto bare = validator->Validate("DPoP " + token->access_token, {}, "GET", url, "crm.read");
  EXPECT_EQ(attestation::OAuthErrorOf(bare.status()), attestation::oauth_error::kInvalidToken);

  // Introspection, then revocation seen at once.
  EXPECT_TRUE(core_->Introspect(token->access_token)["active"].get<bool>());
  ASSERT_TRUE(core_->Revoke(token->access_token, "carol").ok());
  EXPECT_FALSE(core_->Introspect(token->access_token)["active"].get<bool>());
  EXPECT_FALSE(validator->Validate("DPoP " + token->access_token, proof(*key), "GET", url, "crm.read").ok());

  // The audit chain holds every decision and verifies offline.
  auto exported = store_->ExportAudit(0, clock_->NowUnixSeconds() + 10);
  ASSERT_TRUE(exported.ok());
  auto report = attestation::store::VerifyAuditChain(exported->jsonl, exported->anchor);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_GE(report.records_verified, 8);
  for (const char* action : {"host.enroll", "host.approve", "agent.create", "manifest.review",
                             "agent_key.register", "attest", "token.issue", "token.revoke"}) {
    EXPECT_NE(exported->jsonl.find(std::string("\"") + action + "\""), std::string::npos) << action;
  }
  // No whole token in the audit log (THREATS #20).
  EXPECT_EQ(exported->jsonl.find(token->access_token), std::string::npos);
}

TEST_F(VerifierFlowTest, EnrollmentRefusals) {
  // The EK certificate must chain to a trusted manufacturer: a fresh fleet has its own CA.
  auto foreign = simulators::testing::ScopedFleet::Create(1);
  ASSERT_TRUE(foreign.ok());
  hsm::tpm::TpmDeviceOptions options;
  options.tcti = (*foreign)->info().machines[0].tcti;
  auto device = std::move(hsm::tpm::TpmDevice::Open(std::move(options))).value();
  auto attestor = std::move(hsm::tpm::TpmAttestor::Create(device, dir_ / "foreign")).value();
  attestation::EnrollRequest request;
  request.ek_public = *attestor->ReadEkPublic(EkKind::kRsa2048);
  request.ek_certificate = *attestor->ReadEkCertificate(EkKind::kRsa2048);
  request.ek_intermediates_pem = ReadFile((*foreign)->info().manufacturer_intermediate);
  request.ak_public = attestor->CreateAk("ak")->tpm2b_public;
  auto untrusted = core_->Enroll(request);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.status().message().find("ek_untrusted"), std::string::npos);

  // THREATS #3: machine 0's EK with machine 1's AK: machine 1's TPM cannot
  // activate a credential made for machine 0's EK.
  request.ek_public = *machines_[0].attestor->ReadEkPublic(EkKind::kRsa2048);
  request.ek_certificate = *machines_[0].attestor->ReadEkCertificate(EkKind::kRsa2048);
  request.ek_intermediates_pem = ReadFile(fleet_->info().manufacturer_intermediate);
  request.ak_public = machines_[1].attestor->GetAk("ak")->tpm2b_public;
  auto challenge = core_->Enroll(request);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  EXPECT_FALSE(machines_[1].attestor->ActivateCredential("ak", EkKind::kRsa2048, challenge->credential_blob,
                                                         challenge->encrypted_secret).ok());
  // Machine 0 has the EK but not that AK: it cannot activate either.
  EXPECT_FALSE(machines_[0].attestor->ActivateCredential("ak", EkKind::kRsa2048, challenge->credential_blob,
                                                         challenge->encrypted_secret).ok());
  // A guessed secret fails and burns the activation.
  EXPECT_FALSE(core_->Activate(challenge->host_id, challenge->activation_id, Bytes(32, 0)).ok());
  EXPECT_FALSE(core_->Activate(challenge->host_id, challenge->activation_id, Bytes(32, 0)).ok());
  EXPECT_FALSE(store_->GetHost(challenge->host_id).ok()) << "nothing may be stored for a failed activation";

  // The honest enrollment: pending until an infra operator approves.
  auto activated = Enroll(0);
  ASSERT_TRUE(activated.ok()) << activated.status().ToString();
  EXPECT_EQ(activated->status, attestation::store::HostStatus::kPending);
  EXPECT_FALSE(core_->Challenge(machines_[0].host_id, "attest").ok());
  EXPECT_FALSE(core_->ApproveHost("bob", machines_[0].host_id).ok());  // a reviewer is not infra
  EXPECT_TRUE(core_->ApproveHost("carol", machines_[0].host_id).ok());
  EXPECT_TRUE(core_->Challenge(machines_[0].host_id, "attest").ok());
}

TEST_F(VerifierFlowTest, GovernanceRefusals) {
  auto key = Provision(/*review=*/false);
  // Owner reviews own agent: refused.
  EXPECT_FALSE(core_->ReviewManifest("alice", kAgent, 1, true, "mine").ok());
  // Unreviewed manifest: the attestation is not affirming, no token.
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_NE(outcome->result.status, attestation::EarStatus::kAffirming);
  ExpectTokenRefused(Token(outcome->ear, *key).status(), "attestation_not_affirming");
}

TEST_F(VerifierFlowTest, TokenRequestRefusals) {
  auto key = Provision();
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  ASSERT_EQ(outcome->result.status, attestation::EarStatus::kAffirming);
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.admin").status(), "invalid_scope");
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.read", "https://erp.example").status(), "invalid_target");
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.read", kAudience, 301).status(), "ttl_exceeds_max");
  // Proof signed by a key other than the attested one (THREATS #9).
  auto other = machines_[0].keys->Generate("other", hsm::KeyPolicy{});
  ExpectTokenRefused(Token(outcome->ear, **other).status(), "proof_key_not_attested_key");
  // A replayed DPoP proof at the token endpoint.
  attestation::TokenExchange exchange;
  exchange.subject_token = outcome->ear;
  exchange.dpop_proof = *attestation::CreateDpopProof(*key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
  exchange.scope = "crm.read";
  exchange.audience = kAudience;
  ASSERT_TRUE(core_->Token(exchange).ok());
  ExpectTokenRefused(core_->Token(exchange).status(), "replayed");
  // An expired attestation result.
  clock_->Advance(std::chrono::seconds(200));
  ExpectTokenRefused(Token(outcome->ear, *key).status(), "invalid_grant");
  // Expired registration: a fresh attestation, but the registration ended.
  auto agent = store_->GetAgent(kAgent);
  agent->expires_at = clock_->NowUnixSeconds() - 1;
  ASSERT_TRUE(store_->UpdateAgent(*agent, nullptr).ok());
  auto again = Attest(*key, {Event(1), Event(2)});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectTokenRefused(Token(again->ear, *key).status(), "registration_expired");
}

TEST_F(VerifierFlowTest, EvidenceRefusals) {
  auto key = Provision();
  auto good = Attest(*key, {Event(1)});
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  ASSERT_EQ(good->result.status, attestation::EarStatus::kAffirming);
  // A reused nonce (THREATS #2).
  auto reused = core_->Attest(last_attest_);
  ASSERT_FALSE(reused.ok());
  EXPECT_NE(reused.status().message().find("nonce_invalid"), std::string::npos);
  // A never-issued nonce.
  AttestRequest forged = last_attest_;
  forged.nonce = "never-issued";
  EXPECT_FALSE(core_->Attest(forged).ok());
  // An expired nonce.
  auto nonce = core_->Challenge(machines_[0].host_id, "attest");
  clock_->Advance(std::chrono::seconds(61));
  forged = last_attest_;
  forged.nonce = nonce->value;
  EXPECT_FALSE(core_->Attest(forged).ok());
  clock_->Advance(std::chrono::seconds(-61));
  // A quote by machine 1's AK for machine 0's host.
  auto foreign = Attest(*key, {Event(1), Event(2)}, /*quoting_machine=*/1);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("evidence_invalid"), std::string::npos);
  // The PCR values presented differ from the quoted ones.
  auto honest = Attest(*key, {Event(1), Event(2), Event(3)});
  ASSERT_TRUE(honest.ok());
  AttestRequest tampered = last_attest_;
  tampered.nonce = core_->Challenge(machines_[0].host_id, "attest")->value;
  tampered.pcr_values[7][0] ^= 1;
  EXPECT_FALSE(core_->Attest(tampered).ok());
}

TEST_F(VerifierFlowTest, MeasurementRefusals) {
  auto key = Provision();
  // A modified agent binary (THREATS #17): extended and quoted honestly, but
  // not the approved manifest -> contraindicated, no token.
  auto modified = Attest(*key, {Event(1, 'b')});
  ASSERT_TRUE(modified.ok()) << modified.status().ToString();
  EXPECT_EQ(modified->result.status, attestation::EarStatus::kContraindicated);
  ExpectTokenRefused(Token(modified->ear, *key).status(), "attestation_not_affirming");
  // A forged log (THREATS #5): the TPM extended the modified event; the log
  // claims the approved one -> the quote's qualifying data does not match.
  ASSERT_TRUE(machines_[0].attestor->PcrExtend(kMeasurementPcr, attestation::EventDigest(Event(2, 'b'))).ok());
  auto forged = Attest(*key, {Event(1, 'b'), Event(2, 'a')}, 0, /*extend=*/false);
  ASSERT_TRUE(forged.ok()) << forged.status().ToString();
  EXPECT_NE(forged->result.status, attestation::EarStatus::kAffirming);
}

TEST_F(VerifierFlowTest, DpopNonceWhenRequired) {
  auto key = Provision();
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  // A second verifier process on the same store that requires DPoP nonces.
  attestation::VerifierConfig config = core_->config();
  config.require_dpop_nonce = true;
  auto strict = std::move(VerifierCore::Create(config, store_, issuer_, {}, *clock_)).value();
  auto request = [&](std::optional<std::string_view> nonce) {
    attestation::TokenExchange exchange;
    exchange.subject_token = outcome->ear;
    exchange.dpop_proof = *attestation::CreateDpopProof(*key, "POST", kTokenEndpoint, clock_->NowUnixSeconds(),
                                                        std::nullopt, nonce);
    exchange.scope = "crm.read";
    exchange.audience = kAudience;
    return strict->Token(exchange);
  };
  auto without = request(std::nullopt);
  ASSERT_FALSE(without.ok());
  EXPECT_EQ(attestation::OAuthErrorOf(without.status()), attestation::oauth_error::kUseDpopNonce);
  EXPECT_EQ(attestation::OAuthErrorOf(request("never-issued").status()), attestation::oauth_error::kUseDpopNonce);
  auto nonce = strict->IssueDpopNonce();
  ASSERT_TRUE(nonce.ok());
  auto with = request(*nonce);
  ASSERT_TRUE(with.ok()) << with.status().ToString();
  // Single use: the same nonce in a fresh proof is refused.
  EXPECT_EQ(attestation::OAuthErrorOf(request(*nonce).status()), attestation::oauth_error::kUseDpopNonce);
  // Expired.
  auto old = strict->IssueDpopNonce();
  clock_->Advance(std::chrono::seconds(config.dpop_nonce_ttl_seconds + 1));
  EXPECT_EQ(attestation::OAuthErrorOf(request(*old).status()), attestation::oauth_error::kUseDpopNonce);
}

// ---------------------------------------------------------------- issuer key rotation

// The public JWK of `signer` as the JWKS publishes it (kid + alg).
common::Jwk Published(const common::Signer& signer) {
  Json j = signer.public_jwk().ToJson();
  j["alg"] = std::string(common::JwsAlgorithmName(signer.algorithm()));
  return std::move(common::Jwk::FromJson(j)).value();
}

std::vector<std::string> JwksKids(const VerifierCore& core) {
  std::vector<std::string> kids;
  const Json jwks = core.Jwks();
  for (const Json& k : jwks["keys"]) kids.push_back(k["kid"].get<std::string>());
  return kids;
}

std::string KidOf(const std::string& jwt) {
  return common::ParseJwsCompact(jwt).value().header["kid"].get<std::string>();
}

TEST_F(VerifierFlowTest, IssuerKeyRotationPublishSwitchRetire) {
  auto key = Provision();
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  const std::string old_ear = outcome->ear;  // signed by issuer-1
  EXPECT_EQ(KidOf(old_ear), "issuer-1");
  auto old_token = Token(old_ear, *key);
  ASSERT_TRUE(old_token.ok()) << old_token.status().ToString();
  EXPECT_EQ(KidOf(old_token->access_token), "issuer-1");
  std::shared_ptr<common::Signer> next =
      std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-2")).value();

  // Refused, and nothing changes: signing with a key nobody has seen yet,
  // or a kid that names another key.
  auto unpublished = core_->RotateIssuerKeys(next, {}, "config");
  ASSERT_FALSE(unpublished.ok());
  EXPECT_EQ(unpublished.status().code(), common::StatusCode::kFailedPrecondition);
  std::shared_ptr<common::Signer> impostor =
      std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value();
  EXPECT_FALSE(core_->RotateIssuerKeys(issuer_, {Published(*impostor)}, "config").ok());
  EXPECT_EQ(JwksKids(*core_), (std::vector<std::string>{"issuer-1"}));

  // 1. Publish the next key.
  auto published = core_->RotateIssuerKeys(issuer_, {Published(*next)}, "config");
  ASSERT_TRUE(published.ok()) << published.status().ToString();
  EXPECT_TRUE(*published);
  EXPECT_EQ(JwksKids(*core_), (std::vector<std::string>{"issuer-1", "issuer-2"}));
  EXPECT_FALSE(*core_->RotateIssuerKeys(issuer_, {Published(*next)}, "config"));  // unchanged: a no-op
  // Dropping the signing key from the JWKS in the same step as the switch is refused.
  EXPECT_FALSE(core_->RotateIssuerKeys(next, {}, "config").ok());

  // 2. Switch: issuer-2 signs, issuer-1 stays published.
  auto switched = core_->RotateIssuerKeys(next, {Published(*issuer_)}, "config");
  ASSERT_TRUE(switched.ok()) << switched.status().ToString();
  EXPECT_EQ(JwksKids(*core_), (std::vector<std::string>{"issuer-2", "issuer-1"}));
  // The EAR signed by issuer-1 within its TTL is still accepted; new tokens carry issuer-2.
  auto new_token = Token(old_ear, *key);
  ASSERT_TRUE(new_token.ok()) << new_token.status().ToString();
  EXPECT_EQ(KidOf(new_token->access_token), "issuer-2");
  auto new_outcome = Attest(*key, {Event(1), Event(2)});
  ASSERT_TRUE(new_outcome.ok()) << new_outcome.status().ToString();
  EXPECT_EQ(KidOf(new_outcome->ear), "issuer-2");
  EXPECT_TRUE(core_->Introspect(old_token->access_token)["active"].get<bool>());
  EXPECT_TRUE(core_->Introspect(new_token->access_token)["active"].get<bool>());
  // A resource server with the JWKS validates both.
  std::string jwks = core_->Jwks().dump();
  auto parsed = attestation::ParseJwks(jwks);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  common::JwtValidationOptions options;
  options.issuer = "https://verifier.test";
  options.typ = "at+jwt";
  options.clock = clock_.get();
  EXPECT_TRUE(common::VerifyJwt(old_token->access_token, *parsed, options).ok());
  EXPECT_TRUE(common::VerifyJwt(new_token->access_token, *parsed, options).ok());

  // 3. Retire issuer-1: what it signed no longer verifies.
  auto retired = core_->RotateIssuerKeys(next, {}, "config");
  ASSERT_TRUE(retired.ok()) << retired.status().ToString();
  EXPECT_EQ(JwksKids(*core_), (std::vector<std::string>{"issuer-2"}));
  auto refused = Token(old_ear, *key);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(attestation::OAuthErrorOf(refused.status()), attestation::oauth_error::kInvalidGrant);
  EXPECT_NE(refused.status().message().find("attestation result is not valid"), std::string::npos);
  EXPECT_FALSE(core_->Introspect(old_token->access_token)["active"].get<bool>());
  EXPECT_TRUE(core_->Introspect(new_token->access_token)["active"].get<bool>());
  EXPECT_TRUE(Token(new_outcome->ear, *key).ok());

  // Every rotation is audited with old and new kid; refusals as denials.
  auto exported = store_->ExportAudit(0, clock_->NowUnixSeconds() + 10);
  ASSERT_TRUE(exported.ok());
  int rotations = 0, refusals = 0;
  std::istringstream lines(exported->jsonl);
  for (std::string line; std::getline(lines, line);) {
    Json record = Json::parse(line);
    if (record["action"] != "issuer_key.rotate") continue;
    EXPECT_EQ(record["actor"], "config");
    EXPECT_TRUE(record["details"].contains("old_kid") && record["details"].contains("new_kid")) << line;
    if (record["decision"] == "info") ++rotations;
    if (record["decision"] == "deny") ++refusals;
  }
  EXPECT_EQ(rotations, 3);
  EXPECT_EQ(refusals, 3);
}

TEST_F(VerifierFlowTest, TokensIssuedDuringRotationsAllVerify) {
  auto key = Provision();
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  std::shared_ptr<common::Signer> next =
      std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-2")).value();
  ASSERT_TRUE(core_->RotateIssuerKeys(issuer_, {Published(*next)}, "config").ok());
  std::mutex proof_mu;  // the TPM key signs one proof at a time
  std::vector<std::string> tokens[2];
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> issuers;
  for (int t = 0; t < 2; ++t) {
    issuers.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        attestation::TokenExchange exchange;
        exchange.subject_token = outcome->ear;
        {
          std::lock_guard<std::mutex> lock(proof_mu);
          exchange.dpop_proof = *attestation::CreateDpopProof(*key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
        }
        exchange.scope = "crm.read";
        exchange.audience = kAudience;
        auto issued = core_->Token(exchange);
        if (issued.ok()) {
          tokens[t].push_back(issued->access_token);
        } else {
          ++failures;
          ADD_FAILURE() << issued.status().ToString();
        }
      }
    });
  }
  int rotations = 0;
  std::thread rotator([&] {
    // Back and forth between the two keys, each published while the other signs.
    while (!done.load()) {
      bool even = rotations % 2 == 0;
      auto r = core_->RotateIssuerKeys(even ? std::shared_ptr<const common::Signer>(next) : issuer_,
                                       {Published(even ? static_cast<const common::Signer&>(*issuer_) : *next)}, "config");
      if (!r.ok()) ADD_FAILURE() << r.status().ToString();
      ++rotations;
      std::this_thread::yield();
    }
  });
  for (auto& t : issuers) t.join();
  done = true;
  rotator.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(rotations, 1);
  auto parsed = attestation::ParseJwks(core_->Jwks().dump());
  ASSERT_TRUE(parsed.ok());
  common::JwtValidationOptions options;
  options.issuer = "https://verifier.test";
  options.typ = "at+jwt";
  options.clock = clock_.get();
  std::set<std::string> kids;
  for (const auto& list : tokens) {
    EXPECT_EQ(list.size(), 12u);
    for (const std::string& token : list) {
      EXPECT_TRUE(common::VerifyJwt(token, *parsed, options).ok());
      kids.insert(KidOf(token));
    }
  }
  EXPECT_FALSE(kids.empty());
}

// ---------------------------------------------------------------- rate limits

TEST_F(VerifierFlowTest, TwoVerifiersOnOneDatabaseShareTheRateLimits) {
  auto key = Provision();  // one certify challenge
  const attestation::MeasurementEvent first = Event(1);  // its time is part of its digest
  auto outcome = Attest(*key, {first});  // one attest challenge
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  const std::string host = machines_[0].host_id;
  // Two replicas with their own store connections on the fixture's database.
  attestation::VerifierConfig config = core_->config();
  config.token_rate_per_minute = 2;
  config.challenge_rate_per_minute = 4;
  std::shared_ptr<attestation::store::Store> second_store(
      std::move(attestation::store::Store::Open("sqlite:" + (dir_ / "verifier.db").string(), *clock_)).value());
  auto a = std::move(VerifierCore::Create(config, store_, issuer_, {}, *clock_)).value();
  auto b = std::move(VerifierCore::Create(config, second_store, issuer_, {}, *clock_)).value();
  auto token = [&](VerifierCore& core) {
    attestation::TokenExchange exchange;
    exchange.subject_token = outcome->ear;
    exchange.dpop_proof = *attestation::CreateDpopProof(*key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
    exchange.scope = "crm.read";
    exchange.audience = kAudience;
    return core.Token(exchange);
  };
  auto expect_limited = [](const common::Status& status, std::string_view error) {
    EXPECT_EQ(status.code(), common::StatusCode::kResourceExhausted) << status.ToString();
    EXPECT_EQ(status.message().substr(0, error.size() + 1), std::string(error) + ":") << status.ToString();
    auto retry = attestation::RetryAfterOf(status);
    ASSERT_TRUE(retry.has_value()) << status.ToString();
    EXPECT_GE(*retry, 1);
    EXPECT_LE(*retry, attestation::kRateWindowSeconds);
  };

  // Tokens: two per minute for the agent, across both replicas.
  ASSERT_TRUE(token(*a).ok());
  clock_->Advance(std::chrono::seconds(10));
  ASSERT_TRUE(token(*b).ok());
  auto third = token(*a);
  ASSERT_FALSE(third.ok());
  // The OAuth error stays what it was (invalid_grant, described rate_limited).
  expect_limited(third.status(), attestation::oauth_error::kInvalidGrant);
  EXPECT_NE(third.status().message().find("rate_limited"), std::string::npos);
  EXPECT_EQ(attestation::RetryAfterOf(third.status()), 50);  // the first token leaves the window in 50 s
  expect_limited(token(*b).status(), attestation::oauth_error::kInvalidGrant);
  clock_->Advance(std::chrono::seconds(51));
  EXPECT_TRUE(token(*b).ok());

  // Challenges: four per minute for the host, across both replicas (the
  // fixture's two are out of the window by now).
  EXPECT_TRUE(a->Challenge(host, "attest").ok());
  EXPECT_TRUE(b->Challenge(host, "certify").ok());
  EXPECT_TRUE(a->Challenge(host, "attest").ok());
  EXPECT_TRUE(b->Challenge(host, "attest").ok());
  auto fifth = a->Challenge(host, "attest");
  ASSERT_FALSE(fifth.ok());
  expect_limited(fifth.status(), attestation::problem::kRateLimited);
  expect_limited(b->Challenge(host, "certify").status(), attestation::problem::kRateLimited);
  clock_->Advance(std::chrono::seconds(61));
  EXPECT_TRUE(b->Challenge(host, "attest").ok());

  // Both kinds of refusal are audited as denials with the reason.
  auto exported = store_->ExportAudit(0, clock_->NowUnixSeconds() + 10);
  ASSERT_TRUE(exported.ok());
  int token_denials = 0, challenge_denials = 0;
  std::istringstream lines(exported->jsonl);
  for (std::string line; std::getline(lines, line);) {
    Json record = Json::parse(line);
    if (record["decision"] != "deny" || record["reasons"] != Json::array({"rate_limited"})) continue;
    if (record["action"] == "token.issue") ++token_denials;
    if (record["action"] == "challenge") ++challenge_denials;
  }
  EXPECT_EQ(token_denials, 2);
  EXPECT_EQ(challenge_denials, 2);

  // Racing: eight requests at once on both replicas, a fresh window (the
  // EAR is re-attested: the old one is past its TTL by now). Exactly the
  // limit is issued; the count and insert share one serialized transaction.
  clock_->Advance(std::chrono::seconds(61));
  auto fresh = Attest(*key, {first, Event(2)});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  ASSERT_EQ(fresh->result.status, attestation::EarStatus::kAffirming) << (fresh->reasons.empty() ? "" : fresh->reasons.front());
  std::vector<attestation::TokenExchange> exchanges(8);
  for (auto& exchange : exchanges) {
    exchange.subject_token = fresh->ear;
    exchange.dpop_proof = *attestation::CreateDpopProof(*key, "POST", kTokenEndpoint, clock_->NowUnixSeconds());
    exchange.scope = "crm.read";
    exchange.audience = kAudience;
  }
  std::atomic<int> issued{0}, limited{0};
  std::vector<std::thread> racers;
  for (std::size_t i = 0; i < exchanges.size(); ++i) {
    racers.emplace_back([&, i] {
      auto r = (i % 2 == 0 ? *a : *b).Token(exchanges[i]);
      if (r.ok()) {
        ++issued;
      } else if (attestation::RetryAfterOf(r.status()).has_value() &&
                 attestation::OAuthErrorOf(r.status()) == attestation::oauth_error::kInvalidGrant) {
        ++limited;
      } else {
        ADD_FAILURE() << r.status().ToString();
      }
    });
  }
  for (auto& t : racers) t.join();
  EXPECT_EQ(issued.load(), 2);
  EXPECT_EQ(limited.load(), 6);
}

}  // namespace
}  // namespace agentroot

namespace agentroot {
namespace {

TEST_F(VerifierFlowTest, SessionBoundTokens) {
  auto key = Provision();
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  ASSERT_EQ(outcome->result.status, attestation::EarStatus::kAffirming);
  const int64_t now = clock_->NowUnixSeconds();
  auto session = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
  auto binding = attestation::CreateSessionBinding(*key, kAgent, session->public_jwk(), now, 120);
  ASSERT_TRUE(binding.ok()) << binding.status().ToString();

  // Issued, bound to the session key, exp capped by the binding (120 < 300).
  auto token = SessionToken(outcome->ear, *binding, *session);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->expires_in, 120);
  auto parsed = common::ParseJwsCompact(token->access_token, common::JwsPayload::kJsonObject);
  ASSERT_TRUE(parsed.ok());
  const Json& claims = parsed->payload_json;
  EXPECT_EQ(claims["cnf"]["jkt"], session->public_jwk().Thumbprint());
  EXPECT_NE(claims["cnf"]["jkt"], key->public_jwk().Thumbprint());
  EXPECT_EQ(claims["agentroot.tpm_jkt"], key->public_jwk().Thumbprint());
  EXPECT_EQ(claims["agentroot.proof_mode"], "session");
  EXPECT_LE(claims["exp"].get<int64_t>(), now + 120);

  // A resource server accepts proofs by the session key, not by the TPM key.
  auto validator = Validator();
  const std::string url = "https://crm.example/v1/accounts";
  auto proof = [&](const common::Signer& k) {
    return std::vector<std::string>{*attestation::CreateDpopProof(k, "GET", url, clock_->NowUnixSeconds(), token->access_token)};
  };
  auto ok = validator->Validate("DPoP " + token->access_token, proof(*session), "GET", url, "crm.read");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto by_tpm = validator->Validate("DPoP " + token->access_token, proof(*key), "GET", url, "crm.read");
  ASSERT_FALSE(by_tpm.ok());
  EXPECT_EQ(attestation::OAuthErrorOf(by_tpm.status()), attestation::oauth_error::kInvalidDpopProof);

  // Without a binding, a proof by a software key is refused as before.
  ExpectTokenRefused(Token(outcome->ear, *session).status(), attestation::reason::kProofKeyMismatch);

  // A binding signed by another key (machine 1's TPM key, claiming to be the agent's).
  auto thief = machines_[1].keys->Generate("thief", hsm::KeyPolicy{});
  ASSERT_TRUE(thief.ok());
  auto foreign = attestation::CreateSessionBinding(**thief, kAgent, session->public_jwk(), now, 120);
  ASSERT_TRUE(foreign.ok());
  ExpectTokenRefused(SessionToken(outcome->ear, *foreign, *session).status(),
                     attestation::reason::kSessionBindingInvalid);
  // For another agent.
  auto other_agent = attestation::CreateSessionBinding(*key, "spiffe://example.org/agent/other", session->public_jwk(),
                                                       now, 120);
  ExpectTokenRefused(SessionToken(outcome->ear, *other_agent, *session).status(),
                     attestation::reason::kSessionBindingInvalid);
  // Expired (beyond the leeway, and just expired within it).
  auto expired = attestation::CreateSessionBinding(*key, kAgent, session->public_jwk(), now - 200, 100);
  ExpectTokenRefused(SessionToken(outcome->ear, *expired, *session).status(),
                     attestation::reason::kSessionBindingInvalid);
  auto just_expired = attestation::CreateSessionBinding(*key, kAgent, session->public_jwk(), now - 110, 100);
  ExpectTokenRefused(SessionToken(outcome->ear, *just_expired, *session).status(),
                     attestation::reason::kSessionBindingInvalid);
  // Whose jkt is not the proof key.
  auto second = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
  ExpectTokenRefused(SessionToken(outcome->ear, *binding, *second).status(),
                     attestation::reason::kSessionBindingNotProofKey);
  // Tampered (a flipped signature byte).
  std::string flipped = *binding;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  ExpectTokenRefused(SessionToken(outcome->ear, flipped, *session).status(),
                     attestation::reason::kSessionBindingInvalid);

  // Every refusal is audited with its reason code.
  auto exported = store_->ExportAudit(0, clock_->NowUnixSeconds() + 10);
  ASSERT_TRUE(exported.ok());
  for (std::string_view reason : {attestation::reason::kSessionBindingInvalid,
                                  attestation::reason::kSessionBindingNotProofKey}) {
    EXPECT_NE(exported->jsonl.find(std::string(reason)), std::string::npos) << reason;
  }
  EXPECT_NE(exported->jsonl.find("\"proof_mode\":\"session\""), std::string::npos);
}

}  // namespace
}  // namespace agentroot

namespace agentroot {
namespace {

TEST_F(VerifierFlowTest, ShadowAgentReports) {
  ASSERT_TRUE(Enroll(0).ok());
  ASSERT_TRUE(core_->ApproveHost("carol", machines_[0].host_id).ok());
  ASSERT_TRUE(Enroll(1).ok());
  ASSERT_TRUE(core_->ApproveHost("carol", machines_[1].host_id).ok());
  const std::string host = machines_[0].host_id;
  EXPECT_EQ(*core_->HostStatusOf(host), attestation::store::HostStatus::kApproved);
  EXPECT_EQ(core_->HostStatusOf("host-0000000000000000").status().code(), common::StatusCode::kNotFound);

  attestation::ShadowReport report{clock_->NowUnixSeconds(), 4242, 1001, 1001, "/usr/bin/curl", Hex('e')};
  std::vector<hsm::tpm::PcrBank> selection = {{hsm::tpm::kTpmAlgSha256, {0}}};
  // A quote by machine `quoter`'s AK over the report with `nonce`.
  auto quote = [&](int quoter, const std::string& nonce, const attestation::ShadowReport& r) {
    return *machines_[quoter].attestor->Quote(
        "ak", selection, attestation::ShadowReportQualifyingData(common::AsBytes(nonce), r));
  };
  auto challenge = [&] { return core_->Challenge(host, "report")->value; };

  // Good: recorded.
  std::string nonce = challenge();
  auto q = quote(0, nonce, report);
  ASSERT_TRUE(core_->ReportShadowAgent(host, nonce, report, q.tpms_attest, q.tpmt_signature).ok());
  // The nonce is consumed.
  EXPECT_FALSE(core_->ReportShadowAgent(host, nonce, report, q.tpms_attest, q.tpmt_signature).ok());

  // Wrong nonce: a fresh challenge, a quote over another one.
  std::string n2 = challenge();
  auto wrong = quote(0, "not-the-nonce", report);
  auto refused = core_->ReportShadowAgent(host, n2, report, wrong.tpms_attest, wrong.tpmt_signature);
  ExpectTokenRefused(refused, "evidence_invalid");
  // An unknown nonce, and one of another purpose.
  EXPECT_FALSE(core_->ReportShadowAgent(host, "made-up", report, q.tpms_attest, q.tpmt_signature).ok());
  std::string attest_nonce = core_->Challenge(host, "attest")->value;
  auto other_purpose = quote(0, attest_nonce, report);
  ExpectTokenRefused(core_->ReportShadowAgent(host, attest_nonce, report, other_purpose.tpms_attest,
                                              other_purpose.tpmt_signature),
                     "nonce_invalid");
  // Another host's AK.
  std::string n3 = challenge();
  auto foreign = quote(1, n3, report);
  ExpectTokenRefused(core_->ReportShadowAgent(host, n3, report, foreign.tpms_attest, foreign.tpmt_signature),
                     "evidence_invalid");
  // A tampered report (the quote covers the original).
  std::string n4 = challenge();
  auto honest = quote(0, n4, report);
  attestation::ShadowReport tampered = report;
  tampered.exe_path = "/opt/agents/crm-bot";
  ExpectTokenRefused(core_->ReportShadowAgent(host, n4, tampered, honest.tpms_attest, honest.tpmt_signature),
                     "evidence_invalid");
  // Host 1's nonce used for host 0.
  std::string n5 = core_->Challenge(machines_[1].host_id, "report")->value;
  auto cross = quote(0, n5, report);
  ExpectTokenRefused(core_->ReportShadowAgent(host, n5, report, cross.tpms_attest, cross.tpmt_signature),
                     "nonce_invalid");

  // A second good report, from host 1.
  attestation::ShadowReport second{clock_->NowUnixSeconds(), 7, 0, 0, "/usr/bin/python3", ""};
  std::string n6 = core_->Challenge(machines_[1].host_id, "report")->value;
  auto q6 = quote(1, n6, second);
  ASSERT_TRUE(core_->ReportShadowAgent(machines_[1].host_id, n6, second, q6.tpms_attest, q6.tpmt_signature).ok());

  // The inventory: the auditor and infra see both, newest first; an owner may not.
  auto listed = core_->ListShadowAgents("dave", 100);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 2u) << listed->dump();
  EXPECT_EQ((*listed)[0]["exe_path"], "/usr/bin/python3");
  EXPECT_EQ((*listed)[0]["host_id"], machines_[1].host_id);
  EXPECT_EQ((*listed)[1]["exe_path"], "/usr/bin/curl");
  EXPECT_EQ((*listed)[1]["exe_sha256"], Hex('e'));
  EXPECT_EQ((*listed)[1]["pid"], 4242);
  EXPECT_EQ((*listed)[1]["uid"], 1001);
  EXPECT_EQ((*listed)[1]["host_id"], host);
  auto bounded = core_->ListShadowAgents("carol", 1);
  ASSERT_TRUE(bounded.ok());
  ASSERT_EQ(bounded->size(), 1u);
  EXPECT_EQ((*bounded)[0]["exe_path"], "/usr/bin/python3");
  auto owner = core_->ListShadowAgents("alice", 100);
  EXPECT_EQ(owner.status().code(), common::StatusCode::kPermissionDenied);

  // The audit records: the shadow agents (deny, unregistered_agent) and the refusals.
  auto exported = store_->ExportAudit(0, clock_->NowUnixSeconds() + 10);
  ASSERT_TRUE(exported.ok());
  EXPECT_NE(exported->jsonl.find("\"agent.shadow\""), std::string::npos);
  EXPECT_NE(exported->jsonl.find("unregistered_agent"), std::string::npos);
  EXPECT_NE(exported->jsonl.find("\"agent.shadow.report\""), std::string::npos);
  EXPECT_NE(exported->jsonl.find("\"shadow_agents.list\""), std::string::npos);
}

// ---- Governance (issue 6): JIT elevation, owner lifecycle, trust anchors, inventory.

TEST_F(VerifierFlowTest, JitElevationIsDecidedBySomeoneElseExpiresByItselfAndIsAttributable) {
  auto key = Provision();
  auto log = std::vector<attestation::MeasurementEvent>{Event(1)};
  auto outcome = Attest(*key, log);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.read crm.export").status(), "scope_not_allowed");

  // Requests: only an owner; scopes the agent lacks; a bounded window; a reason.
  EXPECT_EQ(core_->RequestJit("bob", kAgent, {"crm.export"}, 600, "q3 report").status().code(),
            common::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->RequestJit("alice", kAgent, {"crm.read"}, 600, "x").status().code(),
            common::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->RequestJit("alice", kAgent, {"crm.export"}, 9 * 3600, "x").status().code(),
            common::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->RequestJit("alice", kAgent, {"crm.export"}, 600, "").status().code(),
            common::StatusCode::kInvalidArgument);
  auto grant = core_->RequestJit("alice", kAgent, {"crm.export"}, 600, "quarterly export for finance");
  ASSERT_TRUE(grant.ok()) << grant.status().ToString();
  EXPECT_EQ(core_->JitState(*grant), "pending");
  // Pending is not in force.
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.export").status(), "scope_not_allowed");

  // Not the requester, not an auditor; the reviewer may.
  EXPECT_EQ(core_->DecideJit("alice", grant->id, true, "").status().code(), common::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->DecideJit("dave", grant->id, true, "").status().code(), common::StatusCode::kPermissionDenied);
  auto approved = core_->DecideJit("bob", grant->id, true, "ok for today");
  ASSERT_TRUE(approved.ok()) << approved.status().ToString();
  EXPECT_EQ(core_->JitState(*approved), "active");
  EXPECT_EQ(approved->expires_at, clock_->NowUnixSeconds() + 600);
  EXPECT_EQ(core_->DecideJit("carol", grant->id, false, "").status().code(), common::StatusCode::kFailedPrecondition);

  // In force: the token carries the grant, expires with it, and is audited with it.
  clock_->Advance(std::chrono::seconds(500));
  outcome = Attest(*key, log, 0, /*extend=*/false);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  auto token = Token(outcome->ear, *key, "crm.read crm.export");
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->expires_in, 100);  // bounded by the grant, not the agent's 300 s
  auto claims = common::ParseJwsCompact(token->access_token, common::JwsPayload::kJsonObject);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->payload_json["agentroot.jit"], Json::array({grant->id}));
  auto audit = store_->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(audit.ok());
  EXPECT_NE(audit->jsonl.find("\"jit_grants\":[\"" + grant->id + "\"]"), std::string::npos);
  // A token within the agent's own scopes names no grant.
  auto plain = Token(outcome->ear, *key, "crm.read");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(common::ParseJwsCompact(plain->access_token, common::JwsPayload::kJsonObject)->payload_json.contains("agentroot.jit"));

  // Expired by itself: no operator action.
  clock_->Advance(std::chrono::seconds(101));
  EXPECT_EQ(core_->JitState(*store_->GetJitGrant(grant->id)), "expired");
  outcome = Attest(*key, log, 0, /*extend=*/false);
  ASSERT_TRUE(outcome.ok());
  ExpectTokenRefused(Token(outcome->ear, *key, "crm.export").status(), "scope_not_allowed");

  // Revoking a live grant revokes the agent's tokens too.
  auto second = core_->RequestJit("alice", kAgent, {"crm.export"}, 600, "again");
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(core_->DecideJit("carol", second->id, true, "").ok());
  auto elevated = Token(outcome->ear, *key, "crm.export");
  ASSERT_TRUE(elevated.ok()) << elevated.status().ToString();
  EXPECT_EQ(core_->RevokeJit("dave", second->id).status().code(), common::StatusCode::kPermissionDenied);
  auto revoked = core_->RevokeJit("alice", second->id);
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  EXPECT_EQ(core_->JitState(*revoked), "revoked");
  EXPECT_FALSE(core_->Introspect(elevated->access_token)["active"].get<bool>());
}

TEST_F(VerifierFlowTest, WideningAnAgentsAccessNeedsAnInfraOperatorWhoIsNotItsOwner) {
  Provision();
  attestation::AgentUpdate narrower;
  narrower.scopes = std::vector<std::string>{"crm.read"};
  ASSERT_TRUE(core_->UpdateAgent("alice", kAgent, narrower).ok());  // an owner may narrow
  std::vector<attestation::AgentUpdate> widenings(4);
  widenings[0].scopes = std::vector<std::string>{"crm.read", "crm.admin"};
  widenings[1].audiences = std::vector<std::string>{kAudience, "https://billing.example"};
  widenings[2].max_token_ttl = 3600;
  widenings[3].host_group = "other-hosts";
  for (std::size_t i = 0; i < widenings.size(); ++i) {
    auto refused = core_->UpdateAgent("alice", kAgent, widenings[i]);
    EXPECT_EQ(refused.status().code(), common::StatusCode::kPermissionDenied) << i;
    EXPECT_NE(refused.status().message().find("widening"), std::string::npos) << refused.status().ToString();
  }
  EXPECT_EQ(store_->GetAgent(kAgent)->allowed_scopes, std::vector<std::string>{"crm.read"});  // nothing written
  // Infra who owns the agent may not widen it either; infra who does not, may.
  attestation::AgentUpdate wider;
  wider.scopes = std::vector<std::string>{"crm.read", "crm.write"};
  attestation::AgentUpdate co_owned;
  co_owned.owners = std::vector<std::string>{"alice", "carol"};
  ASSERT_TRUE(core_->UpdateAgent("alice", kAgent, co_owned).ok());
  EXPECT_EQ(core_->UpdateAgent("carol", kAgent, wider).status().code(), common::StatusCode::kPermissionDenied);
  co_owned.owners = std::vector<std::string>{"alice"};
  ASSERT_TRUE(core_->UpdateAgent("carol", kAgent, co_owned).ok());
  auto widened = core_->UpdateAgent("carol", kAgent, wider);
  ASSERT_TRUE(widened.ok()) << widened.status().ToString();
  EXPECT_EQ(widened->allowed_scopes, (std::vector<std::string>{"crm.read", "crm.write"}));
  auto audit = store_->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(audit.ok());
  EXPECT_NE(audit->jsonl.find("\"widens_access\""), std::string::npos);
}

TEST_F(VerifierFlowTest, DisablingTheLastActiveOwnerSuspendsTheAgent) {
  auto key = Provision();
  attestation::store::Operator erin;
  erin.id = "erin";
  erin.display_name = "Erin";
  erin.roles = {attestation::store::Role::kOwner};
  ASSERT_TRUE(store_->CreateOperator(erin, nullptr).ok());
  attestation::AgentUpdate two_owners;
  two_owners.owners = std::vector<std::string>{"alice", "erin"};
  ASSERT_TRUE(core_->UpdateAgent("alice", kAgent, two_owners).ok());
  auto outcome = Attest(*key, {Event(1)});
  ASSERT_TRUE(outcome.ok());
  auto token = Token(outcome->ear, *key);
  ASSERT_TRUE(token.ok());

  // Only infra disables people, and not themselves.
  EXPECT_EQ(core_->DisableOperator("alice", "erin").status().code(), common::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->DisableOperator("carol", "carol").status().code(), common::StatusCode::kFailedPrecondition);
  // Alice leaves: Erin still owns the agent.
  auto first = core_->DisableOperator("carol", "alice");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->empty());
  EXPECT_EQ(store_->GetAgent(kAgent)->status, attestation::store::AgentStatus::kActive);
  EXPECT_TRUE(core_->Introspect(token->access_token)["active"].get<bool>());
  // Erin leaves too: the agent is suspended at once, its tokens revoked.
  auto second = core_->DisableOperator("carol", "erin");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, std::vector<std::string>{kAgent});
  EXPECT_EQ(store_->GetAgent(kAgent)->status, attestation::store::AgentStatus::kSuspended);
  EXPECT_FALSE(core_->Introspect(token->access_token)["active"].get<bool>());
  // It cannot be resumed without an active owner; it can once one returns.
  EXPECT_EQ(core_->SetAgentStatus("carol", kAgent, attestation::store::AgentStatus::kActive, "").status().code(),
            common::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(core_->EnableOperator("carol", "erin").ok());
  EXPECT_EQ(store_->GetAgent(kAgent)->status, attestation::store::AgentStatus::kSuspended);  // stays until resumed
  ASSERT_TRUE(core_->SetAgentStatus("erin", kAgent, attestation::store::AgentStatus::kActive, "erin is back").ok());
  outcome = Attest(*key, {Event(1)}, 0, /*extend=*/false);
  ASSERT_TRUE(outcome.ok());
  EXPECT_TRUE(Token(outcome->ear, *key).ok());
  // Retired is final.
  ASSERT_TRUE(core_->SetAgentStatus("erin", kAgent, attestation::store::AgentStatus::kRetired, "replaced").ok());
  EXPECT_EQ(core_->SetAgentStatus("carol", kAgent, attestation::store::AgentStatus::kActive, "").status().code(),
            common::StatusCode::kFailedPrecondition);
}

TEST_F(VerifierFlowTest, TrustAnchorsFromTheRegistry) {
  // A verifier that trusts no manufacturer CA from its configuration.
  attestation::VerifierConfig config = core_->config();
  config.manufacturer_roots_pem.clear();
  core_ = std::move(VerifierCore::Create(config, store_, issuer_, {}, *clock_)).value();
  auto refused = Enroll(0);
  ExpectTokenRefused(refused.status(), "ek_untrusted");

  // Pin machine 0's EK by hash (infra only).
  Bytes ek = *machines_[0].attestor->ReadEkPublic(EkKind::kRsa2048);
  attestation::store::TrustAnchor pin;
  pin.kind = attestation::store::TrustAnchorKind::kEkPin;
  pin.value = common::HexEncode(common::Sha256(ek));
  EXPECT_EQ(core_->AddTrustAnchor("alice", pin).status().code(), common::StatusCode::kPermissionDenied);
  auto pinned = core_->AddTrustAnchor("carol", pin);
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  auto enrolled = Enroll(0);
  ASSERT_TRUE(enrolled.ok()) << enrolled.status().ToString();
  EXPECT_EQ(enrolled->status, attestation::store::HostStatus::kPending);
  EXPECT_TRUE(store_->GetHost(machines_[0].host_id)->ek_certificate.empty());  // trusted by its pin

  // The manufacturer CA as an anchor, and an auto-approve rule for a group.
  attestation::store::TrustAnchor ca;
  ca.kind = attestation::store::TrustAnchorKind::kManufacturerCa;
  ca.value = ReadFile(fleet_->info().manufacturer_ca);
  ASSERT_TRUE(core_->AddTrustAnchor("carol", ca).ok());
  attestation::store::TrustAnchor rule;
  rule.kind = attestation::store::TrustAnchorKind::kAutoApprove;
  rule.host_group = "lab";
  ASSERT_TRUE(core_->AddTrustAnchor("carol", rule).ok());
  EXPECT_EQ(core_->AddTrustAnchor("carol", rule).status().code(), common::StatusCode::kAlreadyExists);
  auto auto_approved = Enroll(1, "lab");
  ASSERT_TRUE(auto_approved.ok()) << auto_approved.status().ToString();
  EXPECT_EQ(auto_approved->status, attestation::store::HostStatus::kApproved);
  auto anchors = core_->ListTrustAnchors("dave");
  ASSERT_TRUE(anchors.ok());
  EXPECT_EQ(anchors->size(), 3u);

  // Not a certificate; a leaf (an EK certificate) is not a CA.
  attestation::store::TrustAnchor bad;
  bad.kind = attestation::store::TrustAnchorKind::kManufacturerCa;
  bad.value = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  EXPECT_EQ(core_->AddTrustAnchor("carol", bad).status().code(), common::StatusCode::kInvalidArgument);
  auto leaf_der = machines_[1].attestor->ReadEkCertificate(EkKind::kRsa2048);
  ASSERT_TRUE(leaf_der.ok());
  auto leaf_cert = attestation::ParseCertificate(*leaf_der);
  ASSERT_TRUE(leaf_cert.ok());
  common::BioPtr pem(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_X509(pem.get(), leaf_cert->get()), 1);
  char* pem_data = nullptr;
  long pem_len = BIO_get_mem_data(pem.get(), &pem_data);
  bad.value.assign(pem_data, static_cast<std::size_t>(pem_len));
  auto leaf = core_->AddTrustAnchor("carol", bad);
  EXPECT_EQ(leaf.status().code(), common::StatusCode::kInvalidArgument);
  EXPECT_NE(leaf.status().message().find("not a CA"), std::string::npos) << leaf.status().ToString();
  // Removing the CA: new EK certificates are untrusted again (the pin still counts).
  for (const auto& a : *anchors) {
    if (a.anchor.kind == attestation::store::TrustAnchorKind::kManufacturerCa) {
      EXPECT_TRUE(core_->RemoveTrustAnchor("carol", a.anchor.id).ok());
    }
  }
  EXPECT_EQ(core_->RemoveTrustAnchor("carol", "ca-0000").code(), common::StatusCode::kNotFound);
  // Host revocation (infra) revokes it for good.
  EXPECT_EQ(core_->RevokeHost("alice", machines_[1].host_id).code(), common::StatusCode::kPermissionDenied);
  ASSERT_TRUE(core_->RevokeHost("carol", machines_[1].host_id).ok());
  EXPECT_EQ(*core_->HostStatusOf(machines_[1].host_id), attestation::store::HostStatus::kRevoked);
}

TEST_F(VerifierFlowTest, InventoryFindingsOnASeededRegistry) {
  namespace st = attestation::store;
  const int64_t now = clock_->NowUnixSeconds();
  constexpr int64_t kDay = 86400;
  st::Operator erin;
  erin.id = "erin";
  erin.display_name = "Erin";
  erin.roles = {st::Role::kOwner};
  ASSERT_TRUE(store_->CreateOperator(erin, nullptr).ok());
  ASSERT_TRUE(store_->SetOperatorStatus("erin", st::OperatorStatus::kDisabled, nullptr).ok());
  ASSERT_TRUE(Enroll(0).ok());
  ASSERT_TRUE(core_->ApproveHost("carol", machines_[0].host_id).ok());
  // Seeded 100 days ago (the store stamps created_at from the clock).
  clock_->Advance(std::chrono::seconds(-100 * kDay));
  auto agent = [&](const std::string& name, std::vector<std::string> owners, int64_t expires_at, bool reviewed,
                   std::vector<std::string> scopes = {"crm.read"}) {
    st::Agent a;
    a.id = "spiffe://example.org/agent/" + name;
    a.name = name;
    a.host_group = "crm-hosts";
    a.allowed_scopes = std::move(scopes);
    a.allowed_audiences = {kAudience};
    a.expires_at = expires_at;
    a.owners = std::move(owners);
    EXPECT_TRUE(store_->CreateAgent(a, nullptr).ok()) << name;
    auto version = store_->AddManifest(a.id, Manifest(), nullptr);
    if (reviewed) {
      EXPECT_TRUE(store_->ReviewManifest(a.id, *version, st::ManifestStatus::kApproved, "bob", "", nullptr).ok());
    }
    return a.id;
  };
  const std::string healthy = agent("healthy", {"alice", "carol"}, now + 365 * kDay, true, {"crm.read"});
  const std::string orphan = agent("orphan", {"erin"}, now + 365 * kDay, true);
  const std::string unreviewed = agent("unreviewed", {"alice", "carol"}, now + 365 * kDay, false);
  const std::string expiring = agent("expiring", {"alice", "carol"}, now + 10 * kDay, true);
  const std::string broad = agent("broad", {"alice", "carol"}, now + 365 * kDay, true, {"crm.read", "crm.write", "crm.admin"});
  const std::string retired = agent("retired", {"erin"}, now + 365 * kDay, false);
  ASSERT_TRUE(store_->SetAgentStatus(retired, st::AgentStatus::kRetired, nullptr).ok());
  clock_->Advance(std::chrono::seconds(100 * kDay));
  // Activity: tokens 2 days ago (healthy: crm.read; broad: crm.read only).
  clock_->Advance(std::chrono::seconds(-2 * kDay));
  int n = 0;
  for (const std::string& id : {healthy, broad, orphan, unreviewed, expiring}) {
    st::TokenRecord t;
    t.jti = "jti-" + std::to_string(++n);
    t.request_id = "req-" + std::to_string(n);
    t.agent_id = id;
    t.host_id = machines_[0].host_id;
    t.cnf_jkt = "jkt";
    t.scope = "crm.read";
    t.audience = kAudience;
    t.issued_at = clock_->NowUnixSeconds();
    t.expires_at = t.issued_at + 300;
    st::AuditRecord issued;
    issued.actor = id;
    issued.action = "token.issue";
    ASSERT_TRUE(store_->IssueToken(t, issued).ok());
    st::AuditRecord attested;
    attested.actor = machines_[0].host_id;
    attested.action = "attest";
    attested.subject = id;
    attested.decision = st::AuditDecision::kAllow;
    ASSERT_TRUE(store_->AppendAudit(attested).ok());
  }
  clock_->Advance(std::chrono::seconds(2 * kDay));
  // A shadow agent, reported twice.
  for (int i = 0; i < 2; ++i) {
    st::AuditRecord shadow;
    shadow.actor = machines_[0].host_id;
    shadow.action = "agent.shadow";
    shadow.subject = "/usr/bin/curl";
    shadow.decision = st::AuditDecision::kDeny;
    shadow.details = {{"exe_path", "/usr/bin/curl"}, {"exe_sha256", Hex('e')}, {"uid", 1001}};
    ASSERT_TRUE(store_->AppendAudit(shadow).ok());
  }
  // The "unused" agent: never got a token, registered 100 days ago: that is
  // "orphan"... no: orphan got one. Add one that never did.
  clock_->Advance(std::chrono::seconds(-100 * kDay));
  const std::string idle = agent("idle", {"alice", "carol"}, now + 365 * kDay, true);
  clock_->Advance(std::chrono::seconds(100 * kDay));
  // Brand new and never used: not "unused" yet.
  const std::string fresh = agent("fresh", {"alice", "carol"}, now + 365 * kDay, true);

  auto inventory = core_->Inventory("dave", attestation::InventoryOptions{30, 30, 30});
  ASSERT_TRUE(inventory.ok()) << inventory.status().ToString();
  std::map<std::string, std::set<std::string>> found;
  for (const Json& a : (*inventory)["agents"]) {
    found[a["name"]] = a["findings"].get<std::set<std::string>>();
  }
  using Set = std::set<std::string>;
  EXPECT_EQ(found["healthy"], Set{});
  EXPECT_EQ(found["orphan"], Set{"no_active_owner"});
  EXPECT_EQ(found["unreviewed"], Set{"never_reviewed"});
  EXPECT_EQ(found["expiring"], Set{"expiring"});
  EXPECT_EQ(found["broad"], Set{"over_broad_scopes"});
  EXPECT_EQ(found["retired"], Set{});  // retired agents raise nothing
  EXPECT_EQ(found["idle"], Set{"unused"});
  EXPECT_EQ(found["fresh"], Set{});
  // Details: the unused scopes named; activity times; the shadow agent once per host and executable.
  bool broad_detail = false;
  for (const Json& f : (*inventory)["findings"]) {
    if (f["code"] == "over_broad_scopes") broad_detail = f["detail"].get<std::string>().find("crm.write crm.admin") != std::string::npos;
  }
  EXPECT_TRUE(broad_detail) << (*inventory)["findings"].dump();
  for (const Json& a : (*inventory)["agents"]) {
    if (a["name"] == "healthy") {
      EXPECT_EQ(a["last_token_at"], now - 2 * kDay);
      EXPECT_EQ(a["last_attested_at"], now - 2 * kDay);
      EXPECT_EQ(a["review"]["state"], "approved");
      EXPECT_EQ(a["scopes_used"], Json::array({"crm.read"}));
    }
  }
  ASSERT_EQ((*inventory)["shadow_agents"].size(), 1u);
  EXPECT_EQ((*inventory)["shadow_agents"][0]["reports"], 2);
  EXPECT_EQ((*inventory)["shadow_agents"][0]["exe_path"], "/usr/bin/curl");
  // A single active owner is flagged.
  attestation::AgentUpdate one;
  one.owners = std::vector<std::string>{"alice"};
  ASSERT_TRUE(core_->UpdateAgent("alice", healthy, one).ok());
  auto again = core_->Inventory("alice", attestation::InventoryOptions{});
  ASSERT_TRUE(again.ok());
  for (const Json& a : (*again)["agents"]) {
    if (a["name"] == "healthy") {
      EXPECT_EQ(a["findings"].get<Set>(), Set{"single_owner"});
    }
  }
}

}  // namespace
}  // namespace agentroot
