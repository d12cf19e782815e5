// Two verifier replicas on one PostgreSQL database behave as one (issue 4):
// every step of the flow alternates between them, and each single-use thing
// (activation, challenge, DPoP proof) is accepted by exactly one of them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/attestation/verifier.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "testing/postgres_server.h"

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using attestation::VerifierCore;
using common::Bytes;

constexpr char kAgent[] = "spiffe://example.org/agent/crm-bot";
constexpr char kAudience[] = "https://crm.example";
constexpr char kTokenEndpoint[] = "https://verifier.test/oauth/token";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TEST(VerifierReplicasTest, TwoReplicasOnOnePostgresBehaveAsOne) {
  auto pg = attestation::store::testing::ScopedPostgresServer::Start();
  ASSERT_TRUE(pg.ok()) << pg.status().ToString();
  auto database = (*pg)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status().ToString();
  auto fleet = simulators::testing::ScopedFleet::Create(1);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const common::Clock& clock = common::Clock::System();

  // Two replicas: separate store connections, one database, one issuer key.
  auto issuer = std::shared_ptr<common::OpenSslSigner>(
      std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value());
  attestation::VerifierConfig config;
  config.issuer = "https://verifier.test";
  config.token_endpoint = kTokenEndpoint;
  config.trust_domain = "example.org";
  config.manufacturer_roots_pem = ReadFile((*fleet)->info().manufacturer_ca);
  std::shared_ptr<attestation::store::Store> stores[2];
  std::unique_ptr<VerifierCore> replicas[2];
  for (int i = 0; i < 2; ++i) {
    auto opened = attestation::store::Store::Open(*database, clock);  // CreateDatabase returns its URI
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    stores[i] = std::shared_ptr<attestation::store::Store>(std::move(opened).value());
    auto core = VerifierCore::Create(config, stores[i], issuer, {}, clock);
    ASSERT_TRUE(core.ok()) << core.status().ToString();
    replicas[i] = std::move(core).value();
  }
  VerifierCore& a = *replicas[0];
  VerifierCore& b = *replicas[1];
  for (auto [id, role] : {std::pair{"alice", attestation::store::Role::kOwner},
                          std::pair{"bob", attestation::store::Role::kReviewer},
                          std::pair{"carol", attestation::store::Role::kInfra}}) {
    attestation::store::Operator op;
    op.id = id;
    op.display_name = id;
    op.roles = {role};
    op.client_cert_fingerprint = std::string("fp-") + id;
    ASSERT_TRUE(stores[0]->CreateOperator(op, nullptr).ok());
  }

  hsm::tpm::TpmDeviceOptions options;
  options.tcti = (*fleet)->info().machines[0].tcti;
  auto opened_device = hsm::tpm::TpmDevice::Open(std::move(options));
  ASSERT_TRUE(opened_device.ok()) << opened_device.status().ToString();
  auto device = std::move(opened_device).value();
  fs::path state = (*fleet)->info().dir / "m0";
  auto made_attestor = hsm::tpm::TpmAttestor::Create(device, state);
  ASSERT_TRUE(made_attestor.ok()) << made_attestor.status().ToString();
  auto attestor = std::move(made_attestor).value();
  auto made_keys = hsm::tpm::TpmKeyManager::Create(device, state);
  ASSERT_TRUE(made_keys.ok()) << made_keys.status().ToString();
  auto keys = std::move(made_keys).value();
  auto ak = attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok());

  // Enrollment: challenge from A, activation at B, a second activation at A refused.
  attestation::EnrollRequest enroll;
  enroll.ek_public = *attestor->ReadEkPublic(hsm::tpm::EkKind::kRsa2048);
  enroll.ek_certificate = *attestor->ReadEkCertificate(hsm::tpm::EkKind::kRsa2048);
  enroll.ek_intermediates_pem = ReadFile((*fleet)->info().manufacturer_intermediate);
  enroll.ak_public = ak->tpm2b_public;
  enroll.host_group = "crm-hosts";
  auto challenge = a.Enroll(enroll);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto secret = attestor->ActivateCredential("ak", hsm::tpm::EkKind::kRsa2048, challenge->credential_blob,
                                             challenge->encrypted_secret);
  ASSERT_TRUE(secret.ok());
  ASSERT_TRUE(b.Activate(challenge->host_id, challenge->activation_id, secret->Reveal()).ok());
  EXPECT_FALSE(a.Activate(challenge->host_id, challenge->activation_id, secret->Reveal()).ok());
  const std::string host = challenge->host_id;

  // Registry changes made through one replica are seen by the other.
  ASSERT_TRUE(a.ApproveHost("carol", host).ok());
  attestation::store::Agent agent;
  agent.id = kAgent;
  agent.name = "crm-bot";
  agent.host_group = "crm-hosts";
  agent.allowed_scopes = {"crm.read"};
  agent.allowed_audiences = {kAudience};
  agent.expires_at = clock.NowUnixSeconds() + 86400;
  agent.owners = {"alice"};
  ASSERT_TRUE(b.CreateAgent("alice", agent).ok());
  common::Json manifest = {{"exe_sha256", std::string(64, 'a')}, {"files", common::Json::object()}};
  auto version = a.AddManifest("alice", kAgent, manifest);
  ASSERT_TRUE(version.ok());
  ASSERT_TRUE(b.ReviewManifest("bob", kAgent, *version, true, "ok").ok());

  // Key certification: challenge from A, evidence to B.
  auto key = keys->Generate("crm-bot", hsm::KeyPolicy{});
  ASSERT_TRUE(key.ok());
  auto certify_nonce = a.Challenge(host, "certify");
  ASSERT_TRUE(certify_nonce.ok());
  auto certified = attestor->Certify("ak", **key, attestation::CertifyQualifyingData(common::AsBytes(certify_nonce->value)));
  ASSERT_TRUE(certified.ok());
  ASSERT_TRUE(b.RegisterAgentKey(host, kAgent, certify_nonce->value, (*key)->native_public(), certified->tpms_attest,
                                 certified->tpmt_signature).ok());

  // Attestation: challenge from B, evidence to A; the same evidence replayed at B is refused.
  attestation::MeasurementEvent event;
  event.sequence = 1;
  event.agent_id = kAgent;
  event.exe_path = "/opt/agents/crm-bot";
  event.exe_sha256_hex = std::string(64, 'a');
  ASSERT_TRUE(attestor->PcrExtend(15, attestation::EventDigest(event)).ok());
  auto nonce = b.Challenge(host, "attest");
  ASSERT_TRUE(nonce.ok());
  auto key_name = attestation::TpmPublic::Parse((*key)->native_public())->name();
  std::vector<hsm::tpm::PcrBank> selection = {{hsm::tpm::kTpmAlgSha256, {0, 15}}};
  auto quote = attestor->Quote("ak", selection,
                               attestation::QualifyingData(common::AsBytes(nonce->value), key_name, attestation::EventDigest(event)));
  ASSERT_TRUE(quote.ok());
  auto values = attestor->PcrRead(selection);
  ASSERT_TRUE(values.ok());
  attestation::AttestRequest request;
  request.host_id = host;
  request.agent_id = kAgent;
  request.nonce = nonce->value;
  request.agent_key_public = (*key)->native_public();
  request.quote_attest = quote->tpms_attest;
  request.quote_signature = quote->tpmt_signature;
  for (const auto& [bank_pcr, value] : *values) request.pcr_values[bank_pcr.second] = value;
  request.measurement_log = attestation::SerializeLog({event});
  auto outcome = a.Attest(request);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  ASSERT_EQ(outcome->result.status, attestation::EarStatus::kAffirming);
  EXPECT_FALSE(b.Attest(request).ok());

  // Tokens: one proof, one token, whichever replica sees it first.
  attestation::TokenExchange exchange;
  exchange.subject_token = outcome->ear;
  exchange.dpop_proof = *attestation::CreateDpopProof(**key, "POST", kTokenEndpoint, clock.NowUnixSeconds());
  exchange.scope = "crm.read";
  exchange.audience = kAudience;
  auto token = a.Token(exchange);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  auto replayed = b.Token(exchange);
  ASSERT_FALSE(replayed.ok());
  EXPECT_NE(replayed.status().message().find("replayed"), std::string::npos);

  // Either replica vouches for the other's token, and a revocation at one
  // is seen at once by the other.
  EXPECT_EQ(a.Jwks(), b.Jwks());
  EXPECT_TRUE(b.Introspect(token->access_token)["active"].get<bool>());
  ASSERT_TRUE(b.Revoke(token->access_token, "test").ok());
  EXPECT_FALSE(a.Introspect(token->access_token)["active"].get<bool>());

  // One audit chain, not two.
  auto exported = stores[1]->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(exported.ok());
  auto report = attestation::store::VerifyAuditChain(exported->jsonl, exported->anchor);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_GE(report.records_verified, 8);
}

}  // namespace
}  // namespace agentroot
