// The `agentroot` executable over real mutual TLS on loopback, against a
// stand-in admin API (http::HttpServer with canned answers): exit codes per
// HTTP status, one-line errors, the client certificate presented, nothing
// sent when local validation fails or the operator certificate has expired,
// and the output formats. The end-to-end tests against the real verifier
// live in tests/ (issue 6, written with the server side).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/signer.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/test_pki.h"
#include "test_util.h"

namespace agentroot::provisioning {
namespace {

using common::Json;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

http::Response ProblemAnswer(int status, const std::string& code, const std::string& detail) {
  return http::ProblemResponse(status, "urn:agentroot:problem:" + code, code, detail);
}

std::string AuditExport(int count, attestation::store::AuditAnchor* anchor) {
  common::Bytes prev(32, 0);
  std::string out;
  for (int seq = 1; seq <= count; ++seq) {
    attestation::store::AuditEntry e;
    e.seq = seq;
    e.ts = 1740830400 + seq;
    e.record.actor = "alice";
    e.record.action = "agent.register";
    e.record.subject = "spiffe://d/agent/a" + std::to_string(seq);
    e.prev_hash = prev;
    e.hash = attestation::store::ComputeAuditHash(prev, attestation::store::CanonicalAuditBody(e).value());
    out += attestation::store::AuditEntryToJsonLine(e).value() + "\n";
    prev = e.hash;
  }
  *anchor = {};
  return out;
}

class CliBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = http::testing::TestPki::Create("cli test CA");
    ASSERT_TRUE(pki.ok());
    pki_ = std::move(*pki);
    auto listener = pki_->LoopbackListener();
    ASSERT_TRUE(listener.ok());
    auto alice = pki_->IssueClient("alice");
    ASSERT_TRUE(alice.ok());
    alice_sha256_ = common::HexEncode(common::Sha256(alice->certificate_der));

    WriteFile(dir_ / "ca.pem", pki_->ca_certificate_pem());
    WriteFile(dir_ / "alice.crt", alice->certificate_pem);
    WriteFile(dir_ / "alice.key", common::ToString(alice->private_key_pem.Reveal()));

    http::ServerOptions options;
    http::TcpListenOptions tcp = std::move(*listener);
    tcp.tls.client_auth = http::ClientAuth::kRequired;
    tcp.tls.client_ca_pem = pki_->ca_certificate_pem();
    options.tcp = std::move(tcp);
    options.io_threads = 1;
    options.worker_threads = 1;
    auto server = http::HttpServer::Create(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    Routes();
    ASSERT_TRUE(server_->Start().ok());

    // The config file names its files relative to itself.
    WriteFile(dir_ / "agentroot.toml", "verifier = \"https://localhost:" + std::to_string(server_->port()) +
                                           "\"\nca = \"ca.pem\"\ncertificate = \"alice.crt\"\n"
                                           "private_key = \"alice.key\"\n");
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  void Record(const http::Request& r) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(r.method + " " + r.target + " " + r.body);
  }
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  void Routes() {
    auto h = [this](std::string_view method, std::string_view path, http::HttpServer::Handler fn) {
      ASSERT_TRUE(server_->Handle(method, path, [this, fn](const http::Request& r) {
                           Record(r);
                           return fn(r);
                         }).ok());
    };
    h("GET", "/v1/whoami", [](const http::Request& r) {
      std::string fp = r.peer.tls ? common::HexEncode(common::Sha256(r.peer.tls->client_certificate_der)) : "";
      return http::JsonResponse(200, Json{{"id", "alice"}, {"display_name", "Alice"}, {"roles", {"infra", "owner"}},
                                          {"status", "active"}, {"certificate_sha256", fp}});
    });
    h("GET", "/v1/agents/{name}", [](const http::Request& r) {
      if (r.PathParam("name") == "ghost") return ProblemAnswer(404, "agent_unknown", "no agent named ghost");
      return http::JsonResponse(200, Json{{"id", "spiffe://corp.example/agent/" + std::string(r.PathParam("name"))},
                                          {"name", std::string(r.PathParam("name"))}});
    });
    h("POST", "/v1/revocations", [](const http::Request&) { return http::JsonResponse(200, Json{{"revoked", 2}}); });
    h("POST", "/v1/hosts/{id}/approve",
      [](const http::Request&) { return ProblemAnswer(409, "conflict", "host is already approved"); });
    h("GET", "/v1/hosts", [](const http::Request&) { return ProblemAnswer(403, "forbidden", "role infra needed"); });
    h("GET", "/v1/operators",
      [](const http::Request&) { return ProblemAnswer(503, "store_unavailable", "database down"); });
    h("POST", "/v1/agents", [](const http::Request&) { return ProblemAnswer(400, "invalid_input", "x"); });
    h("GET", "/v1/inventory", [](const http::Request& r) {
      Json inv = {{"generated_at", 1740830400},
                  {"agents", Json::array({Json{{"id", "spiffe://d/agent/bot"}, {"name", "bot"}, {"status", "active"},
                                              {"owners", Json::array({Json{{"id", "alice"}, {"active", true}}})},
                                              {"host_group", "g, \"quoted\""}, {"scopes", {"a", "b"}},
                                              {"expires_at", 0}, {"findings", {"single_owner"}}}})},
                  {"shadow_agents", Json::array()},
                  {"findings", Json::array()}};
      if (r.query.find("expiring_days=7") != std::string::npos) {
        inv["findings"].push_back(
            Json{{"code", "single_owner"}, {"subject", "spiffe://d/agent/bot"}, {"detail", "one owner"}});
      }
      return http::JsonResponse(200, inv);
    });
    h("GET", "/v1/audit", [this](const http::Request&) {
      http::Response resp;
      resp.headers.emplace("Content-Type", "application/jsonl");
      resp.headers.emplace("X-Audit-Anchor-Seq", "0");
      resp.headers.emplace("X-Audit-Anchor-Hash", std::string(64, '0'));
      attestation::store::AuditAnchor anchor;
      resp.body = AuditExport(4, &anchor);
      audit_body_ = resp.body;
      return resp;
    });
  }

  // Runs the CLI with the config file; stderr goes to dir_/err.
  testing::CommandResult Cli(const std::string& args, const std::string& config = "") {
    const std::string cfg = config.empty() ? dir_ / "agentroot.toml" : config;
    return testing::RunShell("cd '" + dir_.path() + "' && HOME='" + dir_.path() + "' AGENTROOT_CONFIG='" + cfg +
                             "' " + AGENTROOT_CLI + " " + args + " 2>'" + (dir_ / "err") + "'");
  }
  std::string Err() { return ReadFile(dir_ / "err"); }

  TempDir dir_;
  std::unique_ptr<http::testing::TestPki> pki_;
  std::unique_ptr<http::HttpServer> server_;
  std::string alice_sha256_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::string audit_body_;
};

int Lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

TEST_F(CliBinaryTest, WhoamiOverMutualTls) {
  auto r = Cli("-o json operator whoami");
  ASSERT_EQ(r.exit_code, 0) << Err();
  Json j = Json::parse(r.output);
  EXPECT_EQ(j["id"], "alice");
  EXPECT_EQ(j["certificate_sha256"], alice_sha256_);  // the server saw our certificate
  auto table = Cli("operator whoami");
  EXPECT_NE(table.output.find("roles:              infra,owner"), std::string::npos) << table.output;
}

TEST_F(CliBinaryTest, ExitCodesAndOneLineErrors) {
  auto nf = Cli("agents show ghost");
  EXPECT_EQ(nf.exit_code, 3);
  EXPECT_EQ(Err(), "agentroot: agents show: 404 agent_unknown: no agent named ghost\n");
  EXPECT_EQ(Cli("hosts approve h1").exit_code, 5);
  EXPECT_EQ(Err(), "agentroot: hosts approve: 409 conflict: host is already approved\n");
  EXPECT_EQ(Cli("hosts list").exit_code, 4);
  EXPECT_EQ(Lines(Err()), 1);
  EXPECT_EQ(Cli("operator list").exit_code, 6);
  EXPECT_EQ(Lines(Err()), 1);
  EXPECT_EQ(Cli("revoke --agent bot --host h1").exit_code, 2);
  EXPECT_EQ(Cli("agents register x --owner a --scope s --audience u --host h --group g --expires-in 1d").exit_code, 2);
  EXPECT_EQ(Cli("agents register x --owner a --scope s --audience u --host h --expires 2030-01-01 --expires-in 1d")
                .exit_code,
            2);
  EXPECT_EQ(Cli("jit request bot --scope x --for 2weeks --reason r").exit_code, 2);
  EXPECT_EQ(Cli("nonsense").exit_code, 2);
  EXPECT_EQ(Lines(Err()), 1);
}

TEST_F(CliBinaryTest, RevokeAgentByName) {
  auto r = Cli("revoke --agent bot");
  ASSERT_EQ(r.exit_code, 0) << Err();
  auto reqs = Requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0], "GET /v1/agents/bot ");
  EXPECT_EQ(reqs[1], R"(POST /v1/revocations {"agent_id":"spiffe://corp.example/agent/bot"})");
  EXPECT_NE(r.output.find("revoked: 2"), std::string::npos) << r.output;
}

TEST_F(CliBinaryTest, NothingSentOnBadLocalInput) {
  WriteFile(dir_ / "bad.json", R"({"exe_sha256": "not hex"})");
  auto r = Cli("agents register bot --owner alice --group g --scope s --audience u --expires-in 30d "
               "--manifest bad.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(Err().find("agentroot: agents register: manifest bad.json: "), std::string::npos) << Err();
  EXPECT_EQ(Lines(Err()), 1);
  EXPECT_EQ(Cli("agents register bot --owner alice --group g --scope s --audience u --expires-in 30d "
                "--manifest missing.json")
                .exit_code,
            2);
  EXPECT_TRUE(Requests().empty());
  EXPECT_EQ(server_->stats().connections_accepted, 0u);
}

TEST_F(CliBinaryTest, ExpiredOperatorCertificateIsRefusedBeforeConnecting) {
  http::testing::IssueOptions o;
  o.common_name = "alice";
  o.extended_key_usage = "clientAuth";
  o.not_before_offset_seconds = -7200;
  o.not_after_offset_seconds = -3600;
  auto expired = pki_->Issue(o);
  ASSERT_TRUE(expired.ok());
  WriteFile(dir_ / "old.crt", expired->certificate_pem);
  WriteFile(dir_ / "old.key", common::ToString(expired->private_key_pem.Reveal()));
  auto r = Cli("--cert old.crt --key old.key operator whoami");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(Err().find("agentroot: operator whoami: operator certificate old.crt expired at "), std::string::npos)
      << Err();
  EXPECT_EQ(server_->stats().connections_accepted, 0u);
}

TEST_F(CliBinaryTest, UnreachableAndUntrustedVerifierAreExit6) {
  EXPECT_EQ(Cli("--verifier https://127.0.0.1:1 operator whoami").exit_code, 6);
  auto other = http::testing::TestPki::Create("another CA");
  ASSERT_TRUE(other.ok());
  WriteFile(dir_ / "other-ca.pem", (*other)->ca_certificate_pem());
  EXPECT_EQ(Cli("--ca other-ca.pem operator whoami").exit_code, 6);
  EXPECT_EQ(Lines(Err()), 1);
}

TEST_F(CliBinaryTest, InventoryFindingsAndCsv) {
  auto ok = Cli("inventory --fail-on-findings");
  EXPECT_EQ(ok.exit_code, 0) << Err();
  EXPECT_NE(ok.output.find("no findings"), std::string::npos) << ok.output;
  auto found = Cli("inventory --expiring-days 7 --fail-on-findings");
  EXPECT_EQ(found.exit_code, 8);
  EXPECT_NE(found.output.find("single_owner"), std::string::npos);
  EXPECT_EQ(Cli("inventory --expiring-days 7").exit_code, 0);
  auto csv = Cli("inventory -o csv");
  ASSERT_EQ(csv.exit_code, 0);
  EXPECT_EQ(csv.output.substr(0, csv.output.find("\r\n")),
            "name,status,owners,where,scopes,audiences,jit in force,access ends,last attested,last token,review,"
            "findings");
  EXPECT_NE(csv.output.find("\"group g, \"\"quoted\"\"\",\"a,b\""), std::string::npos) << csv.output;
}

TEST_F(CliBinaryTest, AuditExportThenVerify) {
  auto r = Cli("audit export --from 2025-03-01 --out a.jsonl");
  ASSERT_EQ(r.exit_code, 0) << Err();
  EXPECT_EQ(ReadFile(dir_ / "a.jsonl"), audit_body_);
  EXPECT_NE(Err().find("anchor 0:" + std::string(64, '0')), std::string::npos) << Err();
  EXPECT_EQ(Requests().back(), "GET /v1/audit?from=1740787200 ");
  EXPECT_EQ(Cli("audit export --out a.jsonl").exit_code, 5);  // never overwritten

  auto v = Cli("-o json audit verify a.jsonl --anchor 0:" + std::string(64, '0'));
  ASSERT_EQ(v.exit_code, 0) << Err();
  Json report = Json::parse(v.output);
  EXPECT_EQ(report["records"], 4);
  EXPECT_EQ(report["head"].get<std::string>().substr(0, 2), "4:");
  EXPECT_NE(Err().find("keep the head 4:"), std::string::npos) << Err();

  std::string tampered = audit_body_;
  tampered.replace(tampered.find("a3"), 2, "a9");
  WriteFile(dir_ / "t.jsonl", tampered);
  auto bad = Cli("audit verify t.jsonl");
  EXPECT_EQ(bad.exit_code, 7);
  EXPECT_NE(Err().find("first bad record at line 3 (seq 3)"), std::string::npos) << Err();
  EXPECT_EQ(Lines(Err()), 1);
}

}  // namespace
}  // namespace agentroot::provisioning
