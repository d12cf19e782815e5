#include "testing/store_test_suite.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/signer.h"
#include "migrations.h"
#include "sql_connection.h"

namespace agentroot::attestation::store::testing {

using common::Bytes;
using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;

#define AR_ASSERT_OK(expr)                                    \
  do {                                                        \
    const ::agentroot::common::Status ar_s_ = (expr);         \
    ASSERT_TRUE(ar_s_.ok()) << #expr << ": " << ar_s_.ToString(); \
  } while (false)

#define AR_EXPECT_CODE(expr, code_value)                                             \
  do {                                                                               \
    const ::agentroot::common::Status ar_s_ = (expr);                                \
    EXPECT_EQ(ar_s_.code(), (code_value)) << #expr << ": " << ar_s_.ToString();      \
  } while (false)

std::string BackendName(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

namespace {

constexpr char kTrustDomain[] = "spiffe://example.org/agent/";

Result<std::unique_ptr<internal::SqlConnection>> OpenRaw(const std::string& uri) {
  if (uri.starts_with("sqlite:")) return internal::OpenSqliteConnection(uri.substr(7));
  return internal::OpenPostgresConnection(uri);
}

Bytes Fill(std::size_t n, uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i);
  return b;
}

Host MakeHost(const std::string& id, uint8_t seed) {
  Host h;
  h.id = id;
  h.ek_public = Fill(90, seed);
  h.ek_certificate = Fill(300, static_cast<uint8_t>(seed + 1));
  h.ak_public = Fill(88, static_cast<uint8_t>(seed + 2));
  h.ak_name = Fill(34, static_cast<uint8_t>(seed + 3));
  h.host_group = "web";
  return h;
}

Operator MakeOperator(const std::string& id, std::vector<Role> roles) {
  Operator op;
  op.id = id;
  op.display_name = "Person " + id;
  op.roles = std::move(roles);
  op.client_cert_fingerprint = "sha256:" + id;
  return op;
}

Agent MakeAgent(const std::string& name, std::vector<std::string> owners, const std::string& host) {
  Agent a;
  a.id = kTrustDomain + name;
  a.name = name;
  a.host_id = host;
  a.allowed_scopes = {"crm.read", "crm.write"};
  a.allowed_audiences = {"https://crm.example.org"};
  a.max_token_ttl_seconds = 300;
  a.expires_at = 1'800'000'000;
  a.owners = std::move(owners);
  return a;
}

TokenRecord MakeToken(const std::string& jti, const std::string& request, const std::string& agent,
                      const std::string& host, int64_t now) {
  TokenRecord t;
  t.jti = jti;
  t.request_id = request;
  t.agent_id = agent;
  t.host_id = host;
  t.cnf_jkt = "jkt-" + jti;
  t.scope = "crm.read";
  t.audience = "https://crm.example.org";
  t.issued_at = now;
  t.expires_at = now + 300;
  return t;
}

AuditRecord Audit(const std::string& action, const std::string& subject,
                  AuditDecision decision = AuditDecision::kInfo) {
  AuditRecord r;
  r.actor = "verifier";
  r.action = action;
  r.subject = subject;
  r.decision = decision;
  r.reasons = {"test"};
  r.details = Json{{"n", 1}};
  return r;
}

std::vector<std::string> SplitLines(const std::string& jsonl) {
  std::vector<std::string> lines;
  std::istringstream in(jsonl);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// Sets up one host, one owner and one agent; returns the agent id.
void Seed(Store& store, std::string* agent_id, std::string* host_id) {
  ASSERT_TRUE(store.CreateHost(MakeHost("host-1", 1), nullptr).ok());
  AR_ASSERT_OK(store.CreateOperator(MakeOperator("alice", {Role::kOwner}), nullptr));
  Agent agent = MakeAgent("crm-bot", {"alice"}, "host-1");
  AR_ASSERT_OK(store.CreateAgent(agent, nullptr));
  *agent_id = agent.id;
  *host_id = "host-1";
}

}  // namespace

void StoreConformanceTest::SetUp() {
  auto db = GetParam().create();
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  db_ = std::move(db).value();
  auto store = Store::Open(db_->uri(), clock_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(store).value();
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  db_.reset();
}

std::unique_ptr<Store> StoreConformanceTest::OpenAnother() {
  auto store = Store::Open(db_->uri(), clock_);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// ---- migrations ------------------------------------------------------------------

TEST_P(StoreConformanceTest, OpenMigratesToLatestAndIsIdempotent) {
  auto version = store_->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(*version, Store::LatestSchemaVersion());
  EXPECT_EQ(store_->backend(), GetParam().name == "Sqlite" ? "sqlite" : "postgresql");

  for (int i = 0; i < 3; ++i) {
    auto again = OpenAnother();
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->SchemaVersion().value_or(-1), Store::LatestSchemaVersion());
  }
  auto raw = OpenRaw(db_->uri());
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto rows = (*raw)->Exec("SELECT version FROM schema_migrations ORDER BY version", {});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->rows.size(), static_cast<std::size_t>(Store::LatestSchemaVersion()));
  for (std::size_t i = 0; i < rows->rows.size(); ++i) {
    EXPECT_EQ(rows->rows[i].Int(0), static_cast<int64_t>(i + 1));
  }
}

TEST_P(StoreConformanceTest, MigratesForwardFromAnOlderSchema) {
  store_.reset();
  db_.reset();
  auto db = GetParam().create();
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  db_ = std::move(db).value();
  {
    auto raw = OpenRaw(db_->uri());
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    AR_ASSERT_OK(internal::Migrate(**raw, 1, /*target=*/1));
    EXPECT_EQ(internal::CurrentVersion(**raw).value_or(-1), 1);
    // Version 1 has no replay cache yet.
    EXPECT_FALSE((*raw)->Exec("SELECT jti FROM proof_jtis", {}).ok());
  }
  auto store = Store::Open(db_->uri(), clock_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->SchemaVersion().value_or(-1), Store::LatestSchemaVersion());
  AR_EXPECT_CODE((*store)->RecordProofJti("j", 10), StatusCode::kOk);
}

TEST_P(StoreConformanceTest, RefusesADatabaseNewerThanTheCode) {
  {
    auto raw = OpenRaw(db_->uri());
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    AR_ASSERT_OK((*raw)->Exec("INSERT INTO schema_migrations (version, description, applied_at) "
                              "VALUES ($1, $2, $3)",
                              {int64_t{999}, "from the future", int64_t{0}})
                     .status());
  }
  auto store = Store::Open(db_->uri(), clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("999 is newer"), std::string::npos)
      << store.status().ToString();
}

TEST_P(StoreConformanceTest, ConcurrentOpensOfAFreshDatabaseMigrateOnce) {
  store_.reset();
  db_.reset();
  auto db = GetParam().create();
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  db_ = std::move(db).value();
  constexpr int kOpeners = 4;
  std::vector<Status> results(kOpeners);
  std::vector<std::thread> threads;
  std::barrier start(kOpeners);
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = Store::Open(db_->uri(), clock_).status();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  auto raw = OpenRaw(db_->uri());
  ASSERT_TRUE(raw.ok());
  auto rows = (*raw)->Exec("SELECT COUNT(*) FROM schema_migrations", {});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->rows[0].Int(0), Store::LatestSchemaVersion());
}

TEST_P(StoreConformanceTest, RejectsUnknownUriSchemes) {
  AR_EXPECT_CODE(Store::Open("mysql://x", clock_).status(), StatusCode::kInvalidArgument);
  AR_EXPECT_CODE(Store::Open("sqlite:", clock_).status(), StatusCode::kInvalidArgument);
  AR_EXPECT_CODE(Store::Open("sqlite::memory:", clock_).status(), StatusCode::kInvalidArgument);
}

// ---- hosts ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, HostLifecycle) {
  Host host = MakeHost("host-1", 1);
  auto created = store_->CreateHost(host, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->status, HostStatus::kPending);
  EXPECT_EQ(created->enrolled_at, 1'700'000'000);
  EXPECT_EQ(created->ek_public_sha256, common::Sha256(host.ek_public));

  auto got = store_->GetHost("host-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->ek_public, host.ek_public);
  EXPECT_EQ(got->ek_certificate, host.ek_certificate);
  EXPECT_EQ(got->ak_public, host.ak_public);
  EXPECT_EQ(got->ak_name, host.ak_name);
  EXPECT_EQ(got->host_group, "web");
  EXPECT_EQ(got->approved_at, 0);

  auto by_ek = store_->GetHostByEkHash(common::Sha256(host.ek_public));
  ASSERT_TRUE(by_ek.ok());
  EXPECT_EQ(by_ek->id, "host-1");
  AR_EXPECT_CODE(store_->GetHostByEkHash(Bytes(32, 7)).status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->GetHost("nope").status(), StatusCode::kNotFound);

  // The same EK again (another id) and the same id again (another EK).
  Host same_ek = MakeHost("host-2", 1);
  AR_EXPECT_CODE(store_->CreateHost(same_ek, nullptr).status(), StatusCode::kAlreadyExists);
  Host same_id = MakeHost("host-1", 50);
  AR_EXPECT_CODE(store_->CreateHost(same_id, nullptr).status(), StatusCode::kAlreadyExists);
  Host bad_hash = MakeHost("host-3", 60);
  bad_hash.ek_public_sha256 = Bytes(32, 1);
  AR_EXPECT_CODE(store_->CreateHost(bad_hash, nullptr).status(), StatusCode::kInvalidArgument);
  Host empty_ek = MakeHost("host-4", 70);
  empty_ek.ek_public.clear();
  AR_EXPECT_CODE(store_->CreateHost(empty_ek, nullptr).status(), StatusCode::kInvalidArgument);

  clock_.Advance(std::chrono::seconds(10));
  AR_ASSERT_OK(store_->ApproveHost("host-1", "ops-bob", nullptr));
  got = store_->GetHost("host-1");
  EXPECT_EQ(got->status, HostStatus::kApproved);
  EXPECT_EQ(got->approved_by, "ops-bob");
  EXPECT_EQ(got->approved_at, 1'700'000'010);
  AR_EXPECT_CODE(store_->ApproveHost("host-1", "ops-bob", nullptr), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ApproveHost("nope", "ops-bob", nullptr), StatusCode::kNotFound);

  // Re-enrollment with a new AK.
  const Bytes new_ak = Fill(88, 200);
  const Bytes new_name = Fill(34, 201);
  AR_ASSERT_OK(store_->ReplaceAk("host-1", new_ak, new_name, nullptr));
  got = store_->GetHost("host-1");
  EXPECT_EQ(got->ak_public, new_ak);
  EXPECT_EQ(got->ak_name, new_name);
  EXPECT_EQ(got->ak_replaced_at, 1'700'000'010);
  EXPECT_EQ(got->status, HostStatus::kApproved);
  AR_EXPECT_CODE(store_->ReplaceAk("nope", new_ak, new_name, nullptr), StatusCode::kNotFound);

  AR_ASSERT_OK(store_->RevokeHost("host-1", nullptr));
  got = store_->GetHost("host-1");
  EXPECT_EQ(got->status, HostStatus::kRevoked);
  EXPECT_EQ(got->revoked_at, 1'700'000'010);
  AR_EXPECT_CODE(store_->RevokeHost("host-1", nullptr), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ApproveHost("host-1", "ops-bob", nullptr), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ReplaceAk("host-1", new_ak, new_name, nullptr),
                 StatusCode::kFailedPrecondition);

  ASSERT_TRUE(store_->CreateHost(MakeHost("host-0", 90), nullptr).ok());
  auto list = store_->ListHosts();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "host-0");
  EXPECT_EQ((*list)[1].id, "host-1");
}

// ---- operators -------------------------------------------------------------------------

TEST_P(StoreConformanceTest, OperatorLifecycle) {
  Operator op = MakeOperator("alice", {Role::kReviewer, Role::kOwner, Role::kReviewer});
  AR_ASSERT_OK(store_->CreateOperator(op, nullptr));
  auto got = store_->GetOperator("alice");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->display_name, "Person alice");
  EXPECT_EQ(got->roles, (std::vector<Role>{Role::kOwner, Role::kReviewer}));
  EXPECT_EQ(got->status, OperatorStatus::kActive);
  EXPECT_EQ(got->created_at, 1'700'000'000);

  auto by_cert = store_->GetOperatorByCertFingerprint("sha256:alice");
  ASSERT_TRUE(by_cert.ok());
  EXPECT_EQ(by_cert->id, "alice");
  AR_EXPECT_CODE(store_->GetOperatorByCertFingerprint("sha256:x").status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->GetOperatorByCertFingerprint("").status(), StatusCode::kInvalidArgument);

  AR_EXPECT_CODE(store_->CreateOperator(op, nullptr), StatusCode::kAlreadyExists);
  Operator same_cert = MakeOperator("mallory", {});
  same_cert.client_cert_fingerprint = "sha256:alice";
  AR_EXPECT_CODE(store_->CreateOperator(same_cert, nullptr), StatusCode::kAlreadyExists);
  // Operators without a certificate do not collide on the empty fingerprint.
  Operator no_cert1 = MakeOperator("carol", {Role::kAuditor});
  no_cert1.client_cert_fingerprint.clear();
  Operator no_cert2 = MakeOperator("dave", {Role::kInfra});
  no_cert2.client_cert_fingerprint.clear();
  AR_ASSERT_OK(store_->CreateOperator(no_cert1, nullptr));
  AR_ASSERT_OK(store_->CreateOperator(no_cert2, nullptr));

  AR_ASSERT_OK(store_->SetOperatorStatus("alice", OperatorStatus::kDisabled, nullptr));
  AR_ASSERT_OK(store_->SetOperatorRoles("alice", {Role::kAuditor, Role::kInfra}, nullptr));
  got = store_->GetOperator("alice");
  EXPECT_EQ(got->status, OperatorStatus::kDisabled);
  EXPECT_EQ(got->roles, (std::vector<Role>{Role::kInfra, Role::kAuditor}));
  AR_EXPECT_CODE(store_->SetOperatorStatus("nope", OperatorStatus::kDisabled, nullptr),
                 StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->SetOperatorRoles("nope", {}, nullptr), StatusCode::kNotFound);

  auto list = store_->ListOperators();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].id, "dave");
  EXPECT_TRUE((*list)[2].client_cert_fingerprint.empty());
}

// ---- agents -----------------------------------------------------------------------------

TEST_P(StoreConformanceTest, AgentCrudAndOwners) {
  ASSERT_TRUE(store_->CreateHost(MakeHost("host-1", 1), nullptr).ok());
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("alice", {Role::kOwner}), nullptr));
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("bob", {Role::kOwner}), nullptr));

  Agent agent = MakeAgent("crm-bot", {"bob", "alice"}, "host-1");
  AR_ASSERT_OK(store_->CreateAgent(agent, nullptr));
  AR_EXPECT_CODE(store_->CreateAgent(agent, nullptr), StatusCode::kAlreadyExists);
  auto got = store_->GetAgent(agent.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->name, "crm-bot");
  EXPECT_EQ(got->host_id, "host-1");
  EXPECT_TRUE(got->host_group.empty());
  EXPECT_EQ(got->allowed_scopes, agent.allowed_scopes);
  EXPECT_EQ(got->allowed_audiences, agent.allowed_audiences);
  EXPECT_EQ(got->max_token_ttl_seconds, 300);
  EXPECT_EQ(got->expires_at, 1'800'000'000);
  EXPECT_EQ(got->status, AgentStatus::kActive);
  EXPECT_EQ(got->owners, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(got->created_at, 1'700'000'000);

  // Invalid registrations.
  Agent bad = MakeAgent("x", {"alice"}, "host-1");
  bad.id = "https://example.org/agent/x";
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x", {"alice"}, "host-1");
  bad.id = "spiffe://Example.org/agent/x";
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x", {"alice"}, "host-1");
  bad.name = "y";
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x/y", {"alice"}, "host-1");
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x", {"alice"}, "host-1");
  bad.host_group = "web";
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x", {}, "host-1");
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  bad = MakeAgent("x", {"alice"}, "host-1");
  bad.max_token_ttl_seconds = 0;
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kInvalidArgument);
  // Missing references: nothing half-created.
  bad = MakeAgent("x", {"alice", "nobody"}, "host-1");
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->GetAgent(bad.id).status(), StatusCode::kNotFound);
  bad = MakeAgent("x", {"alice"}, "host-404");
  AR_EXPECT_CODE(store_->CreateAgent(bad, nullptr), StatusCode::kFailedPrecondition);

  // A host-group agent owned by bob only.
  Agent group_agent = MakeAgent("mail-bot", {"bob"}, "");
  group_agent.host_group = "web";
  AR_ASSERT_OK(store_->CreateAgent(group_agent, nullptr));

  // Update: scopes, owners, group instead of host.
  clock_.Advance(std::chrono::seconds(5));
  agent.allowed_scopes = {"crm.read"};
  agent.owners = {"alice"};
  agent.host_id.clear();
  agent.host_group = "crm";
  agent.max_token_ttl_seconds = 120;
  AR_ASSERT_OK(store_->UpdateAgent(agent, nullptr));
  got = store_->GetAgent(agent.id);
  EXPECT_EQ(got->allowed_scopes, (std::vector<std::string>{"crm.read"}));
  EXPECT_EQ(got->owners, (std::vector<std::string>{"alice"}));
  EXPECT_EQ(got->host_group, "crm");
  EXPECT_TRUE(got->host_id.empty());
  EXPECT_EQ(got->max_token_ttl_seconds, 120);
  EXPECT_EQ(got->created_at, 1'700'000'000);
  EXPECT_EQ(got->updated_at, 1'700'000'005);
  Agent ghost = MakeAgent("ghost", {"alice"}, "host-1");
  AR_EXPECT_CODE(store_->UpdateAgent(ghost, nullptr), StatusCode::kNotFound);

  AR_ASSERT_OK(store_->SetAgentStatus(agent.id, AgentStatus::kSuspended, nullptr));
  EXPECT_EQ(store_->GetAgent(agent.id)->status, AgentStatus::kSuspended);
  AR_EXPECT_CODE(store_->SetAgentStatus(ghost.id, AgentStatus::kRetired, nullptr),
                 StatusCode::kNotFound);

  auto by_alice = store_->ListAgentsByOwner("alice");
  ASSERT_TRUE(by_alice.ok());
  ASSERT_EQ(by_alice->size(), 1u);
  EXPECT_EQ((*by_alice)[0].id, agent.id);
  auto by_bob = store_->ListAgentsByOwner("bob");
  ASSERT_TRUE(by_bob.ok());
  ASSERT_EQ(by_bob->size(), 1u);
  EXPECT_EQ((*by_bob)[0].id, group_agent.id);
  EXPECT_EQ((*by_bob)[0].owners, (std::vector<std::string>{"bob"}));
  EXPECT_TRUE(store_->ListAgentsByOwner("nobody")->empty());
  auto all = store_->ListAgents();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);

  // Delete: refused once a manifest refers to it; fine otherwise.
  ASSERT_TRUE(store_->AddManifest(agent.id, Json{{"model_id", "m"}}, nullptr).ok());
  AR_EXPECT_CODE(store_->DeleteAgent(agent.id, nullptr), StatusCode::kFailedPrecondition);
  AR_ASSERT_OK(store_->DeleteAgent(group_agent.id, nullptr));
  AR_EXPECT_CODE(store_->GetAgent(group_agent.id).status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->DeleteAgent(group_agent.id, nullptr), StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListAgentsByOwner("bob")->empty());
}

// ---- manifests --------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ManifestVersionsAndReview) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("rita", {Role::kReviewer}), nullptr));

  const Json content = {{"exe_digest", "sha256:aa"},
                        {"file_digests", {{"config.toml", "sha256:bb"}}},
                        {"model_id", "gpt-x"},
                        {"allowed_tools", {"search", "crm"}}};
  auto v1 = store_->AddManifest(agent_id, content, nullptr);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(*v1, 1);
  auto v2 = store_->AddManifest(agent_id, Json{{"model_id", "gpt-y"}}, nullptr);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  AR_EXPECT_CODE(store_->AddManifest(kTrustDomain + std::string("nobody"), content, nullptr).status(),
                 StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->AddManifest(agent_id, Json::array(), nullptr).status(),
                 StatusCode::kInvalidArgument);

  auto got = store_->GetManifest(agent_id, 1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->content, content);
  EXPECT_EQ(got->status, ManifestStatus::kPending);
  EXPECT_TRUE(got->reviewer_id.empty());
  AR_EXPECT_CODE(store_->GetManifest(agent_id, 9).status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->LatestApprovedManifest(agent_id).status(), StatusCode::kNotFound);

  clock_.Advance(std::chrono::seconds(60));
  AR_ASSERT_OK(store_->ReviewManifest(agent_id, 1, ManifestStatus::kApproved, "rita", "ok", nullptr));
  AR_EXPECT_CODE(store_->ReviewManifest(agent_id, 1, ManifestStatus::kRejected, "rita", "", nullptr),
                 StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ReviewManifest(agent_id, 9, ManifestStatus::kApproved, "rita", "", nullptr),
                 StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->ReviewManifest(agent_id, 2, ManifestStatus::kPending, "rita", "", nullptr),
                 StatusCode::kInvalidArgument);
  AR_EXPECT_CODE(store_->ReviewManifest(agent_id, 2, ManifestStatus::kApproved, "nobody", "", nullptr),
                 StatusCode::kFailedPrecondition);
  AR_ASSERT_OK(
      store_->ReviewManifest(agent_id, 2, ManifestStatus::kRejected, "rita", "no", nullptr));

  got = store_->GetManifest(agent_id, 1);
  EXPECT_EQ(got->status, ManifestStatus::kApproved);
  EXPECT_EQ(got->reviewer_id, "rita");
  EXPECT_EQ(got->reviewed_at, 1'700'000'060);
  EXPECT_EQ(got->comment, "ok");
  auto latest = store_->LatestApprovedManifest(agent_id);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 1);

  auto v3 = store_->AddManifest(agent_id, Json{{"model_id", "gpt-z"}}, nullptr);
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(*v3, 3);
  AR_ASSERT_OK(store_->ReviewManifest(agent_id, 3, ManifestStatus::kApproved, "rita", "", nullptr));
  EXPECT_EQ(store_->LatestApprovedManifest(agent_id)->version, 3);
  auto list = store_->ListManifests(agent_id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[1].status, ManifestStatus::kRejected);
}

TEST_P(StoreConformanceTest, ConcurrentManifestAddsGetDistinctVersions) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  auto other = OpenAnother();
  ASSERT_NE(other, nullptr);
  constexpr int kThreads = 4, kEach = 5;
  std::vector<std::vector<int64_t>> versions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *other;
      for (int i = 0; i < kEach; ++i) {
        auto v = s.AddManifest(agent_id, Json{{"t", t}, {"i", i}}, nullptr);
        EXPECT_TRUE(v.ok()) << v.status().ToString();
        if (v.ok()) versions[t].push_back(*v);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> all;
  for (const auto& v : versions) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(*all.rbegin(), kThreads * kEach);
}

// ---- agent keys ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, AgentKeys) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AgentKey key;
  key.thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
  key.agent_id = agent_id;
  key.host_id = host_id;
  key.public_jwk = Json{{"kty", "EC"}, {"crv", "P-256"}, {"x", "abc"}, {"y", "def"}};
  key.tpm_public = Fill(90, 9);
  AR_ASSERT_OK(store_->AddAgentKey(key, nullptr));
  AR_EXPECT_CODE(store_->AddAgentKey(key, nullptr), StatusCode::kAlreadyExists);

  auto got = store_->GetAgentKey(key.thumbprint);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->agent_id, agent_id);
  EXPECT_EQ(got->host_id, host_id);
  EXPECT_EQ(got->public_jwk, key.public_jwk);
  EXPECT_EQ(got->tpm_public, key.tpm_public);
  EXPECT_EQ(got->certified_at, 1'700'000'000);
  AR_EXPECT_CODE(store_->GetAgentKey("unknown").status(), StatusCode::kNotFound);

  AgentKey priv = key;
  priv.thumbprint = "other";
  priv.public_jwk["d"] = "secret";
  AR_EXPECT_CODE(store_->AddAgentKey(priv, nullptr), StatusCode::kInvalidArgument);
  AgentKey orphan = key;
  orphan.thumbprint = "orphan";
  orphan.host_id = "host-404";
  AR_EXPECT_CODE(store_->AddAgentKey(orphan, nullptr), StatusCode::kFailedPrecondition);

  auto list = store_->ListAgentKeys(agent_id);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

// ---- nonces ---------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, NonceSingleUse) {
  const int64_t now = 1'700'000'000;
  Nonce nonce{"n-1", "attest", common::ToBytes("host-1"), now + 30, 0};
  AR_ASSERT_OK(store_->CreateNonce(nonce));
  AR_EXPECT_CODE(store_->CreateNonce(nonce), StatusCode::kAlreadyExists);

  AR_EXPECT_CODE(store_->ConsumeNonce("n-1", "enroll", now).status(), StatusCode::kNotFound);
  auto bound = store_->ConsumeNonce("n-1", "attest", now);
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  EXPECT_EQ(common::ToString(*bound), "host-1");
  AR_EXPECT_CODE(store_->ConsumeNonce("n-1", "attest", now).status(),
                 StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ConsumeNonce("n-unknown", "attest", now).status(), StatusCode::kNotFound);

  // Expired: at expires_at and after.
  AR_ASSERT_OK(store_->CreateNonce({"n-2", "attest", {}, now + 30, 0}));
  AR_EXPECT_CODE(store_->ConsumeNonce("n-2", "attest", now + 30).status(),
                 StatusCode::kFailedPrecondition);
  // Still single use after a failed early attempt? Not consumed: a valid time works.
  auto ok = store_->ConsumeNonce("n-2", "attest", now + 29);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->empty());

  AR_ASSERT_OK(store_->CreateNonce({"n-3", "attest", {}, now + 100, 0}));
  auto purged = store_->PurgeExpiredNonces(now + 30);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 2);  // n-1 and n-2 (expires_at <= now)
  AR_EXPECT_CODE(store_->ConsumeNonce("n-1", "attest", now).status(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->ConsumeNonce("n-3", "attest", now + 31).ok());
}

TEST_P(StoreConformanceTest, RateWindowCountsAreSharedByStores) {
  const int64_t now = 1'700'000'000;
  std::string agent_id, host_id;
  Seed(*store_, &agent_id, &host_id);
  auto other = OpenAnother();  // a second replica on the same database
  ASSERT_NE(other, nullptr);

  // Challenges: attest and certify nonces bound to the host, consumed or not.
  AR_ASSERT_OK(store_->CreateNonce({"c-1", "attest", common::ToBytes("host-1"), now + 60, 0, now - 70}));  // outside
  AR_ASSERT_OK(store_->CreateNonce({"c-2", "attest", common::ToBytes("host-1"), now + 60, 0, now - 50}));
  AR_ASSERT_OK(other->CreateNonce({"c-3", "certify", common::ToBytes("host-1"), now + 60, 0, now - 10}));
  AR_ASSERT_OK(store_->CreateNonce({"c-4", "attest", common::ToBytes("host-2"), now + 60, 0, now - 10}));  // other host
  AR_ASSERT_OK(store_->CreateNonce({"c-5", "dpop", common::ToBytes("host-1"), now + 60, 0, now - 10}));    // not a challenge
  ASSERT_TRUE(store_->ConsumeNonce("c-2", "attest", now).ok());
  for (Store* s : {store_.get(), other.get()}) {
    auto count = s->CountHostChallengesSince("host-1", now - 60);
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(count->count, 2);
    EXPECT_EQ(count->oldest, now - 50);
  }
  auto none = store_->CountHostChallengesSince("host-9", now - 60);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->count, 0);
  EXPECT_EQ(none->oldest, 0);
  // issued_at defaults to the store's clock.
  AR_ASSERT_OK(store_->CreateNonce({"c-6", "attest", common::ToBytes("host-1"), clock_.NowUnixSeconds() + 60, 0}));
  EXPECT_EQ(store_->CountHostChallengesSince("host-1", clock_.NowUnixSeconds() - 1)->count, 1);

  // Tokens per agent, revoked ones too, from either store.
  AR_ASSERT_OK(store_->IssueToken(MakeToken("t-1", "r-1", agent_id, host_id, now - 61),
                                  Audit("token.issue", agent_id)).status());
  AR_ASSERT_OK(store_->IssueToken(MakeToken("t-2", "r-2", agent_id, host_id, now - 30),
                                  Audit("token.issue", agent_id)).status());
  AR_ASSERT_OK(other->IssueToken(MakeToken("t-3", "r-3", agent_id, host_id, now - 5),
                                 Audit("token.issue", agent_id)).status());
  AR_ASSERT_OK(other->RevokeToken("t-3", nullptr));
  for (Store* s : {store_.get(), other.get()}) {
    auto count = s->CountAgentTokensSince(agent_id, now - 60);
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(count->count, 2);
    EXPECT_EQ(count->oldest, now - 30);
  }
  EXPECT_EQ(store_->CountAgentTokensSince("spiffe://example.org/agent/nobody", now - 60)->count, 0);
}

TEST_P(StoreConformanceTest, NonceConsumedExactlyOnceAcrossThreadsAndStores) {
  auto second = OpenAnother();  // a second "verifier process" on the same database
  ASSERT_NE(second, nullptr);
  constexpr int kThreads = 8;
  constexpr int kNonces = 25;
  const int64_t now = 1'700'000'000;
  for (int n = 0; n < kNonces; ++n) {
    AR_ASSERT_OK(store_->CreateNonce({"race-" + std::to_string(n), "attest", {}, now + 60, 0}));
  }
  std::vector<int> wins(kNonces, 0);
  std::mutex mu;
  std::vector<std::string> unexpected;
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *second;
      for (int n = 0; n < kNonces; ++n) {
        sync.arrive_and_wait();
        auto r = s.ConsumeNonce("race-" + std::to_string(n), "attest", now);
        std::lock_guard<std::mutex> lock(mu);
        if (r.ok()) {
          ++wins[n];
        } else if (r.status().code() != StatusCode::kFailedPrecondition) {
          unexpected.push_back(r.status().ToString());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int n = 0; n < kNonces; ++n) EXPECT_EQ(wins[n], 1) << "nonce " << n;
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
}

// ---- tokens ---------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, PeekNonceReadsAndConsumeNonceAuditedIsOneTransaction) {
  const int64_t now = 1'700'000'000;
  AR_ASSERT_OK(store_->CreateNonce({"pk-1", "attest", common::ToBytes("host-1"), now + 30, 0}));
  // Peek: the same answers as ConsumeNonce, and nothing consumed.
  for (int i = 0; i < 2; ++i) {
    auto peeked = store_->PeekNonce("pk-1", "attest", now);
    ASSERT_TRUE(peeked.ok()) << peeked.status().ToString();
    EXPECT_EQ(common::ToString(*peeked), "host-1");
  }
  AR_EXPECT_CODE(store_->PeekNonce("pk-1", "enroll", now).status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->PeekNonce("pk-unknown", "attest", now).status(), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->PeekNonce("pk-1", "attest", now + 30).status(), StatusCode::kFailedPrecondition);

  // Consumed with its audit record: both written, once.
  auto bound = store_->ConsumeNonceAudited("pk-1", "attest", now, Audit("attest", "host-1", AuditDecision::kAllow));
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  EXPECT_EQ(common::ToString(*bound), "host-1");
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  AR_EXPECT_CODE(store_->PeekNonce("pk-1", "attest", now).status(), StatusCode::kFailedPrecondition);
  // A used, unknown or expired nonce: refused and no audit record.
  AR_EXPECT_CODE(store_->ConsumeNonceAudited("pk-1", "attest", now, Audit("attest", "host-1")).status(),
                 StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->ConsumeNonceAudited("pk-2", "attest", now, Audit("attest", "host-1")).status(),
                 StatusCode::kNotFound);
  AR_ASSERT_OK(store_->CreateNonce({"pk-3", "attest", {}, now + 30, 0}));
  AR_EXPECT_CODE(store_->ConsumeNonceAudited("pk-3", "attest", now + 30, Audit("attest", "h")).status(),
                 StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  // An audit record the chain refuses: the nonce stays unconsumed.
  AuditRecord leaky = Audit("attest", "h");
  leaky.details["token"] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
  AR_EXPECT_CODE(store_->ConsumeNonceAudited("pk-3", "attest", now, leaky).status(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->PeekNonce("pk-3", "attest", now).ok());
  EXPECT_EQ(store_->AuditHead()->seq, 1);
}

TEST_P(StoreConformanceTest, IssueTokenForProofRecordsTheProofInTheSameTransaction) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  const int64_t now = 1'700'000'000;
  EXPECT_FALSE(*store_->ProofJtiRecorded("jkt:p-1"));
  auto issued = store_->IssueTokenForProof(MakeToken("jti-1", "jkt:p-1", agent_id, host_id, now),
                                           Audit("token.issue", agent_id, AuditDecision::kAllow), now - 60, 10,
                                           ProofJti{"jkt:p-1", now + 100});
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  EXPECT_TRUE(issued->created);
  EXPECT_TRUE(*store_->ProofJtiRecorded("jkt:p-1"));
  AR_EXPECT_CODE(store_->RecordProofJti("jkt:p-1", now + 100), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->AuditHead()->seq, 1);

  // The proof again (another request id): refused, nothing written.
  AR_EXPECT_CODE(store_->IssueTokenForProof(MakeToken("jti-2", "jkt:p-1b", agent_id, host_id, now),
                                            Audit("token.issue", agent_id), now - 60, 10,
                                            ProofJti{"jkt:p-1", now + 100})
                     .status(),
                 StatusCode::kAlreadyExists);
  AR_EXPECT_CODE(store_->GetToken("jti-2").status(), StatusCode::kNotFound);
  EXPECT_EQ(store_->AuditHead()->seq, 1);

  // Refused by the rate limit: the proof is not recorded either.
  AR_EXPECT_CODE(store_->IssueTokenForProof(MakeToken("jti-3", "jkt:p-3", agent_id, host_id, now),
                                            Audit("token.issue", agent_id), now - 60, 1,
                                            ProofJti{"jkt:p-3", now + 100})
                     .status(),
                 StatusCode::kResourceExhausted);
  EXPECT_FALSE(*store_->ProofJtiRecorded("jkt:p-3"));
  EXPECT_EQ(store_->AuditHead()->seq, 1);

  // A refusal spends the proof with its audit record; spending a recorded
  // proof again still appends the record.
  auto denied = store_->AppendAuditSpendingProof(Audit("token.issue", agent_id), ProofJti{"jkt:p-3", now + 100});
  ASSERT_TRUE(denied.ok()) << denied.status().ToString();
  EXPECT_EQ(denied->seq, 2);
  EXPECT_TRUE(*store_->ProofJtiRecorded("jkt:p-3"));
  auto again = store_->AppendAuditSpendingProof(Audit("token.issue", agent_id), ProofJti{"jkt:p-3", now + 100});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->seq, 3);
  AR_EXPECT_CODE(store_->AppendAuditSpendingProof(Audit("token.issue", agent_id), ProofJti{"", now}).status(),
                 StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AuditHead()->seq, 3);

  auto exported = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok());
  EXPECT_TRUE(VerifyAuditChain(exported->jsonl, exported->anchor).status.ok());
}

TEST_P(StoreConformanceTest, IssueTokenStoresTokenAndAuditAtomically) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  const int64_t now = 1'700'000'000;
  auto issued = store_->IssueToken(MakeToken("jti-1", "req-1", agent_id, host_id, now),
                                   Audit("token.issue", agent_id, AuditDecision::kAllow));
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  EXPECT_TRUE(issued->created);
  EXPECT_EQ(issued->jti, "jti-1");
  EXPECT_EQ(issued->audit_seq, 1);

  auto token = store_->GetToken("jti-1");
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->request_id, "req-1");
  EXPECT_EQ(token->cnf_jkt, "jkt-jti-1");
  EXPECT_EQ(token->expires_at, now + 300);
  EXPECT_EQ(token->revoked_at, 0);

  // The same request again (a retry with a freshly minted jti): nothing new.
  auto replay = store_->IssueToken(MakeToken("jti-2", "req-1", agent_id, host_id, now),
                                   Audit("token.issue", agent_id, AuditDecision::kAllow));
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_FALSE(replay->created);
  EXPECT_EQ(replay->jti, "jti-1");
  AR_EXPECT_CODE(store_->GetToken("jti-2").status(), StatusCode::kNotFound);
  EXPECT_EQ(store_->AuditHead()->seq, 1);

  // A jti reused by another request is refused, with no audit record.
  AR_EXPECT_CODE(store_->IssueToken(MakeToken("jti-1", "req-2", agent_id, host_id, now),
                                    Audit("token.issue", agent_id))
                     .status(),
                 StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  // An audit record naming another jti, or carrying the token itself.
  AuditRecord wrong = Audit("token.issue", agent_id);
  wrong.details["jti"] = "jti-other";
  AR_EXPECT_CODE(store_->IssueToken(MakeToken("jti-3", "req-3", agent_id, host_id, now), wrong)
                     .status(),
                 StatusCode::kInvalidArgument);
  AuditRecord leaky = Audit("token.issue", agent_id);
  leaky.details["token"] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
  AR_EXPECT_CODE(store_->IssueToken(MakeToken("jti-3", "req-3", agent_id, host_id, now), leaky)
                     .status(),
                 StatusCode::kInvalidArgument);
  AR_EXPECT_CODE(store_->GetToken("jti-3").status(), StatusCode::kNotFound);
  // Unknown agent: the foreign key refuses, no audit record.
  AR_EXPECT_CODE(store_->IssueToken(MakeToken("jti-4", "req-4", kTrustDomain + std::string("x"),
                                              host_id, now),
                                    Audit("token.issue", "x"))
                     .status(),
                 StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AuditHead()->seq, 1);

  // The audit record names the jti.
  auto exported = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok());
  auto lines = SplitLines(exported->jsonl);
  ASSERT_EQ(lines.size(), 1u);
  auto entry = ParseAuditJsonLine(lines[0]);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_EQ(entry->record.details["jti"], "jti-1");
  EXPECT_EQ(entry->record.decision, AuditDecision::kAllow);
}

TEST_P(StoreConformanceTest, IssueTokenOncePerRequestUnderRace) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  auto second = OpenAnother();
  ASSERT_NE(second, nullptr);
  constexpr int kThreads = 8;
  constexpr int kRequests = 10;
  std::barrier sync(kThreads);
  std::mutex mu;
  std::map<int, std::set<std::string>> returned;
  std::map<int, int> created;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *second;
      for (int r = 0; r < kRequests; ++r) {
        sync.arrive_and_wait();
        const std::string jti = "jti-" + std::to_string(r) + "-" + std::to_string(t);
        auto issued = s.IssueToken(
            MakeToken(jti, "req-" + std::to_string(r), agent_id, host_id, 1'700'000'000),
            Audit("token.issue", agent_id, AuditDecision::kAllow));
        std::lock_guard<std::mutex> lock(mu);
        EXPECT_TRUE(issued.ok()) << issued.status().ToString();
        if (!issued.ok()) continue;
        returned[r].insert(issued->jti);
        if (issued->created) ++created[r];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRequests; ++r) {
    EXPECT_EQ(created[r], 1) << "request " << r;
    EXPECT_EQ(returned[r].size(), 1u) << "request " << r;
  }
  EXPECT_EQ(store_->AuditHead()->seq, kRequests);
}

TEST_P(StoreConformanceTest, IssueTokenWithinRateIsExactAcrossStoresUnderRace) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  auto second = OpenAnother();
  ASSERT_NE(second, nullptr);
  const int64_t now = 1'700'000'000;
  // One token from before the window does not count; one inside does.
  AR_ASSERT_OK(store_->IssueToken(MakeToken("old", "req-old", agent_id, host_id, now - 60),
                                  Audit("token.issue", agent_id)).status());
  AR_ASSERT_OK(store_->IssueToken(MakeToken("in", "req-in", agent_id, host_id, now - 59),
                                  Audit("token.issue", agent_id)).status());
  constexpr int kThreads = 8;
  constexpr int kLimit = 5;
  std::barrier sync(kThreads);
  std::atomic<int> created{0}, limited{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *second;
      sync.arrive_and_wait();
      for (int r = 0; r < 2; ++r) {
        const std::string id = std::to_string(t) + "-" + std::to_string(r);
        auto issued = s.IssueTokenWithinRate(MakeToken("jti-" + id, "req-" + id, agent_id, host_id, now),
                                             Audit("token.issue", agent_id), now - 60, kLimit);
        if (issued.ok() && issued->created) {
          ++created;
        } else if (issued.status().code() == StatusCode::kResourceExhausted) {
          ++limited;
        } else {
          ++other;
          ADD_FAILURE() << issued.status().ToString();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), kLimit - 1);  // "in" already counts
  EXPECT_EQ(limited.load(), 2 * kThreads - (kLimit - 1));
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(store_->CountAgentTokensSince(agent_id, now - 60)->count, kLimit);
  // A refusal writes nothing: one audit record per token.
  EXPECT_EQ(store_->AuditHead()->seq, 2 + kLimit - 1);
}

TEST_P(StoreConformanceTest, TokenRevocation) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  ASSERT_TRUE(store_->CreateHost(MakeHost("host-2", 100), nullptr).ok());
  const int64_t now = 1'700'000'000;
  for (int i = 0; i < 5; ++i) {
    const std::string host = i < 3 ? host_id : "host-2";
    ASSERT_TRUE(store_
                    ->IssueToken(MakeToken("t" + std::to_string(i), "r" + std::to_string(i),
                                           agent_id, host, now),
                                 Audit("token.issue", agent_id))
                    .ok());
  }
  clock_.Advance(std::chrono::seconds(7));
  EXPECT_FALSE(store_->IsTokenRevoked("t0").value_or(true));
  AR_ASSERT_OK(store_->RevokeToken("t0", nullptr));
  AR_ASSERT_OK(store_->RevokeToken("t0", nullptr));  // already revoked: fine
  EXPECT_TRUE(store_->IsTokenRevoked("t0").value_or(false));
  EXPECT_EQ(store_->GetToken("t0")->revoked_at, now + 7);
  AR_EXPECT_CODE(store_->RevokeToken("nope", nullptr), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->IsTokenRevoked("nope").status(), StatusCode::kNotFound);

  auto by_host = store_->RevokeHostTokens("host-2", nullptr);
  ASSERT_TRUE(by_host.ok());
  EXPECT_EQ(*by_host, 2);
  EXPECT_TRUE(store_->IsTokenRevoked("t4").value_or(false));
  EXPECT_FALSE(store_->IsTokenRevoked("t1").value_or(true));
  auto by_agent = store_->RevokeAgentTokens(agent_id, nullptr);
  ASSERT_TRUE(by_agent.ok());
  EXPECT_EQ(*by_agent, 2);  // t1, t2: the others were revoked already
  EXPECT_TRUE(store_->IsTokenRevoked("t1").value_or(false));
}

// ---- DPoP proof jtis ----------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ProofJtiReplayCache) {
  AR_ASSERT_OK(store_->RecordProofJti("p-1", 100));
  AR_EXPECT_CODE(store_->RecordProofJti("p-1", 100), StatusCode::kAlreadyExists);
  auto second = OpenAnother();
  ASSERT_NE(second, nullptr);
  AR_EXPECT_CODE(second->RecordProofJti("p-1", 500), StatusCode::kAlreadyExists);
  AR_ASSERT_OK(second->RecordProofJti("p-2", 200));
  AR_EXPECT_CODE(store_->RecordProofJti("p-2", 200), StatusCode::kAlreadyExists);
  AR_EXPECT_CODE(store_->RecordProofJti("", 200), StatusCode::kInvalidArgument);

  auto purged = store_->PurgeExpiredProofJtis(150);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
  AR_EXPECT_CODE(store_->RecordProofJti("p-2", 200), StatusCode::kAlreadyExists);

  // Racing threads on two stores: each jti accepted once.
  constexpr int kThreads = 8;
  std::atomic<int> accepted{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *second;
      for (int i = 0; i < 10; ++i) {
        sync.arrive_and_wait();
        if (s.RecordProofJti("race-" + std::to_string(i), 1000).ok()) ++accepted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 10);
}

TEST_P(StoreConformanceTest, ConcurrentWritersOfOneStoreFailAndSucceedIndependently) {
  // On SQLite these writes share commits (group commit): a refused write in
  // a batch must leave the others, and the audit chain, intact.
  constexpr int kThreads = 8;
  constexpr int kRounds = 15;
  std::atomic<int> proofs{0}, audits{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        sync.arrive_and_wait();
        // Every thread tries the same jti with its refusal record: one wins.
        if (store_->RecordProofJti("dup-" + std::to_string(i), 1000).ok()) ++proofs;
        if (t % 2 == 0) {
          if (store_->AppendAudit(Audit("test.append", "t" + std::to_string(t))).ok()) ++audits;
        } else {
          AuditRecord leaky = Audit("test.append", "t");
          leaky.details["token"] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
          EXPECT_FALSE(store_->AppendAudit(leaky).ok());
          if (store_->AppendAuditSpendingProof(Audit("test.spend", "t"), ProofJti{"dup-" + std::to_string(i), 1000})
                  .ok()) {
            ++audits;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(proofs.load(), kRounds);
  EXPECT_EQ(audits.load(), kThreads * kRounds);
  EXPECT_EQ(store_->AuditHead()->seq, kThreads * kRounds);
  auto exported = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok());
  EXPECT_TRUE(VerifyAuditChain(exported->jsonl).status.ok());
}

// ---- audit --------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, AuditChainExportsAndVerifies) {
  constexpr int kRecords = 10;
  for (int i = 0; i < kRecords; ++i) {
    auto e = store_->AppendAudit(Audit("admin.change", "thing-" + std::to_string(i)));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->seq, i + 1);
    EXPECT_EQ(e->ts, clock_.NowUnixSeconds());
    clock_.Advance(std::chrono::seconds(10));
  }
  auto head = store_->AuditHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, kRecords);

  auto all = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->anchor.seq, 0);
  AuditChainReport report = VerifyAuditChain(all->jsonl);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.records_verified, kRecords);
  EXPECT_EQ(report.head.seq, head->seq);
  EXPECT_EQ(report.head.hash, head->hash);

  // Records 4..6 (ts 1'700'000'030 .. '050).
  auto range = store_->ExportAudit(1'700'000'030, 1'700'000'060);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(SplitLines(range->jsonl).size(), 3u);
  EXPECT_EQ(range->anchor.seq, 3);
  report = VerifyAuditChain(range->jsonl, range->anchor);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.head.seq, 6);
  // Without its anchor the range does not pass as a whole log.
  report = VerifyAuditChain(range->jsonl);
  EXPECT_FALSE(report.status.ok());
  EXPECT_EQ(report.first_bad_seq, 4);
  // The next export continues from the previous head.
  auto rest = store_->ExportAudit(1'700'000'060, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(rest.ok());
  report = VerifyAuditChain(rest->jsonl, VerifyAuditChain(range->jsonl, range->anchor).head);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.records_verified, 4);

  auto none = store_->ExportAudit(2'000'000'000, 2'000'000'100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->jsonl.empty());
}

TEST_P(StoreConformanceTest, AuditChainDetectsTampering) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store_->AppendAudit(Audit("admin.change", "thing-" + std::to_string(i))).ok());
  }
  auto exported = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok());
  const std::vector<std::string> lines = SplitLines(exported->jsonl);
  ASSERT_EQ(lines.size(), 6u);

  auto check = [](const std::vector<std::string>& tampered, std::size_t line, int64_t seq) {
    AuditChainReport r = VerifyAuditChain(JoinLines(tampered));
    EXPECT_EQ(r.status.code(), StatusCode::kDataLoss) << r.status.ToString();
    EXPECT_EQ(r.first_bad_line, line) << r.status.ToString();
    EXPECT_EQ(r.first_bad_seq, seq) << r.status.ToString();
    EXPECT_EQ(r.records_verified, static_cast<int64_t>(line - 1));
  };

  // Changed: one field of record 3.
  {
    auto t = lines;
    Json j = Json::parse(t[2]);
    j["subject"] = "someone-else";
    t[2] = j.dump();
    check(t, 3, 3);
  }
  // Changed and re-hashed: record 3 verifies alone, record 4 no longer links.
  {
    auto t = lines;
    auto entry = ParseAuditJsonLine(t[2]);
    ASSERT_TRUE(entry.ok());
    entry->record.decision = AuditDecision::kAllow;
    entry->hash = ComputeAuditHash(entry->prev_hash, CanonicalAuditBody(*entry).value());
    t[2] = AuditEntryToJsonLine(*entry).value();
    check(t, 4, 4);
  }
  // Removed: record 3.
  {
    auto t = lines;
    t.erase(t.begin() + 2);
    check(t, 3, 4);
  }
  // Removed: the first record.
  {
    auto t = lines;
    t.erase(t.begin());
    check(t, 1, 2);
  }
  // Reordered: records 3 and 4 swapped.
  {
    auto t = lines;
    std::swap(t[2], t[3]);
    check(t, 3, 4);
  }
  // Inserted, well-formed and correctly hashed after record 2: the original
  // record 3 no longer follows.
  {
    auto t = lines;
    auto prev = ParseAuditJsonLine(t[1]);
    ASSERT_TRUE(prev.ok());
    AuditEntry forged;
    forged.seq = 3;
    forged.ts = prev->ts;
    forged.record = Audit("host.approve", "evil-host", AuditDecision::kAllow);
    forged.prev_hash = prev->hash;
    forged.hash = ComputeAuditHash(forged.prev_hash, CanonicalAuditBody(forged).value());
    t.insert(t.begin() + 2, AuditEntryToJsonLine(forged).value());
    check(t, 4, 3);
  }
  // Inserted junk / truncated line.
  {
    auto t = lines;
    t.insert(t.begin() + 1, "{\"seq\":2}");
    check(t, 2, 2);
    t = lines;
    t[4] = t[4].substr(0, t[4].size() / 2);
    check(t, 5, -1);
  }
  // An extra member is a change.
  {
    auto t = lines;
    Json j = Json::parse(t[0]);
    j["note"] = "x";
    t[0] = j.dump();
    check(t, 1, 1);
  }
  // Untampered, with and without the final newline.
  EXPECT_TRUE(VerifyAuditChain(JoinLines(lines)).status.ok());
  std::string no_newline = JoinLines(lines);
  no_newline.pop_back();
  EXPECT_TRUE(VerifyAuditChain(no_newline).status.ok());
}

TEST_P(StoreConformanceTest, AuditLogIsAppendOnlyInTheDatabase) {
  ASSERT_TRUE(store_->AppendAudit(Audit("admin.change", "x")).ok());
  auto raw = OpenRaw(db_->uri());
  ASSERT_TRUE(raw.ok());
  Status update = (*raw)->Exec("UPDATE audit_log SET actor = $1", {"mallory"}).status();
  EXPECT_FALSE(update.ok());
  EXPECT_NE(update.message().find("append-only"), std::string::npos) << update.ToString();
  Status del = (*raw)->Exec("DELETE FROM audit_log", {}).status();
  EXPECT_FALSE(del.ok());
  EXPECT_TRUE(VerifyAuditChain(store_->ExportAudit(0, 1LL << 62)->jsonl).status.ok());
}

TEST_P(StoreConformanceTest, AuditRejectsSecretsAndMalformedRecords) {
  AuditRecord r = Audit("token.issue", "x");
  r.details["token"] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  r = Audit("key.add", "x");
  r.details["key"] = Json{{"kty", "EC"}, {"d", "c2VjcmV0"}};
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  r = Audit("login", "x");
  r.details["password"] = "hunter2";
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  r = Audit("x", "x");
  r.actor.clear();
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  r = Audit("x", "x");
  r.details = Json::array();
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  r = Audit("x", "x");
  r.details["bad"] = std::string("\xff\xfe");
  AR_EXPECT_CODE(store_->AppendAudit(r).status(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AuditHead()->seq, 0);
  // Unicode and numbers survive the round trip and the canonical hash.
  r = Audit("x", "h\xc3\xa9llo \xe2\x9c\x93");
  r.details = Json{{"z", -5}, {"a", 1.5}, {"m", {{"b", true}, {"a", nullptr}}}};
  ASSERT_TRUE(store_->AppendAudit(r).ok());
  auto exported = store_->ExportAudit(0, 1LL << 62);
  ASSERT_TRUE(exported.ok());
  AuditChainReport report = VerifyAuditChain(exported->jsonl);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
}

TEST_P(StoreConformanceTest, MutationsAppendTheirAuditRecordInTheSameTransaction) {
  ASSERT_TRUE(store_->CreateHost(MakeHost("host-1", 1), nullptr).ok());
  AuditRecord approve = Audit("host.approve", "host-1", AuditDecision::kAllow);
  approve.actor = "ops-bob";
  AR_ASSERT_OK(store_->ApproveHost("host-1", "ops-bob", &approve));
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  // A refused change leaves no audit record of itself.
  AR_EXPECT_CODE(store_->ApproveHost("host-1", "ops-bob", &approve), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  // A bad audit record refuses the change.
  AuditRecord bad = Audit("host.revoke", "host-1");
  bad.action.clear();
  AR_EXPECT_CODE(store_->RevokeHost("host-1", &bad), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetHost("host-1")->status, HostStatus::kApproved);
  AuditRecord revoke = Audit("host.revoke", "host-1");
  AR_ASSERT_OK(store_->RevokeHost("host-1", &revoke));
  EXPECT_EQ(store_->AuditHead()->seq, 2);
}

TEST_P(StoreConformanceTest, ConcurrentAppendsFromTwoStoresKeepOneChain) {
  auto second = OpenAnother();
  ASSERT_NE(second, nullptr);
  constexpr int kThreads = 8;
  constexpr int kEach = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *second;
      for (int i = 0; i < kEach; ++i) {
        if (!s.AppendAudit(Audit("load", std::to_string(t) + "-" + std::to_string(i))).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto exported = store_->ExportAudit(0, 1LL << 62);
  ASSERT_TRUE(exported.ok());
  AuditChainReport report = VerifyAuditChain(exported->jsonl);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.records_verified, kThreads * kEach);
}

// ---- crash safety (THREATS #14, #15) -------------------------------------------------------------

namespace {

constexpr int kCrashNonces = 400;

void WriteReport(int fd, const std::string& line) {
  const std::string text = line + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());  // < PIPE_BUF: atomic
  (void)n;
}

// The child: a "verifier" consuming nonces, issuing tokens and appending
// audit records as fast as it can. A line on `fd` means "returned to the
// client". Never returns.
[[noreturn]] void CrashChild(pid_t parent, const std::string& uri, int round, int fd,
                             const std::string& agent_id, const std::string& host_id) {
  // Dies with the test process, even if the test itself is killed.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(3);
  common::FakeClock clock(1'700'000'000 + round);
  auto store = Store::Open(uri, clock);
  if (!store.ok()) ::_exit(2);
  for (int i = 0;; ++i) {
    const std::string nonce = "crash-" + std::to_string((i * 7 + round * 131) % kCrashNonces);
    if ((*store)->ConsumeNonce(nonce, "attest", 1'700'000'000).ok()) WriteReport(fd, "N " + nonce);
    const std::string id = std::to_string(round) + "-" + std::to_string(i);
    AuditRecord audit = Audit("token.issue", agent_id, AuditDecision::kAllow);
    auto issued = (*store)->IssueToken(
        MakeToken("jti-" + id, "req-" + id, agent_id, host_id, 1'700'000'000), audit);
    if (issued.ok() && issued->created) WriteReport(fd, "T " + issued->jti);
    if ((*store)->AppendAudit(Audit("attest.deny", agent_id, AuditDecision::kDeny)).ok()) {
      WriteReport(fd, "A");
    }
  }
}

void Drain(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out->append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;  // EAGAIN or EOF
    }
  }
}

}  // namespace

TEST_P(StoreConformanceTest, SigkillMidWriteLosesNoReturnedTokenAndNoNonceTwice) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  for (int n = 0; n < kCrashNonces; ++n) {
    AR_ASSERT_OK(store_->CreateNonce(
        {"crash-" + std::to_string(n), "attest", {}, 1'700'000'000 + 3600, 0}));
  }
  // No connection crosses fork().
  store_.reset();

  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(60, 400);
  std::string reports;
  constexpr int kRounds = 10;
  const pid_t parent = ::getpid();
  for (int round = 0; round < kRounds; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      CrashChild(parent, db_->uri(), round, fds[1], agent_id, host_id);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      ::poll(&p, 1, 10);
      Drain(fds[0], &reports);
    }
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child exited early with status " << status;
    Drain(fds[0], &reports);
  }
  ::close(fds[1]);
  Drain(fds[0], &reports);
  ::close(fds[0]);

  // Restart the "verifier".
  auto reopened = Store::Open(db_->uri(), clock_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(reopened).value();

  std::set<std::string> returned_tokens;
  std::multiset<std::string> accepted_nonces;
  int audits = 0;
  std::istringstream in(reports);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("T ")) returned_tokens.insert(line.substr(2));
    if (line.starts_with("N ")) accepted_nonces.insert(line.substr(2));
    if (line == "A") ++audits;
  }
  EXPECT_GT(returned_tokens.size(), 0u) << "the children made no progress";
  EXPECT_GT(audits, 0);
  for (const std::string& n : accepted_nonces) {
    EXPECT_EQ(accepted_nonces.count(n), 1u) << "nonce accepted twice: " << n;
  }

  auto exported = store_->ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  AuditChainReport report = VerifyAuditChain(exported->jsonl);
  ASSERT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_GE(report.records_verified, static_cast<int64_t>(returned_tokens.size()) + audits);

  std::set<std::string> audited_jtis;
  for (const std::string& line : SplitLines(exported->jsonl)) {
    auto entry = ParseAuditJsonLine(line);
    ASSERT_TRUE(entry.ok());
    if (entry->record.action == "token.issue") {
      audited_jtis.insert(entry->record.details["jti"].get<std::string>());
    }
  }
  // Every token handed out is stored and audited ...
  for (const std::string& jti : returned_tokens) {
    EXPECT_TRUE(store_->GetToken(jti).ok()) << "returned token missing from the store: " << jti;
    EXPECT_TRUE(audited_jtis.count(jti)) << "returned token missing from the audit log: " << jti;
  }
  // ... and every stored token has its audit record (and vice versa).
  auto raw = OpenRaw(db_->uri());
  ASSERT_TRUE(raw.ok());
  auto rows = (*raw)->Exec("SELECT jti FROM issued_tokens", {});
  ASSERT_TRUE(rows.ok());
  std::set<std::string> stored;
  for (const auto& row : rows->rows) stored.insert(row.Text(0));
  EXPECT_EQ(stored, audited_jtis);
  RecordProperty("returned_tokens", static_cast<int>(returned_tokens.size()));
  RecordProperty("audit_records", static_cast<int>(report.records_verified));
}


// ---- governance (issue 6) ------------------------------------------------------------------

namespace {

// Issues a token to `agent` on `host` at the store clock's now.
void Issue(Store& store, const std::string& jti, const std::string& agent, const std::string& host,
           int64_t now, const std::string& scope = "crm.read") {
  TokenRecord t = MakeToken(jti, "req-" + jti, agent, host, now);
  t.scope = scope;
  auto issued = store.IssueToken(t, Audit("token.issue", agent, AuditDecision::kAllow));
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  ASSERT_TRUE(issued->created);
}

void ExpectChainVerifies(Store& store, int64_t expected_records) {
  auto exported = store.ExportAudit(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  const AuditChainReport report = VerifyAuditChain(exported->jsonl);
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.records_verified, expected_records);
}

std::vector<std::string> Ids(const std::vector<JitGrant>& grants) {
  std::vector<std::string> ids;
  for (const JitGrant& g : grants) ids.push_back(g.id);
  return ids;
}

JitGrant MakeGrant(const std::string& id, const std::string& agent) {
  JitGrant g;
  g.id = id;
  g.agent_id = agent;
  g.scopes = {"crm.admin", "crm.export"};
  g.reason = "incident 42";
  g.duration_seconds = 3600;
  g.requested_by = "alice";
  return g;
}

}  // namespace

TEST_P(StoreConformanceTest, SetOperatorCertFingerprintReplacesAndClears) {
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("alice", {Role::kOwner}), nullptr));
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("bob", {Role::kOwner}), nullptr));
  AuditRecord audit = Audit("operator.cert", "alice");
  AR_ASSERT_OK(store_->SetOperatorCertFingerprint("alice", "sha256:alice-2", &audit));
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  // The previous certificate is refused from then on.
  AR_EXPECT_CODE(store_->GetOperatorByCertFingerprint("sha256:alice").status(), StatusCode::kNotFound);
  auto by_new = store_->GetOperatorByCertFingerprint("sha256:alice-2");
  ASSERT_TRUE(by_new.ok()) << by_new.status().ToString();
  EXPECT_EQ(by_new->id, "alice");

  AR_EXPECT_CODE(store_->SetOperatorCertFingerprint("bob", "sha256:alice-2", &audit), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetOperator("bob")->client_cert_fingerprint, "sha256:bob");
  AR_EXPECT_CODE(store_->SetOperatorCertFingerprint("nobody", "sha256:x", &audit), StatusCode::kNotFound);
  EXPECT_EQ(store_->AuditHead()->seq, 1);  // refused changes append nothing

  // Cleared: no certificate at all; two cleared operators do not collide.
  AR_ASSERT_OK(store_->SetOperatorCertFingerprint("alice", "", nullptr));
  AR_ASSERT_OK(store_->SetOperatorCertFingerprint("bob", "", nullptr));
  EXPECT_TRUE(store_->GetOperator("alice")->client_cert_fingerprint.empty());
  AR_EXPECT_CODE(store_->GetOperatorByCertFingerprint("sha256:alice-2").status(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, DisableOperatorSuspendsTheAgentsWhoseLastActiveOwnerItWas) {
  ASSERT_TRUE(store_->CreateHost(MakeHost("host-1", 1), nullptr).ok());
  for (const char* id : {"alice", "bob", "carol"}) {
    AR_ASSERT_OK(store_->CreateOperator(MakeOperator(id, {Role::kOwner}), nullptr));
  }
  AR_ASSERT_OK(store_->SetOperatorStatus("carol", OperatorStatus::kDisabled, nullptr));
  const std::string td = kTrustDomain;
  // only-alice: alice's alone; with-bob: bob stays active; with-carol: carol
  // is disabled already; was-suspended, was-retired: not active; bobs: not alice's.
  for (const auto& [name, owners] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"only-alice", {"alice"}},
           {"with-bob", {"alice", "bob"}},
           {"with-carol", {"carol", "alice"}},
           {"was-suspended", {"alice"}},
           {"was-retired", {"alice"}},
           {"bobs", {"bob"}}}) {
    AR_ASSERT_OK(store_->CreateAgent(MakeAgent(name, owners, "host-1"), nullptr));
  }
  const int64_t t0 = clock_.NowUnixSeconds();
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t-only", td + "only-alice", "host-1", t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t-only-2", td + "only-alice", "host-1", t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t-bob", td + "with-bob", "host-1", t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t-carol", td + "with-carol", "host-1", t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t-bobs", td + "bobs", "host-1", t0));
  AR_ASSERT_OK(store_->SetAgentStatus(td + "was-suspended", AgentStatus::kSuspended, nullptr));
  AR_ASSERT_OK(store_->SetAgentStatus(td + "was-retired", AgentStatus::kRetired, nullptr));
  ASSERT_EQ(store_->AuditHead()->seq, 5);

  clock_.Advance(std::chrono::seconds(30));
  AuditRecord audit = Audit("operator.disable", "alice");
  audit.actor = "ops-dora";
  auto suspended = store_->DisableOperator("alice", audit);
  ASSERT_TRUE(suspended.ok()) << suspended.status().ToString();
  EXPECT_EQ(*suspended, (std::vector<std::string>{td + "only-alice", td + "with-carol"}));
  const int64_t t1 = t0 + 30;

  EXPECT_EQ(store_->GetOperator("alice")->status, OperatorStatus::kDisabled);
  auto expect_agent = [&](const std::string& name, AgentStatus status, int64_t updated_at) {
    auto agent = store_->GetAgent(td + name);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    EXPECT_EQ(agent->status, status) << name;
    EXPECT_EQ(agent->updated_at, updated_at) << name;
  };
  expect_agent("only-alice", AgentStatus::kSuspended, t1);
  expect_agent("with-carol", AgentStatus::kSuspended, t1);
  expect_agent("with-bob", AgentStatus::kActive, t0);
  expect_agent("was-suspended", AgentStatus::kSuspended, t0);  // not touched
  expect_agent("was-retired", AgentStatus::kRetired, t0);
  expect_agent("bobs", AgentStatus::kActive, t0);
  EXPECT_EQ(store_->GetToken("t-only")->revoked_at, t1);
  EXPECT_EQ(store_->GetToken("t-only-2")->revoked_at, t1);
  EXPECT_EQ(store_->GetToken("t-carol")->revoked_at, t1);
  EXPECT_FALSE(store_->IsTokenRevoked("t-bob").value_or(true));
  EXPECT_FALSE(store_->IsTokenRevoked("t-bobs").value_or(true));

  // `audit`, then one record per suspended agent, in order; the chain holds.
  auto records = store_->AuditByAction("agent.suspend", 10);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].seq, 8);
  EXPECT_EQ((*records)[0].record.subject, td + "with-carol");
  EXPECT_EQ((*records)[1].seq, 7);
  const AuditRecord& first = (*records)[1].record;
  EXPECT_EQ(first.actor, "ops-dora");
  EXPECT_EQ(first.subject, td + "only-alice");
  EXPECT_EQ(first.decision, AuditDecision::kInfo);
  EXPECT_EQ(first.reasons, (std::vector<std::string>{"no_active_owner"}));
  EXPECT_EQ(first.details, (Json{{"disabled_owner", "alice"}}));
  auto disable = store_->AuditByAction("operator.disable", 10);
  ASSERT_TRUE(disable.ok());
  ASSERT_EQ(disable->size(), 1u);
  EXPECT_EQ((*disable)[0].seq, 6);
  EXPECT_EQ((*disable)[0].record.actor, "ops-dora");
  ASSERT_NO_FATAL_FAILURE(ExpectChainVerifies(*store_, 8));

  // Errors append nothing and change nothing.
  AR_EXPECT_CODE(store_->DisableOperator("alice", audit).status(), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->DisableOperator("nobody", audit).status(), StatusCode::kNotFound);
  AuditRecord bad = audit;
  bad.actor.clear();
  AR_EXPECT_CODE(store_->DisableOperator("bob", bad).status(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetOperator("bob")->status, OperatorStatus::kActive);
  EXPECT_EQ(store_->AuditHead()->seq, 8);

  // Now bob is the last active owner of with-bob (and of bobs).
  auto second = store_->DisableOperator("bob", audit);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, (std::vector<std::string>{td + "bobs", td + "with-bob"}));
  EXPECT_TRUE(store_->IsTokenRevoked("t-bob").value_or(false));
  ASSERT_NO_FATAL_FAILURE(ExpectChainVerifies(*store_, 11));

  // An operator owning nothing: disabled, nothing suspended, one record.
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("erin", {Role::kAuditor}), nullptr));
  auto none = store_->DisableOperator("erin", audit);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(store_->AuditHead()->seq, 12);
}

TEST_P(StoreConformanceTest, SetAgentStatusRevokesTokensAndRetiredIsFinal) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  const int64_t t0 = clock_.NowUnixSeconds();
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t1", agent_id, host_id, t0));
  clock_.Advance(std::chrono::seconds(5));
  AuditRecord audit = Audit("agent.suspend", agent_id);
  AR_ASSERT_OK(store_->SetAgentStatus(agent_id, AgentStatus::kSuspended, &audit));
  EXPECT_EQ(store_->GetToken("t1")->revoked_at, t0 + 5);
  EXPECT_EQ(store_->AuditHead()->seq, 2);

  // UpdateAgent leaves the status alone, whatever the struct says.
  Agent agent = *store_->GetAgent(agent_id);
  agent.status = AgentStatus::kActive;
  agent.allowed_scopes = {"crm.read"};
  AR_ASSERT_OK(store_->UpdateAgent(agent, nullptr));
  EXPECT_EQ(store_->GetAgent(agent_id)->status, AgentStatus::kSuspended);
  EXPECT_EQ(store_->GetAgent(agent_id)->allowed_scopes, (std::vector<std::string>{"crm.read"}));

  // Resumed: tokens issued from then on are not touched by the resume.
  AR_ASSERT_OK(store_->SetAgentStatus(agent_id, AgentStatus::kActive, nullptr));
  EXPECT_EQ(store_->GetAgent(agent_id)->status, AgentStatus::kActive);
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "t2", agent_id, host_id, t0 + 5));
  AR_ASSERT_OK(store_->SetAgentStatus(agent_id, AgentStatus::kActive, nullptr));
  EXPECT_FALSE(store_->IsTokenRevoked("t2").value_or(true));

  clock_.Advance(std::chrono::seconds(5));
  AR_ASSERT_OK(store_->SetAgentStatus(agent_id, AgentStatus::kRetired, nullptr));
  EXPECT_EQ(store_->GetToken("t2")->revoked_at, t0 + 10);
  EXPECT_EQ(store_->GetToken("t1")->revoked_at, t0 + 5);  // the first stamp stays
  const int64_t head = store_->AuditHead()->seq;
  for (AgentStatus status : {AgentStatus::kActive, AgentStatus::kSuspended, AgentStatus::kRetired}) {
    AR_EXPECT_CODE(store_->SetAgentStatus(agent_id, status, &audit), StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(store_->GetAgent(agent_id)->status, AgentStatus::kRetired);
  EXPECT_EQ(store_->GetAgent(agent_id)->updated_at, t0 + 10);
  EXPECT_EQ(store_->AuditHead()->seq, head);
  AR_EXPECT_CODE(store_->SetAgentStatus(kTrustDomain + std::string("ghost"), AgentStatus::kSuspended, nullptr),
                 StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RevokeHostRevokesTheHostsTokens) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  ASSERT_TRUE(store_->CreateHost(MakeHost("host-2", 100), nullptr).ok());
  const int64_t t0 = clock_.NowUnixSeconds();
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "a", agent_id, host_id, t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "b", agent_id, host_id, t0));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "c", agent_id, "host-2", t0));
  AR_ASSERT_OK(store_->RevokeToken("b", nullptr));
  clock_.Advance(std::chrono::seconds(9));
  AuditRecord audit = Audit("host.revoke", host_id);
  AR_ASSERT_OK(store_->RevokeHost(host_id, &audit));
  EXPECT_EQ(store_->GetToken("a")->revoked_at, t0 + 9);
  EXPECT_EQ(store_->GetToken("b")->revoked_at, t0);  // revoked before: unchanged
  EXPECT_FALSE(store_->IsTokenRevoked("c").value_or(true));
  EXPECT_EQ(store_->GetHost(host_id)->status, HostStatus::kRevoked);
  // A refused revocation revokes nothing.
  AR_EXPECT_CODE(store_->RevokeHost("nope", nullptr), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->RevokeHost(host_id, nullptr), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(store_->IsTokenRevoked("c").value_or(true));
}

TEST_P(StoreConformanceTest, TrustAnchors) {
  const std::string pin(64, 'a');
  TrustAnchor ca{"ca-01", TrustAnchorKind::kManufacturerCa,
                 "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "", "CN=Vendor EK CA", "alice"};
  TrustAnchor ek{"ek-" + pin.substr(0, 8), TrustAnchorKind::kEkPin, pin, "lab", "bench host", "alice"};
  TrustAnchor group{"group-web", TrustAnchorKind::kAutoApprove, "", "web", "", "bob"};
  TrustAnchor ca0 = ca;
  ca0.id = "ca-00";
  AuditRecord audit = Audit("trust_anchor.add", "x");
  for (const TrustAnchor* a : {&group, &ek, &ca, &ca0}) AR_ASSERT_OK(store_->AddTrustAnchor(*a, &audit));
  EXPECT_EQ(store_->AuditHead()->seq, 4);

  auto list = store_->ListTrustAnchors();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].id, "ca-00");
  EXPECT_EQ((*list)[1].id, "ca-01");
  EXPECT_EQ((*list)[2].id, ek.id);
  EXPECT_EQ((*list)[3].id, "group-web");
  const TrustAnchor& got_ca = (*list)[1];
  EXPECT_EQ(got_ca.kind, TrustAnchorKind::kManufacturerCa);
  EXPECT_EQ(got_ca.value, ca.value);
  EXPECT_EQ(got_ca.description, "CN=Vendor EK CA");
  EXPECT_EQ(got_ca.created_by, "alice");
  EXPECT_EQ(got_ca.created_at, clock_.NowUnixSeconds());
  EXPECT_EQ((*list)[2].host_group, "lab");
  EXPECT_EQ((*list)[3].kind, TrustAnchorKind::kAutoApprove);
  EXPECT_EQ((*list)[3].host_group, "web");

  AR_EXPECT_CODE(store_->AddTrustAnchor(ca, &audit), StatusCode::kAlreadyExists);
  TrustAnchor bad = group;
  bad.id = "group-none";
  bad.host_group.clear();
  AR_EXPECT_CODE(store_->AddTrustAnchor(bad, &audit), StatusCode::kInvalidArgument);
  bad = ek;
  bad.id = "ek-upper";
  bad.value = std::string(64, 'A');
  AR_EXPECT_CODE(store_->AddTrustAnchor(bad, &audit), StatusCode::kInvalidArgument);
  bad.value = std::string(62, 'a');
  AR_EXPECT_CODE(store_->AddTrustAnchor(bad, &audit), StatusCode::kInvalidArgument);
  bad.value = std::string(63, 'a') + "g";
  AR_EXPECT_CODE(store_->AddTrustAnchor(bad, &audit), StatusCode::kInvalidArgument);
  bad.value = std::string(66, 'a');
  AR_EXPECT_CODE(store_->AddTrustAnchor(bad, &audit), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AuditHead()->seq, 4);

  AR_ASSERT_OK(store_->RemoveTrustAnchor("ca-01", &audit));
  AR_EXPECT_CODE(store_->RemoveTrustAnchor("ca-01", &audit), StatusCode::kNotFound);
  EXPECT_EQ(store_->AuditHead()->seq, 5);
  EXPECT_EQ(store_->ListTrustAnchors()->size(), 3u);

  for (TrustAnchorKind kind : {TrustAnchorKind::kManufacturerCa, TrustAnchorKind::kEkPin, TrustAnchorKind::kAutoApprove}) {
    EXPECT_EQ(ParseTrustAnchorKind(TrustAnchorKindName(kind)).value_or(TrustAnchorKind::kAutoApprove), kind);
  }
  AR_EXPECT_CODE(ParseTrustAnchorKind("ek").status(), StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, JitGrantDecisionsAndRevocations) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AuditRecord audit = Audit("jit.request", agent_id);
  const int64_t t0 = clock_.NowUnixSeconds();
  AR_ASSERT_OK(store_->CreateJitGrant(MakeGrant("g1", agent_id), &audit));
  auto g1 = store_->GetJitGrant("g1");
  ASSERT_TRUE(g1.ok()) << g1.status().ToString();
  EXPECT_EQ(g1->agent_id, agent_id);
  EXPECT_EQ(g1->scopes, (std::vector<std::string>{"crm.admin", "crm.export"}));
  EXPECT_EQ(g1->reason, "incident 42");
  EXPECT_EQ(g1->duration_seconds, 3600);
  EXPECT_EQ(g1->requested_by, "alice");
  EXPECT_EQ(g1->requested_at, t0);
  EXPECT_EQ(g1->status, JitStatus::kPending);
  EXPECT_TRUE(g1->decided_by.empty());
  EXPECT_EQ(g1->expires_at, 0);

  // Refused requests.
  AR_EXPECT_CODE(store_->CreateJitGrant(MakeGrant("g1", agent_id), &audit), StatusCode::kAlreadyExists);
  AR_EXPECT_CODE(store_->CreateJitGrant(MakeGrant("gx", kTrustDomain + std::string("ghost")), &audit),
                 StatusCode::kFailedPrecondition);
  JitGrant bad = MakeGrant("gx", agent_id);
  bad.scopes.clear();
  AR_EXPECT_CODE(store_->CreateJitGrant(bad, &audit), StatusCode::kInvalidArgument);
  bad = MakeGrant("gx", agent_id);
  bad.reason.clear();
  AR_EXPECT_CODE(store_->CreateJitGrant(bad, &audit), StatusCode::kInvalidArgument);
  bad = MakeGrant("gx", agent_id);
  bad.duration_seconds = 0;
  AR_EXPECT_CODE(store_->CreateJitGrant(bad, &audit), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AuditHead()->seq, 1);
  AR_EXPECT_CODE(store_->GetJitGrant("gx").status(), StatusCode::kNotFound);

  clock_.Advance(std::chrono::seconds(10));
  AR_ASSERT_OK(store_->CreateJitGrant(MakeGrant("g2", agent_id), nullptr));
  clock_.Advance(std::chrono::seconds(10));
  AR_ASSERT_OK(store_->CreateJitGrant(MakeGrant("g3", agent_id), nullptr));

  // Decisions: pending -> approved (expiry stored) / rejected (no expiry).
  AR_EXPECT_CODE(store_->DecideJitGrant("g1", JitStatus::kRevoked, "rita", "", t0 + 100, &audit),
                 StatusCode::kInvalidArgument);
  AR_ASSERT_OK(store_->DecideJitGrant("g1", JitStatus::kApproved, "rita", "ok for the incident", t0 + 3620, &audit));
  g1 = store_->GetJitGrant("g1");
  EXPECT_EQ(g1->status, JitStatus::kApproved);
  EXPECT_EQ(g1->decided_by, "rita");
  EXPECT_EQ(g1->decided_at, t0 + 20);
  EXPECT_EQ(g1->comment, "ok for the incident");
  EXPECT_EQ(g1->expires_at, t0 + 3620);
  AR_ASSERT_OK(store_->DecideJitGrant("g2", JitStatus::kRejected, "rita", "no", t0 + 3620, nullptr));
  EXPECT_EQ(store_->GetJitGrant("g2")->status, JitStatus::kRejected);
  EXPECT_EQ(store_->GetJitGrant("g2")->expires_at, 0);
  AR_EXPECT_CODE(store_->DecideJitGrant("g1", JitStatus::kRejected, "rita", "", 0, &audit),
                 StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->DecideJitGrant("g2", JitStatus::kApproved, "rita", "", t0 + 99, &audit),
                 StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->DecideJitGrant("nope", JitStatus::kApproved, "rita", "", t0 + 99, &audit),
                 StatusCode::kNotFound);
  EXPECT_EQ(store_->AuditHead()->seq, 2);

  // Revocation: approved or pending -> revoked, the decision kept.
  clock_.Advance(std::chrono::seconds(10));
  AR_ASSERT_OK(store_->RevokeJitGrant("g1", &audit));
  g1 = store_->GetJitGrant("g1");
  EXPECT_EQ(g1->status, JitStatus::kRevoked);
  EXPECT_EQ(g1->decided_by, "rita");
  EXPECT_EQ(g1->decided_at, t0 + 20);
  EXPECT_EQ(g1->expires_at, t0 + 3620);
  AR_ASSERT_OK(store_->RevokeJitGrant("g3", nullptr));
  EXPECT_EQ(store_->GetJitGrant("g3")->status, JitStatus::kRevoked);
  AR_EXPECT_CODE(store_->RevokeJitGrant("g1", &audit), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->RevokeJitGrant("g2", &audit), StatusCode::kFailedPrecondition);
  AR_EXPECT_CODE(store_->RevokeJitGrant("nope", &audit), StatusCode::kNotFound);
  AR_EXPECT_CODE(store_->DecideJitGrant("g3", JitStatus::kApproved, "rita", "", t0 + 99, &audit),
                 StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AuditHead()->seq, 3);

  // Lists: newest request first; per agent or all.
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("other-bot", {"alice"}, host_id), nullptr));
  clock_.Advance(std::chrono::seconds(10));
  AR_ASSERT_OK(store_->CreateJitGrant(MakeGrant("g4", kTrustDomain + std::string("other-bot")), nullptr));
  EXPECT_EQ(Ids(*store_->ListJitGrants(agent_id)), (std::vector<std::string>{"g3", "g2", "g1"}));
  EXPECT_EQ(Ids(*store_->ListJitGrants("")), (std::vector<std::string>{"g4", "g3", "g2", "g1"}));
  EXPECT_TRUE(store_->ListJitGrants("spiffe://example.org/agent/nobody")->empty());
  // A grant refers to its agent: no delete.
  AR_EXPECT_CODE(store_->DeleteAgent(kTrustDomain + std::string("other-bot"), nullptr),
                 StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, ActiveJitGrantsHonourExpiryAgainstNow) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("other-bot", {"alice"}, host_id), nullptr));
  const std::string other = kTrustDomain + std::string("other-bot");
  const int64_t t = 1'700'001'000;
  for (const char* id : {"short", "long", "pending", "rejected", "revoked", "others"}) {
    AR_ASSERT_OK(store_->CreateJitGrant(MakeGrant(id, std::string(id) == "others" ? other : agent_id), nullptr));
  }
  AR_ASSERT_OK(store_->DecideJitGrant("short", JitStatus::kApproved, "rita", "", t, nullptr));
  AR_ASSERT_OK(store_->DecideJitGrant("long", JitStatus::kApproved, "rita", "", t + 500, nullptr));
  AR_ASSERT_OK(store_->DecideJitGrant("rejected", JitStatus::kRejected, "rita", "", t + 500, nullptr));
  AR_ASSERT_OK(store_->DecideJitGrant("revoked", JitStatus::kApproved, "rita", "", t + 500, nullptr));
  AR_ASSERT_OK(store_->RevokeJitGrant("revoked", nullptr));
  AR_ASSERT_OK(store_->DecideJitGrant("others", JitStatus::kApproved, "rita", "", t + 500, nullptr));

  // `now`, not the store clock, decides; expires_at itself is expired.
  EXPECT_EQ(Ids(*store_->ActiveJitGrants(agent_id, t - 1)), (std::vector<std::string>{"short", "long"}));
  EXPECT_EQ(Ids(*store_->ActiveJitGrants(agent_id, t)), (std::vector<std::string>{"long"}));
  EXPECT_EQ(Ids(*store_->ActiveJitGrants(agent_id, t + 499)), (std::vector<std::string>{"long"}));
  EXPECT_TRUE(store_->ActiveJitGrants(agent_id, t + 500)->empty());
  EXPECT_EQ(Ids(*store_->ActiveJitGrants(other, t)), (std::vector<std::string>{"others"}));
  EXPECT_TRUE(store_->ActiveJitGrants("spiffe://example.org/agent/nobody", t)->empty());
  EXPECT_EQ(store_->ActiveJitGrants(agent_id, t)->at(0).scopes, (std::vector<std::string>{"crm.admin", "crm.export"}));
}

TEST_P(StoreConformanceTest, ListManifestsByStatusIsTheReviewQueue) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AR_ASSERT_OK(store_->CreateOperator(MakeOperator("rita", {Role::kReviewer}), nullptr));
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("a-bot", {"alice"}, host_id), nullptr));
  const std::string a_bot = kTrustDomain + std::string("a-bot");
  ASSERT_TRUE(store_->AddManifest(agent_id, Json{{"model_id", "1"}}, nullptr).ok());  // crm-bot v1
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(store_->AddManifest(a_bot, Json{{"model_id", "2"}}, nullptr).ok());  // a-bot v1
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(store_->AddManifest(agent_id, Json{{"model_id", "3"}}, nullptr).ok());  // crm-bot v2
  AR_ASSERT_OK(store_->ReviewManifest(agent_id, 1, ManifestStatus::kApproved, "rita", "", nullptr));

  auto pending = store_->ListManifestsByStatus(ManifestStatus::kPending);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].agent_id, a_bot);  // oldest first, not by agent id
  EXPECT_EQ((*pending)[1].agent_id, agent_id);
  EXPECT_EQ((*pending)[1].version, 2);
  EXPECT_EQ((*pending)[1].content, (Json{{"model_id", "3"}}));
  auto approved = store_->ListManifestsByStatus(ManifestStatus::kApproved);
  ASSERT_TRUE(approved.ok());
  ASSERT_EQ(approved->size(), 1u);
  EXPECT_EQ((*approved)[0].reviewer_id, "rita");
  EXPECT_TRUE(store_->ListManifestsByStatus(ManifestStatus::kRejected)->empty());
}

TEST_P(StoreConformanceTest, ListManifestsOfEveryAgentInOneRead) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("a-bot", {"alice"}, host_id), nullptr));
  const std::string a_bot = kTrustDomain + std::string("a-bot");
  ASSERT_TRUE(store_->AddManifest(agent_id, Json{{"model_id", "1"}}, nullptr).ok());
  ASSERT_TRUE(store_->AddManifest(a_bot, Json{{"model_id", "2"}}, nullptr).ok());
  ASSERT_TRUE(store_->AddManifest(agent_id, Json{{"model_id", "3"}}, nullptr).ok());
  auto all = store_->ListManifests("");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 3u);
  std::vector<std::pair<std::string, int64_t>> order;
  for (const Manifest& m : *all) order.emplace_back(m.agent_id, m.version);
  auto expected = std::vector<std::pair<std::string, int64_t>>{{a_bot, 1}, {agent_id, 1}, {agent_id, 2}};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(order, expected);
}

TEST_P(StoreConformanceTest, TokenUsageByAgent) {
  std::string agent_id, host_id;
  ASSERT_NO_FATAL_FAILURE(Seed(*store_, &agent_id, &host_id));
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("old-bot", {"alice"}, host_id), nullptr));
  AR_ASSERT_OK(store_->CreateAgent(MakeAgent("idle-bot", {"alice"}, host_id), nullptr));
  const std::string old_bot = kTrustDomain + std::string("old-bot");
  const int64_t t = 1'700'000'000;
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "o1", old_bot, host_id, t - 100, "crm.read"));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "c0", agent_id, host_id, t - 1, "crm.delete"));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "c1", agent_id, host_id, t, "crm.write crm.read"));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "c2", agent_id, host_id, t + 10, "crm.read"));
  ASSERT_NO_FATAL_FAILURE(Issue(*store_, "c3", agent_id, host_id, t + 20, "mail.send crm.read"));
  AR_ASSERT_OK(store_->RevokeToken("c3", nullptr));  // revoked tokens still count

  auto usage = store_->TokenUsageByAgent(t);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  ASSERT_EQ(usage->size(), 2u);  // idle-bot has no token: absent
  const TokenUsage& crm = usage->at(agent_id);
  EXPECT_EQ(crm.last_issued_at, t + 20);
  EXPECT_EQ(crm.tokens_since, 3);  // issued_at >= since
  EXPECT_EQ(crm.scopes_since, (std::vector<std::string>{"crm.read", "crm.write", "mail.send"}));
  const TokenUsage& old = usage->at(old_bot);
  EXPECT_EQ(old.last_issued_at, t - 100);
  EXPECT_EQ(old.tokens_since, 0);
  EXPECT_TRUE(old.scopes_since.empty());

  usage = store_->TokenUsageByAgent(t + 11);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->at(agent_id).tokens_since, 1);
  EXPECT_EQ(usage->at(agent_id).scopes_since, (std::vector<std::string>{"crm.read", "mail.send"}));
}

TEST_P(StoreConformanceTest, AuditReadsByActionSubjectAndActor) {
  // (actor, action, subject, decision), one second apart.
  struct Rec {
    const char* actor;
    const char* action;
    const char* subject;
    AuditDecision decision;
  };
  const Rec recs[] = {
      {"host-1", "attest", "agent-a", AuditDecision::kAllow},  // ts t
      {"host-2", "attest", "agent-b", AuditDecision::kAllow},  // t+1
      {"host-1", "attest", "agent-a", AuditDecision::kAllow},  // t+2
      {"host-2", "attest", "agent-a", AuditDecision::kDeny},   // t+3: deny, not counted as allow
      {"host-1", "token.issue", "agent-c", AuditDecision::kAllow},  // t+4: another action
      {"host-3", "attest", "agent-c", AuditDecision::kDeny},   // t+5
  };
  const int64_t t = clock_.NowUnixSeconds();
  for (const Rec& r : recs) {
    AuditRecord record = Audit(r.action, r.subject, r.decision);
    record.actor = r.actor;
    ASSERT_TRUE(store_->AppendAudit(record).ok());
    clock_.Advance(std::chrono::seconds(1));
  }
  auto by_subject = store_->LatestAuditBySubject("attest", AuditDecision::kAllow);
  ASSERT_TRUE(by_subject.ok()) << by_subject.status().ToString();
  EXPECT_EQ(*by_subject, (std::map<std::string, int64_t>{{"agent-a", t + 2}, {"agent-b", t + 1}}));
  auto denied = store_->LatestAuditBySubject("attest", AuditDecision::kDeny);
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(*denied, (std::map<std::string, int64_t>{{"agent-a", t + 3}, {"agent-c", t + 5}}));
  auto by_actor = store_->LatestAuditByActor("attest", AuditDecision::kAllow);
  ASSERT_TRUE(by_actor.ok()) << by_actor.status().ToString();
  EXPECT_EQ(*by_actor, (std::map<std::string, int64_t>{{"host-1", t + 2}, {"host-2", t + 1}}));
  EXPECT_TRUE(store_->LatestAuditByActor("enroll", AuditDecision::kAllow)->empty());

  auto latest = store_->AuditByAction("attest", 3);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  ASSERT_EQ(latest->size(), 3u);
  EXPECT_EQ((*latest)[0].seq, 6);
  EXPECT_EQ((*latest)[1].seq, 4);
  EXPECT_EQ((*latest)[2].seq, 3);
  EXPECT_EQ((*latest)[0].record.actor, "host-3");
  EXPECT_EQ((*latest)[0].ts, t + 5);
  EXPECT_EQ((*latest)[0].record.details, (Json{{"n", 1}}));
  EXPECT_EQ(store_->AuditByAction("attest", 100)->size(), 5u);
  EXPECT_TRUE(store_->AuditByAction("attest", 0)->empty());
  EXPECT_TRUE(store_->AuditByAction("nothing", 10)->empty());
  auto tokens = store_->AuditByAction("token.issue", std::numeric_limits<std::size_t>::max());
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].seq, 5);
  // The entries carry the chain's hashes as stored.
  auto head = store_->AuditHead();
  EXPECT_EQ((*latest)[0].hash, head->hash);
}

TEST_P(StoreConformanceTest, InventoryAuditReadsUseTheIndexes) {
  // The store's own queries, planned on an empty log: SQLite's EXPLAIN QUERY
  // PLAN; on PostgreSQL (whose planner prefers a scan of a tiny table) with
  // sequential and bitmap scans off, which shows that the index can answer.
  auto raw = OpenRaw(db_->uri());
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  const bool sqlite = (*raw)->dialect() == internal::Dialect::kSqlite;
  if (!sqlite) AR_ASSERT_OK((*raw)->ExecScript("SET enable_seqscan = off; SET enable_bitmapscan = off"));
  auto plan = [&](const std::string& sql) {
    auto rows = (*raw)->Exec((sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ") + sql, {});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::string text;
    if (rows.ok()) {
      for (const auto& row : rows->rows) text += row.Text(sqlite ? 3 : 0) + "\n";
    }
    return text;
  };
  const std::string by_subject =
      plan("SELECT subject, MAX(ts) FROM audit_log WHERE action = 'attest' AND decision = 'allow' GROUP BY subject");
  EXPECT_NE(by_subject.find(sqlite ? "COVERING INDEX audit_log_attest_by_subject" : "Index Only Scan using audit_log_attest_by_subject"),
            std::string::npos)
      << by_subject;
  const std::string by_actor =
      plan("SELECT actor, MAX(ts) FROM audit_log WHERE action = 'attest' AND decision = 'allow' GROUP BY actor");
  EXPECT_NE(by_actor.find(sqlite ? "COVERING INDEX audit_log_attest_by_actor" : "Index Only Scan using audit_log_attest_by_actor"),
            std::string::npos)
      << by_actor;
  const std::string by_action =
      plan("SELECT seq, hash FROM audit_log WHERE action = 'agent.shadow' ORDER BY seq DESC LIMIT 10");
  EXPECT_NE(by_action.find(sqlite ? "INDEX audit_log_shadow" : "Index Scan Backward using audit_log_shadow"),
            std::string::npos)
      << by_action;
  EXPECT_EQ(by_action.find(sqlite ? "TEMP B-TREE" : "Sort"), std::string::npos) << by_action;
}

}  // namespace agentroot::attestation::store::testing
