// The verifier over real HTTPS on loopback: the JSON APIs, the OAuth token
// endpoint with a DPoP header, operators authenticated by client
// certificates, problem details for bad input, and the OpenAPI document
// matching the routes.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/verifier_service.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "https_flow.h"

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using common::Json;

constexpr char kAgentName[] = "crm-bot";
constexpr char kAgent[] = "spiffe://example.org/agent/crm-bot";
constexpr uint32_t kPcr = 15;

class VerifierHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_ = std::move(simulators::testing::ScopedFleet::Create(1)).value();
    dir_ = fleet_->info().dir / "https";
    fs::create_directories(dir_);
    pki_ = std::move(http::testing::TestPki::Create("agentroot test CA")).value();

    http::ServerOptions options;
    http::TcpListenOptions tcp = std::move(pki_->LoopbackListener()).value();
    tcp.tls.client_auth = http::ClientAuth::kOptional;
    tcp.tls.client_ca_pem = pki_->ca_certificate_pem();
    options.tcp = std::move(tcp);
    options.worker_threads = 2;
    server_ = std::move(http::HttpServer::Create(std::move(options))).value();

    store_ = std::shared_ptr<attestation::store::Store>(
        std::move(attestation::store::Store::Open("sqlite:" + (dir_ / "v.db").string(), common::Clock::System())).value());
    auto issuer = std::shared_ptr<common::OpenSslSigner>(
        std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value());
    // The token endpoint URL is only known once the port is: bind first.
    service_config_.trust_domain = "example.org";
    service_config_.manufacturer_roots_pem = e2e::ReadTextFile(fleet_->info().manufacturer_ca);
    service_config_.auto_approve_groups = {"crm-hosts"};
    service_config_.measurement_pcr = kPcr;
    issuer_ = issuer;
  }

  void StartService() {
    // Register needs the core; the core needs the URL; the port comes from
    // Start. Routes are installed on a server that is not started yet, so
    // use a deferred core pointer.
    auto deferred = std::make_shared<std::shared_ptr<attestation::VerifierCore>>();
    service_config_.issuer = "https://127.0.0.1";
    service_config_.token_endpoint = "https://127.0.0.1/oauth/token";
    core_ = std::shared_ptr<attestation::VerifierCore>(std::move(
        attestation::VerifierCore::Create(service_config_, store_, issuer_, {}, common::Clock::System())).value());
    service_ = std::make_unique<attestation::VerifierService>(core_);
    ASSERT_TRUE(service_->Register(*server_).ok());
    ASSERT_TRUE(server_->Start().ok());
    base_ = "https://127.0.0.1:" + std::to_string(server_->port());
  }

  std::unique_ptr<http::HttpClient> Client(const std::string& operator_name = "") {
    http::ClientOptions options;
    options.base_url = base_;
    options.ca_pem = pki_->ca_certificate_pem();
    if (!operator_name.empty()) {
      auto cred = std::move(pki_->IssueClient(operator_name)).value();
      options.client_certificate_chain_pem = cred.certificate_pem;
      options.client_private_key_pem = std::move(cred.private_key_pem);
      fingerprints_[operator_name] = common::HexEncode(common::Sha256(cred.certificate_der));
    }
    return std::move(http::HttpClient::Create(std::move(options))).value();
  }

  void AddOperator(const std::string& id, attestation::store::Role role) {
    attestation::store::Operator op;
    op.id = id;
    op.display_name = id;
    op.roles = {role};
    op.client_cert_fingerprint = fingerprints_.at(id);
    ASSERT_TRUE(store_->CreateOperator(op, nullptr).ok());
  }

  static Json Parse(const http::Response& r) { return e2e::ParseBody(r); }

  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
  fs::path dir_;
  std::unique_ptr<http::testing::TestPki> pki_;
  std::unique_ptr<http::HttpServer> server_;
  std::shared_ptr<attestation::store::Store> store_;
  std::shared_ptr<common::OpenSslSigner> issuer_;
  attestation::VerifierConfig service_config_;
  std::shared_ptr<attestation::VerifierCore> core_;
  std::unique_ptr<attestation::VerifierService> service_;
  std::string base_;
  std::map<std::string, std::string> fingerprints_;
};

TEST_F(VerifierHttpsTest, FullFlowOverHttps) {
  StartService();
  auto alice = Client("alice");
  auto bob = Client("bob");
  auto eve = Client("eve");  // a certificate from the right CA, but no operator record
  AddOperator("alice", attestation::store::Role::kOwner);
  AddOperator("bob", attestation::store::Role::kReviewer);
  auto anonymous = Client();

  // Metadata and keys.
  auto metadata = anonymous->Get("/.well-known/oauth-authorization-server");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(Parse(*metadata)["token_endpoint"], "https://127.0.0.1/oauth/token");
  auto jwks = anonymous->Get("/.well-known/jwks.json");
  ASSERT_TRUE(jwks.ok());
  EXPECT_EQ(Parse(*jwks)["keys"][0]["kid"], "issuer-1");

  // Enrollment over HTTPS with the machine's TPM.
  auto machine = e2e::TpmMachine::Open(fleet_->info().machines[0].tcti, dir_ / "m0");
  ASSERT_TRUE(machine.ok()) << machine.status().ToString();
  auto& attestor = machine->attestor;
  auto& keys = machine->keys;
  auto enrolled = e2e::EnrollHost(*anonymous, *attestor, fleet_->info(), "crm-hosts");
  ASSERT_TRUE(enrolled.ok()) << enrolled.status().ToString();
  ASSERT_EQ(enrolled->challenge.status, 200) << enrolled->challenge.body;
  ASSERT_EQ(enrolled->activation.status, 200) << enrolled->activation.body;
  EXPECT_EQ(Parse(enrolled->activation)["status"], "approved");  // auto-approve rule for crm-hosts
  const std::string host = enrolled->host_id;

  // Governance with client certificates.
  Json agent = e2e::AgentRegistration(kAgentName, "crm-hosts", "crm.read", "https://crm.example", "alice");
  EXPECT_EQ(anonymous->Post("/v1/agents", agent.dump())->status, 401);  // no certificate
  EXPECT_EQ(eve->Post("/v1/agents", agent.dump())->status, 401);        // not an operator
  EXPECT_EQ(bob->Post("/v1/agents", agent.dump())->status, 403);        // reviewer, not owner
  ASSERT_EQ(alice->Post("/v1/agents", agent.dump())->status, 201);
  auto added = e2e::AddManifest(*alice, kAgentName, std::string(64, 'a'));
  ASSERT_EQ(added->status, 201) << added->body;
  auto self_review = e2e::ReviewManifest(*alice, kAgentName, 1, true);
  EXPECT_EQ(self_review->status, 403);
  EXPECT_NE(self_review->body.find("urn:agentroot:problem:forbidden"), std::string::npos);
  ASSERT_EQ(e2e::ReviewManifest(*bob, kAgentName, 1, true)->status, 200);

  // Key certification, measurement, quote, attest.
  auto key = *keys->Generate("crm-bot", hsm::KeyPolicy{});
  auto registered = e2e::RegisterAgentKey(*anonymous, *attestor, host, kAgent, *key);
  ASSERT_TRUE(registered.ok()) << registered.status().ToString();
  ASSERT_EQ(registered->status, 201) << registered->body;
  const attestation::MeasurementEvent event = e2e::AgentEvent(kAgent, std::string(64, 'a'));
  ASSERT_TRUE(attestor->PcrExtend(kPcr, attestation::EventDigest(event)).ok());
  auto attest_call = e2e::PrepareAttest(*anonymous, *attestor, host, kAgent, *key, event, kPcr);
  ASSERT_TRUE(attest_call.ok()) << attest_call.status().ToString();
  auto attested = anonymous->Post("/v1/attest", attest_call->body);
  ASSERT_TRUE(attested.ok());
  ASSERT_EQ(attested->status, 200) << attested->body;
  ASSERT_EQ(Parse(*attested)["status"], "affirming") << attested->body;
  std::string ear = Parse(*attested)["ear"];

  // The token endpoint: form body + DPoP header.
  auto token_request = [&](const common::Signer& proof_key) {
    return anonymous->Send(e2e::TokenRequest(*e2e::TokenProof(proof_key, "https://127.0.0.1/oauth/token"), ear,
                                             "crm.read", "https://crm.example"));
  };
  auto other = *keys->Generate("other", hsm::KeyPolicy{});
  auto refused = token_request(*other);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(Parse(*refused)["error"], "invalid_dpop_proof") << refused->body;
  auto token = token_request(*key);
  ASSERT_TRUE(token.ok());
  ASSERT_EQ(token->status, 200) << token->body;
  Json t = Parse(*token);
  EXPECT_EQ(t["token_type"], "DPoP");
  EXPECT_EQ(t["expires_in"], 300);
  auto introspected = anonymous->Post("/oauth/introspect", "token=" + t["access_token"].get<std::string>(),
                                      "application/x-www-form-urlencoded");
  EXPECT_TRUE(Parse(*introspected)["active"].get<bool>());
  ASSERT_EQ(anonymous->Post("/oauth/revoke", "token=" + t["access_token"].get<std::string>(),
                            "application/x-www-form-urlencoded")->status, 200);
  introspected = anonymous->Post("/oauth/introspect", "token=" + t["access_token"].get<std::string>(),
                                 "application/x-www-form-urlencoded");
  EXPECT_FALSE(Parse(*introspected)["active"].get<bool>());
  // Operator revocation: a reviewer may not; the owner revokes her agent's tokens.
  auto second = token_request(*key);
  ASSERT_EQ(second->status, 200) << second->body;
  std::string second_token = Parse(*second)["access_token"];
  EXPECT_EQ(bob->Post("/v1/revocations", Json{{"agent_id", kAgent}}.dump())->status, 403);
  EXPECT_EQ(alice->Post("/v1/revocations", R"({"jti":"a","host_id":"b"})")->status, 400);
  auto revoked = alice->Post("/v1/revocations", Json{{"agent_id", kAgent}}.dump());
  ASSERT_EQ(revoked->status, 200) << revoked->body;
  EXPECT_GE(Parse(*revoked)["revoked"].get<int>(), 1);
  EXPECT_FALSE(Parse(*anonymous->Post("/oauth/introspect", "token=" + second_token,
                                      "application/x-www-form-urlencoded"))["active"].get<bool>());

  // Only an auditor reads the audit log, and the refusal is itself audited.
  EXPECT_EQ(alice->Get("/v1/audit")->status, 403);
  auto exported = store_->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(exported.ok());
  EXPECT_NE(exported->jsonl.find("\"audit.export\""), std::string::npos);
}

TEST_F(VerifierHttpsTest, BadInputGetsProblemDetails) {
  StartService();
  auto client = Client();
  auto bad_json = client->Post("/v1/enroll", "{not json");
  ASSERT_TRUE(bad_json.ok());
  EXPECT_EQ(bad_json->status, 400);
  Json problem = Parse(*bad_json);
  EXPECT_EQ(problem["type"], "urn:agentroot:problem:invalid_input");
  EXPECT_EQ(problem["status"], 400);
  auto missing = client->Post("/v1/enroll", R"({"ek_public":"AAAA"})");
  EXPECT_EQ(missing->status, 400);
  auto not_b64 = client->Post("/v1/enroll", R"({"ek_certificate":"a=","ek_public":"A","ak_public":"A","host_group":"g"})");
  EXPECT_EQ(not_b64->status, 400);
  auto unknown_host = client->Post("/v1/hosts/host-nope/challenges", R"({"purpose":"attest"})");
  EXPECT_EQ(unknown_host->status, 404);
  auto bad_grant = client->Post("/oauth/token", "grant_type=password&username=x", "application/x-www-form-urlencoded");
  EXPECT_EQ(bad_grant->status, 400);
  EXPECT_EQ(Parse(*bad_grant)["error"], "unsupported_grant_type");
  auto dup = client->Post("/oauth/token", "grant_type=a&grant_type=b", "application/x-www-form-urlencoded");
  EXPECT_EQ(Parse(*dup)["error"], "invalid_request");
  auto no_dpop = client->Post("/oauth/token",
                              "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type="
                              "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&subject_token=x",
                              "application/x-www-form-urlencoded");
  EXPECT_EQ(Parse(*no_dpop)["error"], "invalid_dpop_proof");
  // The server is unaffected.
  EXPECT_EQ(client->Get("/.well-known/jwks.json")->status, 200);
}

TEST_F(VerifierHttpsTest, UseDpopNonceCarriesAFreshNonce) {
  service_config_.require_dpop_nonce = true;
  StartService();
  auto client = Client();
  auto signer = common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256);
  http::ClientRequest r;
  r.method = "POST";
  r.target = "/oauth/token";
  r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  r.headers.emplace("DPoP", *attestation::CreateDpopProof(**signer, "POST", "https://127.0.0.1/oauth/token",
                                                          common::Clock::System().NowUnixSeconds()));
  r.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type="
           "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&subject_token=x&scope=crm.read&audience=a";
  auto response = client->Send(r);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(Parse(*response)["error"], "use_dpop_nonce");
  auto nonce = response->headers.find("DPoP-Nonce");
  ASSERT_NE(nonce, response->headers.end());
  EXPECT_GE(nonce->second.size(), 32u);
}

TEST(OpenApiTest, EveryRouteIsDocumentedAndEveryDocumentedRouteExists) {
  Json doc = Json::parse(attestation::OpenApiDocument());
  ASSERT_EQ(doc["openapi"], "3.0.3");
  std::set<std::pair<std::string, std::string>> documented;
  for (auto path = doc["paths"].begin(); path != doc["paths"].end(); ++path) {
    for (auto method = path.value().begin(); method != path.value().end(); ++method) {
      std::string m = method.key();
      for (char& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      documented.emplace(m, path.key());
    }
  }
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& route : attestation::VerifierService::Routes()) routed.insert(route);
  EXPECT_EQ(documented, routed);
}

}  // namespace
}  // namespace agentroot
