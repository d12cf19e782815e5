// The operator CLI `agentroot` against the real agentroot-verifier over mutual
// TLS (issue 6): every subcommand, each role allowed and refused where it
// should be, bad input refused with one line and a non-zero exit and nothing
// half-written, a JIT elevation watched until it expires (the verifier's
// clock moved by libfaketime through a timestamp file), and the audit trail
// naming who did what, verified offline.
//
// The operator CA and every credential are made with the CLI itself
// (`operator ca-init`, `operator issue`); the verifier trusts that CA and
// knows one bootstrap operator (infra), who registers the others.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agentroot/common/json.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/provisioning/operator_ca.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "https_flow.h"
#include "verifier_process.h"

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using common::Json;

constexpr char kFaketime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
constexpr char kAgentId[] = "spiffe://example.org/agent/sales-bot";

struct Cli {
  int exit_code = -1;
  std::string out;
  std::string err;
  Json json() const { return common::ParseJsonStrict(out).value_or(Json()); }
};

std::ostream& operator<<(std::ostream& os, const Cli& r) {
  return os << "exit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err;
}

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kFaketime)) << kFaketime << " is missing: scripts/install-deps.sh installs libfaketime";
    auto fleet = simulators::testing::ScopedFleet::Create(1);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    fleet_ = std::move(fleet).value();
    dir_ = fleet_->info().dir / "cli";
    fs::create_directories(dir_);

    // The operator CA and credentials, made by the CLI.
    // The CA is made "twenty days ago", so that a credential can be issued in the past below.
    Cli ca = RunWithEnv({"FAKETIME=-20d", std::string("LD_PRELOAD=") + kFaketime},
                        {"operator", "ca-init", "--dir", (dir_ / "operator-ca").string(), "--name", "ops CA"});
    ASSERT_EQ(ca.exit_code, 0) << ca;
    for (const char* id : {"root", "alice", "bob", "dave", "erin", "mallory"}) Issue(id, dir_ / "creds");
    // An operator certificate that expired nine days ago (issued "ten days ago" for one day).
    Cli expired = RunWithEnv({"FAKETIME=-10d", std::string("LD_PRELOAD=") + kFaketime},
                             {"operator", "issue", "--ca-dir", (dir_ / "operator-ca").string(), "--id", "old",
                              "--days", "1", "--out", (dir_ / "creds").string()});
    ASSERT_EQ(expired.exit_code, 0) << expired;

    // The verifier: its TLS from a test PKI; the operator CA; no manufacturer
    // CA in its configuration (added through the CLI); its clock from a file.
    auto pki = http::testing::TestPki::Create("cli-e2e TLS CA");
    ASSERT_TRUE(pki.ok());
    pki_ = std::move(pki).value();
    auto server = pki_->IssueServer();
    ASSERT_TRUE(server.ok());
    ASSERT_TRUE(e2e::WriteFile(dir_ / "server.pem", server->certificate_pem).ok());
    ASSERT_TRUE(e2e::WriteFile(dir_ / "server.key", common::ToString(server->private_key_pem.Reveal())).ok());
    ASSERT_TRUE(e2e::WriteFile(dir_ / "tls-ca.pem", pki_->ca_certificate_pem()).ok());
    SetVerifierClock("+0");
    auto root = provisioning::InspectCertificate(e2e::ReadTextFile(dir_ / "creds" / "root.crt"));
    ASSERT_TRUE(root.ok());
    std::ostringstream toml;
    toml << "[server]\nlisten = \"127.0.0.1:0\"\ntls_certificate = \"" << (dir_ / "server.pem").string()
         << "\"\ntls_private_key = \"" << (dir_ / "server.key").string() << "\"\noperator_ca = \""
         << (dir_ / "operator-ca" / "ca.crt").string() << "\"\nthreads = 2\n\n"
         << "[verifier]\nissuer = \"https://verifier.test\"\ntrust_domain = \"example.org\"\n\n"
         << "[store]\nuri = \"sqlite:" << (dir_ / "verifier.db").string() << "\"\n\n"
         << "[issuer_key]\nbackend = \"file\"\ndir = \"" << (dir_ / "issuer").string() << "\"\nkey_id = \"issuer-1\"\n\n"
         << "[[bootstrap_operators]]\nid = \"root\"\nroles = [\"infra\"]\ncertificate_sha256 = \"" << root->sha256_hex
         << "\"\n";
    ASSERT_TRUE(e2e::WriteFile(dir_ / "verifier.toml", toml.str()).ok());
    e2e::VerifierProcessOptions options;
    options.config = dir_ / "verifier.toml";
    options.log = dir_ / "verifier.log";
    options.args = {"--dev"};
    options.env = {{"LD_PRELOAD", kFaketime},
                   {"FAKETIME_TIMESTAMP_FILE", (dir_ / "faketime").string()},
                   {"FAKETIME_NO_CACHE", "1"},
                   {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
    options.ca_pem = pki_->ca_certificate_pem();
    auto verifier = e2e::VerifierProcess::Start(std::move(options));
    ASSERT_TRUE(verifier.ok()) << verifier.status().ToString();
    verifier_ = std::move(verifier).value();
    for (const char* id : {"root", "alice", "bob", "dave", "erin", "mallory", "old"}) WriteConfig(id, dir_ / "creds");
  }

  // The verifier's clock: a libfaketime offset ("+0", "+11m"), read on every call.
  void SetVerifierClock(const std::string& offset) { ASSERT_TRUE(e2e::WriteFile(dir_ / "faketime", offset + "\n").ok()); }

  void Issue(const std::string& id, const fs::path& out) {
    Cli r = Run({"operator", "issue", "--ca-dir", (dir_ / "operator-ca").string(), "--id", id, "--name", id + " Doe",
                 "--out", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r;
  }

  void WriteConfig(const std::string& id, const fs::path& creds) {
    ASSERT_TRUE(e2e::WriteFile(dir_ / (id + ".toml"),
                               "verifier = \"" + verifier_->base_url() + "\"\nca = \"" + (dir_ / "tls-ca.pem").string() +
                                   "\"\ncertificate = \"" + (creds / (id + ".crt")).string() +
                                   "\"\nprivate_key = \"" + (creds / (id + ".key")).string() + "\"\n")
                    .ok());
  }

  Cli RunWithEnv(std::vector<std::string> env, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(AGENTROOT_CLI);
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = simulators::testing::RunCommand(argv, std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    return Cli{r->exit_code, r->stdout_text, r->stderr_text};
  }
  Cli Run(std::vector<std::string> args) { return RunWithEnv({}, std::move(args)); }
  // As operator `id` (their config file), JSON output.
  Cli As(const std::string& id, std::vector<std::string> args) {
    args.insert(args.begin(), {"--config", (dir_ / (id + ".toml")).string(), "--output", "json"});
    return Run(std::move(args));
  }

  // A refusal: the expected exit code and exactly one line on stderr.
  static void ExpectRefused(const Cli& r, int exit_code, const std::string& words = "") {
    EXPECT_EQ(r.exit_code, exit_code) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
    EXPECT_EQ(r.err.rfind("agentroot: ", 0), 0u) << r;
    if (!words.empty()) {
      EXPECT_NE(r.err.find(words), std::string::npos) << r;
    }
  }

  std::string WriteManifest(const std::string& name, const Json& content) {
    fs::path path = dir_ / name;
    EXPECT_TRUE(e2e::WriteFile(path, content.dump()).ok());
    return path.string();
  }

  // Enrolls the fleet's machine over HTTPS as hostd would (no client certificate).
  e2e::Enrollment EnrollMachine(const std::string& group, const std::string& ak) {
    http::ClientOptions options;
    options.base_url = verifier_->base_url();
    options.ca_pem = pki_->ca_certificate_pem();
    auto client = http::HttpClient::Create(std::move(options));
    EXPECT_TRUE(client.ok());
    if (!machine_) {
      auto machine = e2e::TpmMachine::Open(fleet_->info().machines[0].tcti, dir_ / "m0");
      EXPECT_TRUE(machine.ok()) << machine.status().ToString();
      machine_ = std::make_unique<e2e::TpmMachine>(std::move(machine).value());
    }
    auto enrolled = e2e::EnrollHost(**client, *machine_->attestor, fleet_->info(), group, ak);
    EXPECT_TRUE(enrolled.ok()) << enrolled.status().ToString();
    return enrolled.ok() ? *enrolled : e2e::Enrollment{};
  }

  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
  fs::path dir_;
  std::unique_ptr<http::testing::TestPki> pki_;
  std::unique_ptr<e2e::VerifierProcess> verifier_;
  std::unique_ptr<e2e::TpmMachine> machine_;
};

TEST_F(CliE2eTest, EveryCommandWithItsRolesOverMutualTls) {
  // ---- Operators: the bootstrap infra operator registers the others.
  Cli me = As("root", {"operator", "whoami"});
  ASSERT_EQ(me.exit_code, 0) << me;
  EXPECT_EQ(me.json()["roles"], Json::array({"infra"}));
  ExpectRefused(As("mallory", {"operator", "whoami"}), 4);  // a certificate from the CA, but no operator
  auto add = [&](const std::string& actor, const std::string& id, const std::string& roles) {
    return As(actor, {"operator", "add", id, "--name", id + " Doe", "--role", roles, "--cert",
                      (dir_ / "creds" / (id + ".crt")).string()});
  };
  ExpectRefused(add("alice", "alice", "owner"), 4);  // not yet an operator
  ASSERT_EQ(add("root", "alice", "owner").exit_code, 0);
  ExpectRefused(add("alice", "bob", "reviewer"), 4);  // an owner cannot add operators
  ASSERT_EQ(add("root", "bob", "reviewer").exit_code, 0);
  ASSERT_EQ(add("root", "dave", "auditor").exit_code, 0);
  ASSERT_EQ(add("root", "erin", "owner,reviewer").exit_code, 0);
  ExpectRefused(add("root", "alice", "owner"), 5);         // exists
  ExpectRefused(add("root", "mallory", "superuser"), 2);   // no such role
  ExpectRefused(As("root", {"operator", "add", "zed", "--name", "Z", "--role", "owner", "--cert",
                            (dir_ / "server.pem").string()}), 2);  // not from the operator CA
  // A change of team: roles replaced by infra, not by the operator themselves.
  ExpectRefused(As("erin", {"operator", "set-roles", "erin", "--role", "infra"}), 4);
  ExpectRefused(As("root", {"operator", "set-roles", "root", "--role", "auditor"}), 5);
  ExpectRefused(As("root", {"operator", "set-roles", "erin", "--role", "wizard"}), 2);
  ASSERT_EQ(As("root", {"operator", "set-roles", "dave", "--role", "owner"}).exit_code, 0);
  ExpectRefused(As("dave", {"operator", "list"}), 4);  // no longer an auditor
  Cli back = As("root", {"operator", "set-roles", "dave", "--role", "auditor"});
  ASSERT_EQ(back.exit_code, 0) << back;
  EXPECT_EQ(back.json()["roles"], Json::array({"auditor"}));
  Cli operators = As("dave", {"operator", "list"});
  ASSERT_EQ(operators.exit_code, 0) << operators;
  EXPECT_EQ(operators.json()["operators"].size(), 5u);
  ExpectRefused(As("alice", {"operator", "list"}), 4);
  // A mistyped command is named, with the commands there are.
  ExpectRefused(Run({"agents", "lst"}), 2, "unknown command 'lst' for 'agentroot agents'");
  // An expired credential is refused before anything is sent, and by the verifier if sent anyway.
  ExpectRefused(As("old", {"operator", "whoami"}), 4, "expired");
  {
    http::ClientOptions options;
    options.base_url = verifier_->base_url();
    options.ca_pem = pki_->ca_certificate_pem();
    options.client_certificate_chain_pem = e2e::ReadTextFile(dir_ / "creds" / "old.crt");
    options.client_private_key_pem = common::SecretBytes(common::AsBytes(e2e::ReadTextFile(dir_ / "creds" / "old.key")));
    auto client = http::HttpClient::Create(std::move(options));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    auto answer = (*client)->Get("/v1/whoami");
    EXPECT_TRUE(!answer.ok() || answer->status == 401) << (answer.ok() ? answer->body : answer.status().ToString());
  }

  // ---- Trust anchors and hosts: no manufacturer CA yet, so enrollment fails.
  EXPECT_EQ(EnrollMachine("crm-hosts", "ak-1").challenge.status, 401);
  ExpectRefused(As("alice", {"trust", "add-ca", fleet_->info().manufacturer_ca.string()}), 4);
  ASSERT_EQ(As("root", {"trust", "add-ca", fleet_->info().manufacturer_ca.string(), "--description", "sim"}).exit_code, 0);
  ExpectRefused(As("root", {"trust", "add-ca", (dir_ / "creds" / "alice.crt").string()}), 2);  // not a CA
  ASSERT_EQ(As("root", {"trust", "auto-approve", "lab"}).exit_code, 0);
  ASSERT_EQ(As("root", {"trust", "pin-ek", "--sha256", std::string(64, 'a'), "--group", "lab"}).exit_code, 0);
  ExpectRefused(As("root", {"trust", "pin-ek", "--sha256", "abc"}), 2);
  Cli anchors = As("bob", {"trust", "list"});
  ASSERT_EQ(anchors.exit_code, 0) << anchors;
  ASSERT_EQ(anchors.json()["trust_anchors"].size(), 3u) << anchors;
  std::string pin_id;
  const Json anchor_list = anchors.json();  // range-for over a temporary's member would dangle
  for (const Json& a : anchor_list["trust_anchors"]) {
    if (a["kind"] == "ek_pin") pin_id = a["id"];
  }
  ASSERT_EQ(As("root", {"trust", "remove", pin_id}).exit_code, 0);
  ExpectRefused(As("root", {"trust", "remove", pin_id}), 3);

  e2e::Enrollment enrolled = EnrollMachine("crm-hosts", "ak-2");
  ASSERT_EQ(enrolled.activation.status, 200) << enrolled.activation.body;
  const std::string host = enrolled.host_id;
  Cli pending = As("dave", {"hosts", "list", "--status", "pending"});
  ASSERT_EQ(pending.exit_code, 0) << pending;
  ASSERT_EQ(pending.json()["hosts"].size(), 1u);
  EXPECT_EQ(pending.json()["hosts"][0]["id"], host);
  EXPECT_EQ(pending.json()["hosts"][0]["ek_sha256"].get<std::string>().size(), 64u);
  EXPECT_FALSE(pending.json()["hosts"][0]["ek_certificate_issuer"].get<std::string>().empty());
  ExpectRefused(As("alice", {"hosts", "approve", host}), 4);
  ASSERT_EQ(As("root", {"hosts", "approve", host}).exit_code, 0);
  ExpectRefused(As("root", {"hosts", "approve", host}), 5);  // already approved
  ExpectRefused(As("root", {"hosts", "approve", "host-0000000000000000"}), 3);
  EXPECT_EQ(As("dave", {"hosts", "list", "--status", "approved"}).json()["hosts"].size(), 1u);

  // ---- Agents: bad input is refused locally, with nothing written.
  const Json good = {{"exe_sha256", std::string(64, 'a')}, {"files", {{"/etc/agents/sales-bot.toml", std::string(64, 'c')}}},
                     {"model_id", "gpt-x"}};
  const std::string manifest = WriteManifest("manifest.json", good);
  const std::string bad = WriteManifest("bad.json", Json{{"exe_sha256", "abc"}});
  ASSERT_TRUE(e2e::WriteFile(dir_ / "broken.json", "{\"exe_sha256\": ").ok());
  std::vector<std::string> reg = {"agents", "register", "sales-bot", "--owner", "alice", "--group", "crm-hosts",
                                  "--scope", "crm.read", "--audience", "https://crm.example", "--expires-in", "30d"};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  ExpectRefused(As("alice", with(reg, {"--manifest", bad})), 2, "exe_sha256");
  ExpectRefused(As("alice", with(reg, {"--manifest", (dir_ / "broken.json").string()})), 2);
  ExpectRefused(As("alice", with(reg, {"--manifest", manifest, "--host", host})), 2);  // --host and --group
  ExpectRefused(As("alice", with(reg, {"--manifest", manifest, "--expires", "2030-01-01"})), 2);  // both expiries
  ExpectRefused(As("alice", with(reg, {"--manifest", (dir_ / "missing.json").string()})), 2);
  EXPECT_EQ(As("dave", {"agents", "list"}).json()["agents"].size(), 0u);  // nothing half-written
  ExpectRefused(As("bob", with(reg, {"--manifest", manifest})), 4);        // a reviewer is not an owner
  Cli registered = As("alice", with(reg, {"--manifest", manifest}));
  ASSERT_EQ(registered.exit_code, 0) << registered;
  ExpectRefused(As("alice", with(reg, {"--manifest", manifest})), 5);  // exists
  ExpectRefused(As("alice", {"agents", "show", "nope"}), 3);
  Cli shown = As("dave", {"agents", "show", "sales-bot"});
  ASSERT_EQ(shown.exit_code, 0) << shown;
  EXPECT_EQ(shown.json()["id"], kAgentId);
  EXPECT_EQ(shown.json()["review"]["state"], "pending");
  EXPECT_EQ(shown.json()["manifests"][0]["content"]["model_id"], "gpt-x");
  // Erin becomes a co-owner (an owner may change the registration; a stranger may not).
  ExpectRefused(As("bob", {"agents", "update", "sales-bot", "--owner", "bob"}), 4);
  ASSERT_EQ(As("alice", {"agents", "update", "sales-bot", "--owner", "alice", "--owner", "erin"}).exit_code, 0);

  // ---- Reviews: separation of duties.
  Cli queue = As("bob", {"reviews", "list"});
  ASSERT_EQ(queue.exit_code, 0) << queue;
  ASSERT_EQ(queue.json()["reviews"].size(), 1u);
  EXPECT_EQ(queue.json()["reviews"][0]["version"], 1);
  ExpectRefused(As("alice", {"reviews", "approve", "sales-bot", "1"}), 4);  // no reviewer role
  ExpectRefused(As("erin", {"reviews", "approve", "sales-bot", "1"}), 4);   // a reviewer, but an owner
  ExpectRefused(As("dave", {"reviews", "approve", "sales-bot", "1"}), 4);   // an auditor cannot approve
  ASSERT_EQ(As("bob", {"reviews", "approve", "sales-bot", "1", "--comment", "looks right"}).exit_code, 0);
  ExpectRefused(As("bob", {"reviews", "approve", "sales-bot", "1"}), 5);  // reviewed already
  // A new manifest version needs a new review.
  const std::string v2 = WriteManifest("manifest-v2.json", Json{{"exe_sha256", std::string(64, 'b')}});
  ASSERT_EQ(As("alice", {"agents", "update", "sales-bot", "--manifest", v2}).exit_code, 0);
  EXPECT_EQ(As("dave", {"agents", "show", "sales-bot"}).json()["review"]["state"], "pending");
  ASSERT_EQ(As("bob", {"reviews", "reject", "sales-bot", "2", "--comment", "unknown binary"}).exit_code, 0);
  EXPECT_EQ(As("dave", {"agents", "show", "sales-bot"}).json()["review"]["approved_version"], 1);

  // ---- JIT: requested by an owner, approved by someone else, expires by itself.
  ExpectRefused(As("bob", {"jit", "request", "sales-bot", "--scope", "crm.export", "--for", "10m", "--reason", "r"}), 4);
  ExpectRefused(As("alice", {"jit", "request", "sales-bot", "--scope", "crm.export", "--for", "10x", "--reason", "r"}), 2);
  Cli requested = As("alice", {"jit", "request", "sales-bot", "--scope", "crm.export", "--for", "10m", "--reason",
                               "quarterly export for finance"});
  ASSERT_EQ(requested.exit_code, 0) << requested;
  const std::string grant = requested.json()["id"];
  EXPECT_EQ(requested.json()["state"], "pending");
  ExpectRefused(As("alice", {"jit", "approve", grant}), 4);  // the requester
  ExpectRefused(As("dave", {"jit", "approve", grant}), 4);   // an auditor
  Cli approved = As("bob", {"jit", "approve", grant, "--comment", "ok for today"});
  ASSERT_EQ(approved.exit_code, 0) << approved;
  EXPECT_EQ(approved.json()["state"], "active");
  auto state_of = [&](const std::string& id) {
    const Json grants = As("dave", {"jit", "list", "--agent", "sales-bot"}).json();
    for (const Json& g : grants["jit_grants"]) {
      if (g["id"] == id) return g["state"].get<std::string>();
    }
    return std::string("missing");
  };
  EXPECT_EQ(state_of(grant), "active");
  Cli in_force = As("dave", {"inventory"});
  ASSERT_EQ(in_force.exit_code, 0) << in_force;
  EXPECT_EQ(in_force.json()["agents"][0]["jit_grants_in_force"][0]["id"], grant);
  SetVerifierClock("+11m");  // ten minutes and more pass at the verifier
  EXPECT_EQ(state_of(grant), "expired");
  EXPECT_TRUE(As("dave", {"inventory"}).json()["agents"][0]["jit_grants_in_force"].empty());
  SetVerifierClock("+0");
  Cli second = As("erin", {"jit", "request", "sales-bot", "--scope", "crm.export", "--for", "1h", "--reason", "again"});
  ASSERT_EQ(second.exit_code, 0) << second;
  ASSERT_EQ(As("root", {"jit", "reject", second.json()["id"], "--comment", "not today"}).exit_code, 0);
  EXPECT_EQ(state_of(second.json()["id"]), "rejected");

  // ---- Suspend, resume; the owner lifecycle.
  ExpectRefused(As("dave", {"agents", "suspend", "sales-bot"}), 4);
  ASSERT_EQ(As("erin", {"agents", "suspend", "sales-bot", "--reason", "incident 42"}).exit_code, 0);
  ASSERT_EQ(As("alice", {"agents", "resume", "sales-bot"}).exit_code, 0);
  Cli first_gone = As("root", {"operator", "disable", "alice"});
  ASSERT_EQ(first_gone.exit_code, 0) << first_gone;
  EXPECT_TRUE(first_gone.json()["suspended_agents"].empty());  // erin still owns it
  Cli last_gone = As("root", {"operator", "disable", "erin"});
  ASSERT_EQ(last_gone.exit_code, 0) << last_gone;
  EXPECT_EQ(last_gone.json()["suspended_agents"], Json::array({kAgentId}));
  EXPECT_EQ(As("dave", {"agents", "show", "sales-bot"}).json()["status"], "suspended");
  ExpectRefused(As("alice", {"operator", "whoami"}), 4);  // disabled
  Cli orphaned = As("dave", {"inventory", "--fail-on-findings"});
  EXPECT_EQ(orphaned.exit_code, 8) << orphaned;
  std::set<std::string> codes;
  const Json orphaned_json = orphaned.json();
  for (const Json& f : orphaned_json["findings"]) codes.insert(f["code"]);
  EXPECT_TRUE(codes.count("no_active_owner")) << orphaned;
  ExpectRefused(As("root", {"agents", "resume", "sales-bot"}), 5);  // no active owner
  ASSERT_EQ(As("root", {"operator", "enable", "alice"}).exit_code, 0);
  ASSERT_EQ(As("alice", {"agents", "resume", "sales-bot"}).exit_code, 0);
  Cli table = Run({"--config", (dir_ / "dave.toml").string(), "inventory"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_NE(table.out.find("single_owner"), std::string::npos) << table;  // alice is its only active owner now
  Cli csv = Run({"--config", (dir_ / "dave.toml").string(), "--output", "csv", "agents", "list"});
  ASSERT_EQ(csv.exit_code, 0) << csv;
  EXPECT_NE(csv.out.find("sales-bot"), std::string::npos) << csv;

  // ---- Revocation.
  ExpectRefused(As("dave", {"revoke", "--agent", "sales-bot"}), 4);
  ASSERT_EQ(As("alice", {"revoke", "--agent", "sales-bot"}).exit_code, 0);  // an owner, for their agent
  ExpectRefused(As("root", {"revoke", "--jti", "no-such-token"}), 3);
  ExpectRefused(As("root", {"revoke", "--agent", "sales-bot", "--host", host}), 2);
  ASSERT_EQ(As("root", {"revoke", "--host", host}).exit_code, 0);

  // ---- Operator certificates: revoked at once; a new one works.
  ASSERT_EQ(As("root", {"operator", "revoke-cert", "bob"}).exit_code, 0);
  ExpectRefused(As("bob", {"operator", "whoami"}), 4);
  Issue("bob", dir_ / "creds-2");
  WriteConfig("bob", dir_ / "creds-2");
  ExpectRefused(As("bob", {"operator", "whoami"}), 4);  // not registered yet
  ASSERT_EQ(As("root", {"operator", "set-cert", "bob", "--cert", (dir_ / "creds-2" / "bob.crt").string()}).exit_code, 0);
  EXPECT_EQ(As("bob", {"operator", "whoami"}).exit_code, 0);

  // ---- Retire; hosts revoke.
  ASSERT_EQ(As("alice", {"agents", "retire", "sales-bot", "--reason", "replaced"}).exit_code, 0);
  ExpectRefused(As("alice", {"agents", "resume", "sales-bot"}), 5);  // retired is final
  ExpectRefused(As("alice", {"hosts", "revoke", host}), 4);
  ASSERT_EQ(As("root", {"hosts", "revoke", host}).exit_code, 0);
  EXPECT_EQ(As("dave", {"hosts", "list", "--status", "revoked"}).json()["hosts"].size(), 1u);

  // ---- Audit: export (auditor only), verify offline, tamper.
  const fs::path exported = dir_ / "audit.jsonl";
  ExpectRefused(As("alice", {"audit", "export", "--out", (dir_ / "nope.jsonl").string()}), 4);
  Cli export_run = As("dave", {"audit", "export", "--out", exported.string()});
  ASSERT_EQ(export_run.exit_code, 0) << export_run;
  Cli verified = Run({"audit", "verify", exported.string()});
  ASSERT_EQ(verified.exit_code, 0) << verified;
  // Who did what: each change names its operator.
  std::set<std::pair<std::string, std::string>> done;  // (actor, action) of allowed changes
  std::istringstream lines(e2e::ReadTextFile(exported));
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) {
    all.push_back(line);
    Json record = Json::parse(line);
    if (record["decision"] == "allow") done.emplace(record["actor"], record["action"]);
  }
  for (auto expected : std::vector<std::pair<std::string, std::string>>{
           {"root", "operator.create"}, {"root", "trust_anchor.add"}, {"root", "trust_anchor.remove"},
           {"root", "host.approve"}, {"alice", "agent.create"}, {"alice", "agent.update"},
           {"bob", "manifest.review"}, {"alice", "jit.request"}, {"bob", "jit.approve"}, {"root", "jit.reject"},
           {"erin", "agent.suspend"}, {"root", "operator.disable"}, {"alice", "agent.resume"},
           {"root", "operator.roles"}, {"root", "operator.certificate_revoke"}, {"root", "operator.certificate_set"}, {"alice", "agent.retire"},
           {"root", "host.revoke"}, {"alice", "agent.revoke_tokens"}}) {
    EXPECT_TRUE(done.count(expected)) << expected.first << " " << expected.second;
  }
  // Refusals are recorded too.
  EXPECT_NE(e2e::ReadTextFile(exported).find("\"reviewer_is_owner\""), std::string::npos);
  // One changed record: verification fails and names it.
  ASSERT_GT(all.size(), 10u);
  std::string tampered;
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string line = all[i];
    if (i == 9) {
      std::size_t at = line.find("\"actor\":\"");
      ASSERT_NE(at, std::string::npos);
      line.insert(at + 9, "x");
    }
    tampered += line + "\n";
  }
  ASSERT_TRUE(e2e::WriteFile(dir_ / "tampered.jsonl", tampered).ok());
  Cli broken = Run({"audit", "verify", (dir_ / "tampered.jsonl").string()});
  EXPECT_EQ(broken.exit_code, 7) << broken;
  EXPECT_NE((broken.out + broken.err).find("line 10"), std::string::npos) << broken;
}

}  // namespace
}  // namespace agentroot
