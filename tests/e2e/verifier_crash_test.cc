// Crash safety of the agentroot-verifier process (THREATS.md #14, issue 4).
//
// The real binary runs as a child of the test with a TOML config, on SQLite
// and on PostgreSQL. Client threads drive challenge -> attest -> token (and
// a second token with a fresh DPoP proof on the same EAR) over HTTPS while the
// main thread SIGKILLs the verifier at random moments and restarts it on the
// same port. A request cut by a kill has an unknown outcome: the client sends
// the very same request again once the verifier is back, as a real client
// would, so a nonce or a proof consumed without its answer being durable
// would show up as a second success.
//
// Afterwards: every token a client received is in the store with its audit
// record; no nonce and no proof succeeded twice; replaying each against the
// restarted verifier is refused (and the store says why: consumed, not
// expired); the audit hash chain verifies; the store opens at the current
// schema.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/attestation/store/store.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/testing/ports.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/simulators/testing/child_process.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "https_flow.h"
#include "verifier_process.h"
#include "testing/postgres_server.h"

#ifndef AGENTROOT_VERIFIER_BINARY
#error "AGENTROOT_VERIFIER_BINARY must name the agentroot-verifier executable"
#endif

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using common::Json;
using common::Result;
using common::Status;
using SteadyClock = std::chrono::steady_clock;

constexpr char kAgentName[] = "crm-bot";
constexpr char kAgent[] = "spiffe://example.org/agent/crm-bot";
constexpr char kScope[] = "crm.read";
constexpr char kAudience[] = "https://crm.example";
constexpr uint32_t kPcr = 15;
constexpr int kClients = 3;
constexpr int kKills = 6;
constexpr int kTokensPerEar = 2;

enum class Backend { kSqlite, kPostgres };

using common::testing::FreeLoopbackPort;
using e2e::WriteFile;

// The JSON payload of a compact JWS (not verified: the test only reads jti).
Json JwsPayload(std::string_view jws) {
  auto parsed = common::ParseJwsCompact(jws, common::JwsPayload::kJsonObject);
  return parsed.ok() ? parsed->payload_json : Json();
}

// An OAuth or problem-details response, for failure messages (never a token).
std::string Describe(const http::Response& r) {
  std::string out = "HTTP " + std::to_string(r.status);
  const Json j = e2e::ParseBody(r);
  for (const char* k : {"type", "detail", "error", "error_description"}) {
    if (j.is_object() && j.contains(k) && j[k].is_string()) out += std::string(" ") + k + "=" + j[k].get<std::string>();
  }
  return out;
}

// What the clients saw, shared by their threads.
struct Observations {
  std::mutex mu;
  std::map<std::string, int> attest_successes;     // nonce -> 200 responses
  std::map<std::string, std::string> attest_body;  // nonce -> the request
  std::map<std::string, int> proof_successes;      // DPoP proof -> tokens received
  std::map<std::string, std::string> proof_ear;    // DPoP proof -> the EAR it was sent with
  std::vector<std::string> jtis;                   // every token received
  std::map<std::string, int> refusals;             // "attest 401", "token invalid_grant", ...
  int interrupted = 0;                             // requests cut by a kill (sent again)
};

class VerifierCrashTest : public ::testing::TestWithParam<Backend> {};

TEST_P(VerifierCrashTest, KillNineUnderLoadLosesNoReturnedTokenAndAcceptsNothingTwice) {
  // Declaration order is destruction order reversed: the verifier dies
  // before the database and the fleet directory it uses.
  std::unique_ptr<attestation::store::testing::ScopedPostgresServer> pg;
  auto fleet = simulators::testing::ScopedFleet::Create(1);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const fs::path dir = (*fleet)->info().dir / "crash";
  fs::create_directories(dir);
  std::map<std::string, std::string> fingerprints;
  std::string store_uri = "sqlite:" + (dir / "verifier.db").string();
  if (GetParam() == Backend::kPostgres) {
    auto started = attestation::store::testing::ScopedPostgresServer::Start();
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    pg = std::move(started).value();
    auto database = pg->CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status().ToString();
    store_uri = *database;
  }

  // TLS server certificate and operator client certificates from a test CA.
  auto pki = http::testing::TestPki::Create("agentroot crash-test CA");
  ASSERT_TRUE(pki.ok());
  auto server_cred = (*pki)->IssueServer();
  ASSERT_TRUE(server_cred.ok());
  ASSERT_TRUE(WriteFile(dir / "server.pem", server_cred->certificate_pem).ok());
  ASSERT_TRUE(WriteFile(dir / "server.key", common::ToString(server_cred->private_key_pem.Reveal())).ok());
  ASSERT_TRUE(WriteFile(dir / "operator-ca.pem", (*pki)->ca_certificate_pem()).ok());
  auto port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  const std::string base_url = "https://127.0.0.1:" + std::to_string(*port);
  const std::string token_endpoint = base_url + "/oauth/token";
  auto client = [&](const std::string& operator_name) -> std::unique_ptr<http::HttpClient> {
    http::ClientOptions options;
    options.base_url = base_url;
    options.ca_pem = (*pki)->ca_certificate_pem();
    options.connect_timeout = std::chrono::milliseconds(2000);
    options.request_timeout = std::chrono::milliseconds(10000);
    if (!operator_name.empty()) {
      auto cred = std::move((*pki)->IssueClient(operator_name)).value();
      options.client_certificate_chain_pem = cred.certificate_pem;
      options.client_private_key_pem = std::move(cred.private_key_pem);
      fingerprints[operator_name] = common::HexEncode(common::Sha256(cred.certificate_der));
    }
    return std::move(http::HttpClient::Create(std::move(options))).value();
  };
  auto alice = client("alice");
  auto bob = client("bob");
  auto setup = client("");

  std::ostringstream toml;
  toml << "[server]\nlisten = \"127.0.0.1:" << *port << "\"\n"
       << "tls_certificate = \"" << (dir / "server.pem").string() << "\"\n"
       << "tls_private_key = \"" << (dir / "server.key").string() << "\"\n"
       << "operator_ca = \"" << (dir / "operator-ca.pem").string() << "\"\n"
       << "threads = 2\n\n"
       << "[verifier]\nissuer = \"" << base_url << "\"\ntrust_domain = \"example.org\"\n"
       << "manufacturer_roots = \"" << (*fleet)->info().manufacturer_ca.string() << "\"\n"
       << "auto_approve_groups = [\"crm-hosts\"]\nmeasurement_pcr = " << kPcr << "\n"
       // One host and one agent make all the load: rate limits out of the way.
       << "token_rate_per_minute = 1000000\nchallenge_rate_per_minute = 1000000\n\n"
       << "[store]\nuri = \"" << store_uri << "\"\n\n"
       << "[issuer_key]\nbackend = \"file\"\ndir = \"" << (dir / "issuer-key").string() << "\"\nkey_id = \"issuer-1\"\n\n"
       << "[[bootstrap_operators]]\nid = \"alice\"\ncertificate_sha256 = \"" << fingerprints["alice"]
       << "\"\nroles = [\"owner\"]\n\n"
       << "[[bootstrap_operators]]\nid = \"bob\"\ncertificate_sha256 = \"" << fingerprints["bob"]
       << "\"\nroles = [\"reviewer\"]\n";
  ASSERT_TRUE(WriteFile(dir / "verifier.toml", toml.str()).ok());

  e2e::VerifierProcessOptions process_options;
  process_options.config = dir / "verifier.toml";
  process_options.log = dir / "verifier.log";
  process_options.args = {"--dev"};
  process_options.ca_pem = (*pki)->ca_certificate_pem();
  process_options.port = *port;
  auto process = e2e::VerifierProcess::Start(std::move(process_options));
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  e2e::VerifierProcess& verifier = **process;

  // Enrollment, governance and key registration over HTTPS.
  auto machine = e2e::TpmMachine::Open((*fleet)->info().machines[0].tcti, dir / "m0");
  ASSERT_TRUE(machine.ok()) << machine.status().ToString();
  auto enrolled = e2e::EnrollHost(*setup, *machine->attestor, (*fleet)->info(), "crm-hosts");
  ASSERT_TRUE(enrolled.ok()) << enrolled.status().ToString();
  ASSERT_EQ(enrolled->activation.status, 200) << Describe(enrolled->challenge) << " / " << Describe(enrolled->activation);
  ASSERT_EQ(e2e::ParseBody(enrolled->activation)["status"], "approved");
  const std::string host = enrolled->host_id;
  auto created = alice->Post("/v1/agents", e2e::AgentRegistration(kAgentName, "crm-hosts", kScope, kAudience, "alice").dump());
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << Describe(*created);
  auto added = e2e::AddManifest(*alice, kAgentName, std::string(64, 'a'));
  ASSERT_TRUE(added.ok());
  ASSERT_EQ(added->status, 201) << Describe(*added);
  auto reviewed = e2e::ReviewManifest(*bob, kAgentName, 1, true);
  ASSERT_TRUE(reviewed.ok());
  ASSERT_EQ(reviewed->status, 200) << Describe(*reviewed);
  auto key_or = machine->keys->Generate("crm-bot", hsm::KeyPolicy{});
  ASSERT_TRUE(key_or.ok());
  std::shared_ptr<hsm::Key> key = *key_or;
  auto registered = e2e::RegisterAgentKey(*setup, *machine->attestor, host, kAgent, *key);
  ASSERT_TRUE(registered.ok()) << registered.status().ToString();
  ASSERT_EQ(registered->status, 201) << Describe(*registered);
  const attestation::MeasurementEvent event = e2e::AgentEvent(kAgent, std::string(64, 'a'));
  ASSERT_TRUE(machine->attestor->PcrExtend(kPcr, attestation::EventDigest(event)).ok());

  // The load. A transport error means the verifier died under the request:
  // send the same request again until some verifier answers it.
  Observations seen;
  std::atomic<bool> stop{false};
  auto send_until_answered = [&](http::HttpClient& c, const http::ClientRequest& request) -> std::optional<http::Response> {
    bool cut = false;
    const auto deadline = SteadyClock::now() + std::chrono::seconds(40);
    while (SteadyClock::now() < deadline && !(cut && stop.load())) {
      auto r = c.Send(request);
      if (r.ok()) {
        if (cut) {
          std::lock_guard<std::mutex> lock(seen.mu);
          ++seen.interrupted;
        }
        return std::move(r).value();
      }
      cut = true;
      c.CloseConnection();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  };
  auto worker = [&]() {
    auto c = client("");
    while (!stop.load()) {
      auto call = e2e::PrepareAttest(*c, *machine->attestor, host, kAgent, *key, event, kPcr);
      if (!call.ok()) {  // the challenge did not get through: no nonce to account for
        c->CloseConnection();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      http::ClientRequest attest;
      attest.method = "POST";
      attest.target = "/v1/attest";
      attest.headers.emplace("Content-Type", "application/json");
      attest.body = call->body;
      auto attested = send_until_answered(*c, attest);
      if (!attested) return;
      {
        std::lock_guard<std::mutex> lock(seen.mu);
        seen.attest_body[call->nonce] = call->body;
        if (attested->status == 200) {
          ++seen.attest_successes[call->nonce];
        } else {
          ++seen.refusals["attest " + std::to_string(attested->status)];
        }
      }
      if (attested->status != 200) continue;
      const Json outcome = e2e::ParseBody(*attested);
      if (!outcome.is_object() || outcome.value("status", "") != "affirming" || !outcome["ear"].is_string()) {
        std::lock_guard<std::mutex> lock(seen.mu);
        ++seen.refusals["attest not affirming"];
        continue;
      }
      const std::string ear = outcome["ear"];
      for (int i = 0; i < kTokensPerEar && !stop.load(); ++i) {
        auto proof = e2e::TokenProof(*key, token_endpoint);
        if (!proof.ok()) continue;
        auto token = send_until_answered(*c, e2e::TokenRequest(*proof, ear, kScope, kAudience));
        if (!token) return;
        const Json t = e2e::ParseBody(*token);
        std::lock_guard<std::mutex> lock(seen.mu);
        seen.proof_ear[*proof] = ear;
        if (token->status == 200 && t.is_object() && t["access_token"].is_string()) {
          ++seen.proof_successes[*proof];
          seen.jtis.push_back(JwsPayload(t["access_token"].get<std::string>()).value("jti", ""));
        } else {
          ++seen.refusals["token " + (t.is_object() ? t.value("error", std::to_string(token->status)) + " (" +
                                                          t.value("error_description", "") + ")"
                                                    : std::to_string(token->status))];
        }
      }
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) clients.emplace_back(worker);
  // Joins the clients on every path out of this test, assertions included.
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{stop, clients};

  std::random_device seed_source;
  const unsigned seed = seed_source();
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> pause_ms(150, 1500);
  std::cout << "kill schedule seed " << seed << "\n";
  for (int kill = 0; kill < kKills; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
    verifier.Kill();
    Status restarted = verifier.Restart();
    ASSERT_TRUE(restarted.ok()) << "restart " << kill << ": " << restarted.ToString();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // some traffic after the last restart
  stop = true;
  for (auto& t : clients) t.join();
  verifier.Kill();

  std::cout << "tokens " << seen.jtis.size() << ", attests " << seen.attest_successes.size() << ", requests cut by a kill "
            << seen.interrupted << "\n";
  for (const auto& [what, n] : seen.refusals) std::cout << "  refused: " << what << " x" << n << "\n";
  ASSERT_GT(seen.jtis.size(), 0u) << "no token was issued under load; log: "
                                  << simulators::testing::FileTail(verifier.log_path());
  EXPECT_GT(seen.interrupted, 0) << "no kill hit a request in flight";

  // No nonce and no proof was accepted twice.
  for (const auto& [nonce, n] : seen.attest_successes) EXPECT_EQ(n, 1) << "nonce accepted " << n << " times";
  for (const auto& [proof, n] : seen.proof_successes) EXPECT_EQ(n, 1) << "DPoP proof accepted " << n << " times";

  // Every token a client received is in the store, with its audit record.
  {
    auto store = attestation::store::Store::Open(store_uri, common::Clock::System());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto version = (*store)->SchemaVersion();
    ASSERT_TRUE(version.ok()) << version.status().ToString();
    EXPECT_EQ(*version, attestation::store::Store::LatestSchemaVersion());
    auto exported = (*store)->ExportAudit(0, INT64_MAX);
    ASSERT_TRUE(exported.ok()) << exported.status().ToString();
    std::set<std::string> audited;
    std::istringstream lines(exported->jsonl);
    for (std::string line; std::getline(lines, line);) {
      const Json record = Json::parse(line, nullptr, false);
      if (record.is_object() && record.value("action", "") == "token.issue" && record.value("decision", "") == "allow") {
        audited.insert(record.value("details", Json::object()).value("jti", ""));
      }
    }
    const std::string jkt = key->public_jwk().Thumbprint();
    for (const std::string& jti : seen.jtis) {
      auto token = (*store)->GetToken(jti);
      ASSERT_TRUE(token.ok()) << "returned token " << jti << " is not in the store: " << token.status().ToString();
      EXPECT_EQ(token->agent_id, kAgent);
      EXPECT_EQ(token->cnf_jkt, jkt);
      EXPECT_EQ(audited.count(jti), 1u) << "returned token " << jti << " has no audit record";
    }
    // And the other way round: an audited issue always has its token row.
    for (const std::string& jti : audited) EXPECT_TRUE((*store)->GetToken(jti).ok()) << jti;
  }

  // Replays against the restarted verifier are refused.
  Status started = verifier.Restart();
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto replayer = client("");
  for (const auto& [nonce, n] : seen.attest_successes) {
    auto r = replayer->Post("/v1/attest", seen.attest_body[nonce]);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 401) << Describe(*r);
    EXPECT_EQ(e2e::ParseBody(*r).value("type", ""), "urn:agentroot:problem:nonce_invalid") << Describe(*r);
  }
  const int64_t now = common::Clock::System().NowUnixSeconds();
  int proofs_in_window = 0;
  for (const auto& [proof, n] : seen.proof_successes) {
    auto r = replayer->Send(e2e::TokenRequest(proof, seen.proof_ear[proof], kScope, kAudience));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Json body = e2e::ParseBody(*r);
    EXPECT_EQ(r->status, 400) << Describe(*r);
    EXPECT_EQ(body.value("error", ""), "invalid_dpop_proof") << Describe(*r);
    // Inside the proof's iat window the replay cache is what refuses it.
    if (JwsPayload(proof).value("iat", int64_t{0}) > now - 50) {
      ++proofs_in_window;
      EXPECT_NE(body.value("error_description", "").find("replayed"), std::string::npos) << Describe(*r);
    }
  }
  std::cout << "replayed " << seen.attest_successes.size() << " nonces and " << seen.proof_successes.size()
            << " proofs (" << proofs_in_window << " inside their iat window)\n";
  verifier.Kill();

  // The store says why: each nonce and proof is consumed (not merely
  // expired), and the audit chain over everything, replays included, verifies.
  auto store = attestation::store::Store::Open(store_uri, common::Clock::System());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const auto& [nonce, n] : seen.attest_successes) {
    auto consumed = (*store)->ConsumeNonce(nonce, "attest", now);
    EXPECT_FALSE(consumed.ok());
    EXPECT_EQ(consumed.status().message(), "nonce already used") << consumed.status().ToString();
  }
  const std::string jkt = key->public_jwk().Thumbprint();
  for (const auto& [proof, n] : seen.proof_successes) {
    const Status recorded = (*store)->RecordProofJti(jkt + ":" + JwsPayload(proof).value("jti", ""), now + 3600);
    EXPECT_EQ(recorded.code(), common::StatusCode::kAlreadyExists) << recorded.ToString();
  }
  auto exported = (*store)->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  const auto report = attestation::store::VerifyAuditChain(exported->jsonl);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString() << " at line " << report.first_bad_line;
  auto head = (*store)->AuditHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(report.records_verified, head->seq);
  EXPECT_EQ(report.head.hash, head->hash);
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifierCrashTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& param_info) {
                           return param_info.param == Backend::kSqlite ? std::string("Sqlite") : std::string("Postgres");
                         });

}  // namespace
}  // namespace agentroot
