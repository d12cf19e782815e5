// The commands against a recording AdminApi: what is sent for each, and that
// nothing is sent when local validation fails. The audit verification runs
// on exports built with the store's own record format.
#include "agentroot/provisioning/commands.h"

#include <gtest/gtest.h>

#include <deque>

#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/bytes.h"
#include "agentroot/provisioning/cli_support.h"
#include "test_util.h"

namespace agentroot::provisioning {
namespace {

using common::Json;
using common::Result;
using common::StatusCode;
using testing::TempDir;
using testing::WriteFile;

struct Call {
  std::string method, target;
  Json body;
};

class FakeAdminApi final : public AdminApi {
 public:
  Result<Json> Get(std::string_view target) override {
    calls.push_back({"GET", std::string(target), nullptr});
    return Next();
  }
  Result<Json> Post(std::string_view target, const Json& body) override {
    calls.push_back({"POST", std::string(target), body});
    return Next();
  }
  Result<RawResponse> GetRaw(std::string_view target) override {
    calls.push_back({"GET", std::string(target), nullptr});
    return raw;
  }
  Result<Json> Next() {
    if (answers.empty()) return Json::object();
    Result<Json> r = answers.front();
    answers.pop_front();
    return r;
  }

  std::vector<Call> calls;
  std::deque<Result<Json>> answers;
  RawResponse raw;
};

const std::string kHex64(64, 'a');

std::string ValidManifest() {
  return R"({"exe_sha256":")" + kHex64 + R"(","files":{"/etc/bot.conf":")" + std::string(64, 'b') +
         R"("},"model_id":"m-1"})";
}

AgentArgs RegisterArgs(const std::string& manifest_file) {
  AgentArgs a;
  a.name = "invoice-bot";
  a.owners = {"alice", "bob"};
  a.group = "payments";
  a.scopes = {"invoices:read"};
  a.audiences = {"https://erp.example"};
  a.max_ttl = "5m";
  a.expires_in = "90d";
  a.manifest_file = manifest_file;
  return a;
}

constexpr int64_t kNow = 1740830400;

TEST(Agents, RegisterSendsTheValidatedBody) {
  TempDir dir;
  WriteFile(dir / "m.json", ValidManifest());
  FakeAdminApi api;
  api.answers.push_back(Json{{"id", "spiffe://d/agent/invoice-bot"}, {"manifest_version", 1}});
  auto r = AgentRegister(api, RegisterArgs(dir / "m.json"), kNow);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(api.calls.size(), 1u);
  EXPECT_EQ(api.calls[0].target, "/v1/agents");
  const Json& b = api.calls[0].body;
  EXPECT_EQ(b["name"], "invoice-bot");
  EXPECT_EQ(b["owners"], Json::array({"alice", "bob"}));
  EXPECT_EQ(b["host_group"], "payments");
  EXPECT_FALSE(b.contains("host_id"));
  EXPECT_EQ(b["max_token_ttl"], 300);
  EXPECT_EQ(b["expires_at"], kNow + 90 * 86400);
  EXPECT_EQ(b["manifest"]["exe_sha256"], kHex64);
  EXPECT_EQ(b["manifest"]["model_id"], "m-1");
}

TEST(Agents, BadLocalInputSendsNothing) {
  TempDir dir;
  WriteFile(dir / "good.json", ValidManifest());
  WriteFile(dir / "short.json", R"({"exe_sha256":"abc"})");
  WriteFile(dir / "upper.json", R"({"exe_sha256":")" + std::string(64, 'A') + R"("})");
  WriteFile(dir / "relative.json",
            R"({"exe_sha256":")" + kHex64 + R"(","files":{"etc/x":")" + kHex64 + R"("}})");
  WriteFile(dir / "dup.json", R"({"exe_sha256":")" + kHex64 + R"(","exe_sha256":")" + kHex64 + R"("})");
  WriteFile(dir / "syntax.json", "{");
  WriteFile(dir / "array.json", "[]");

  std::vector<std::pair<std::string, AgentArgs>> cases;
  for (const char* f : {"short.json", "upper.json", "relative.json", "dup.json", "syntax.json", "array.json",
                        "missing.json"}) {
    cases.push_back({f, RegisterArgs(dir / f)});
  }
  auto with = [&](const char* what, auto change) {
    AgentArgs a = RegisterArgs(dir / "good.json");
    change(a);
    cases.push_back({what, a});
  };
  with("host and group", [](AgentArgs& a) { a.host = "h-1"; });
  with("expires both", [](AgentArgs& a) { a.expires = "2030-01-01"; });
  with("no expiry", [](AgentArgs& a) { a.expires_in.reset(); });
  with("past expiry", [](AgentArgs& a) {
    a.expires_in.reset();
    a.expires = "2020-01-01";
  });
  with("bad ttl", [](AgentArgs& a) { a.max_ttl = "5 minutes"; });
  with("bad date", [](AgentArgs& a) {
    a.expires_in.reset();
    a.expires = "2030-02-30";
  });
  with("no owner", [](AgentArgs& a) { a.owners.clear(); });
  with("no placement", [](AgentArgs& a) { a.group.reset(); });
  with("no scope", [](AgentArgs& a) { a.scopes.clear(); });
  with("empty audience", [](AgentArgs& a) { a.audiences = {""}; });

  for (const auto& [what, args] : cases) {
    FakeAdminApi api;
    auto r = AgentRegister(api, args, kNow);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << what << ": " << r.status().ToString();
    EXPECT_EQ(ExitCodeForStatus(r.status()), 2) << what;
    EXPECT_TRUE(api.calls.empty()) << what;
  }
}

TEST(Agents, UpdateFieldsAndNewManifestVersion) {
  TempDir dir;
  WriteFile(dir / "v2.json", ValidManifest());
  FakeAdminApi api;
  api.answers.push_back(Json{{"name", "invoice-bot"}});
  api.answers.push_back(Json{{"version", 2}, {"status", "pending"}});
  AgentArgs a;
  a.name = "invoice bot/x";  // percent-encoded into one path segment
  a.scopes = {"a", "b"};
  a.manifest_file = dir / "v2.json";
  auto r = AgentUpdate(api, a, kNow);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(api.calls.size(), 2u);
  EXPECT_EQ(api.calls[0].target, "/v1/agents/invoice%20bot%2Fx/update");
  EXPECT_EQ(api.calls[0].body, Json({{"scopes", {"a", "b"}}}));
  EXPECT_EQ(api.calls[1].target, "/v1/agents/invoice%20bot%2Fx/manifests");
  EXPECT_EQ(api.calls[1].body["exe_sha256"], kHex64);
  EXPECT_EQ((*r)["manifest"]["version"], 2);

  FakeAdminApi nothing;
  AgentArgs empty;
  empty.name = "x";
  EXPECT_EQ(AgentUpdate(nothing, empty, kNow).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(nothing.calls.empty());
}

TEST(Agents, ServerRefusalKeepsItsCode) {
  FakeAdminApi api;
  api.answers.push_back(StatusForHttp(404, R"({"title":"agent_unknown","detail":"no agent ghost"})"));
  auto r = AgentShow(api, "ghost");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ExitCodeForStatus(r.status()), 3);
  EXPECT_EQ(r.status().message(), "404 agent_unknown: no agent ghost");
}

TEST(Revoke, ExactlyOneTarget) {
  FakeAdminApi api;
  RevokeArgs none;
  EXPECT_EQ(Revoke(api, none).status().code(), StatusCode::kInvalidArgument);
  RevokeArgs two;
  two.agent = "a";
  two.jti = "j";
  EXPECT_EQ(Revoke(api, two).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(api.calls.empty());

  RevokeArgs jti;
  jti.jti = "tok-1";
  ASSERT_TRUE(Revoke(api, jti).ok());
  EXPECT_EQ(api.calls.back().body, Json({{"jti", "tok-1"}}));
}

TEST(Revoke, AgentNameBecomesItsIdFromTheVerifier) {
  FakeAdminApi api;
  api.answers.push_back(Json{{"id", "spiffe://corp.example/agent/bot"}, {"name", "bot"}});
  api.answers.push_back(Json{{"revoked", 3}});
  RevokeArgs a;
  a.agent = "bot";
  auto r = Revoke(api, a);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(api.calls.size(), 2u);
  EXPECT_EQ(api.calls[0].method, "GET");
  EXPECT_EQ(api.calls[0].target, "/v1/agents/bot");
  EXPECT_EQ(api.calls[1].target, "/v1/revocations");
  EXPECT_EQ(api.calls[1].body, Json({{"agent_id", "spiffe://corp.example/agent/bot"}}));
}

TEST(Trust, PinEkFromTpm2ToolsFileOrHash) {
  const std::string ek = std::string(AGENTROOT_ATTESTATION_TESTDATA) + "/tpm2-tools/ek_rsa.pub";
  auto sum = testing::RunShell("sha256sum '" + ek + "'");
  ASSERT_EQ(sum.exit_code, 0);
  FakeAdminApi api;
  TrustPinEkArgs a;
  a.ek_public_file = ek;
  a.group = "lab";
  ASSERT_TRUE(TrustPinEk(api, a).ok());
  EXPECT_EQ(api.calls[0].body,
            Json({{"kind", "ek_pin"}, {"ek_sha256", sum.output.substr(0, 64)}, {"host_group", "lab"}}));

  TrustPinEkArgs h;
  h.sha256 = std::string(64, 'C');
  ASSERT_TRUE(TrustPinEk(api, h).ok());
  EXPECT_EQ(api.calls[1].body["ek_sha256"], std::string(64, 'c'));

  TempDir dir;
  WriteFile(dir / "junk.pub", "not a TPM2B_PUBLIC");
  FakeAdminApi quiet;
  TrustPinEkArgs junk;
  junk.ek_public_file = dir / "junk.pub";
  EXPECT_EQ(TrustPinEk(quiet, junk).status().code(), StatusCode::kInvalidArgument);
  TrustPinEkArgs both = a;
  both.sha256 = kHex64;
  EXPECT_EQ(TrustPinEk(quiet, both).status().code(), StatusCode::kInvalidArgument);
  TrustPinEkArgs short_hash;
  short_hash.sha256 = "abcd";
  EXPECT_EQ(TrustPinEk(quiet, short_hash).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(quiet.calls.empty());
}

TEST(Jit, RequestBody) {
  FakeAdminApi api;
  JitRequestArgs a{"bot", {"invoices:approve"}, "2h", "quarter close"};
  ASSERT_TRUE(JitRequest(api, a).ok());
  EXPECT_EQ(api.calls[0].target, "/v1/agents/bot/jit-grants");
  EXPECT_EQ(api.calls[0].body,
            Json({{"scopes", {"invoices:approve"}}, {"duration_seconds", 7200}, {"reason", "quarter close"}}));
  JitRequestArgs bad{"bot", {"x"}, "2 hours", "r"};
  EXPECT_FALSE(JitRequest(api, bad).ok());
  EXPECT_EQ(api.calls.size(), 1u);
  ASSERT_TRUE(JitList(api, "bot").ok());
  EXPECT_EQ(api.calls.back().target, "/v1/jit-grants?agent=bot");
}

TEST(Reviews, RejectNeedsAComment) {
  FakeAdminApi api;
  EXPECT_FALSE(ReviewDecide(api, "bot", 2, false, "").ok());
  EXPECT_TRUE(api.calls.empty());
  ASSERT_TRUE(ReviewDecide(api, "bot", 2, true, "").ok());
  EXPECT_EQ(api.calls[0].target, "/v1/agents/bot/manifests/2/review");
  EXPECT_EQ(api.calls[0].body, Json({{"approve", true}, {"comment", ""}}));
}

TEST(Inventory, QueryAndRendering) {
  FakeAdminApi api;
  InventoryArgs a;
  a.expiring_days = 14;
  a.usage_days = 7;
  ASSERT_TRUE(Inventory(api, a).ok());
  EXPECT_EQ(api.calls[0].target, "/v1/inventory?expiring_days=14&usage_days=7");
  a.unused_days = 0;
  EXPECT_FALSE(Inventory(api, a).ok());

  Json inv = Json::parse(R"({
    "generated_at": 1740830400, "parameters": {"expiring_days": 30, "unused_days": 30, "usage_days": 30},
    "agents": [{"id": "spiffe://d/agent/bot", "name": "bot", "status": "active",
                "owners": [{"id": "alice", "active": true}, {"id": "bob", "active": false}],
                "host_id": "", "host_group": "payments", "scopes": ["a", "b"], "audiences": ["https://erp"],
                "jit_grants_in_force": [{"id": "g1", "scopes": ["c"], "expires_at": 1740834000}],
                "expires_at": 1743508800, "last_attested_at": 0, "last_token_at": 1740826800, "scopes_used": ["a"],
                "review": {"state": "approved", "approved_version": 1, "latest_version": 1},
                "findings": ["single_owner", "over_broad_scopes"]}],
    "shadow_agents": [],
    "findings": [{"code": "single_owner", "subject": "spiffe://d/agent/bot", "detail": "one active owner: alice"},
                 {"code": "over_broad_scopes", "subject": "spiffe://d/agent/bot", "detail": "unused: b"}]})");
  std::vector<Table> tables = RenderInventory(inv);
  ASSERT_EQ(tables.size(), 2u);
  ASSERT_EQ(tables[0].rows.size(), 1u);
  const auto& row = tables[0].rows[0];
  EXPECT_EQ(row[2], "alice,bob(inactive)");
  EXPECT_EQ(row[3], "group payments");
  EXPECT_EQ(row[6], "c until 2025-03-01 13:00");
  EXPECT_EQ(row[7], "2025-04-01 12:00");
  EXPECT_EQ(row[8], "never");
  EXPECT_EQ(row[9], "2025-03-01 11:00");
  EXPECT_EQ(row[10], "approved v1");
  EXPECT_EQ(row[11], "single_owner,over_broad_scopes");
  EXPECT_EQ(tables[1].rows.size(), 2u);
  // CSV carries the agents (with their findings).
  EXPECT_NE(RenderOutput(OutputFormat::kCsv, inv, tables).find("\"alice,bob(inactive)\""), std::string::npos);
}

// ---- audit --------------------------------------------------------------

std::string Export(int from_seq, int count, attestation::store::AuditAnchor* anchor_out = nullptr) {
  common::Bytes prev(32, 0);
  std::string out;
  for (int seq = 1; seq < from_seq + count; ++seq) {
    attestation::store::AuditEntry e;
    e.seq = seq;
    e.ts = 1740830400 + seq;
    e.record.actor = "alice";
    e.record.action = "host.approve";
    e.record.subject = "host-" + std::to_string(seq);
    e.record.decision = attestation::store::AuditDecision::kAllow;
    e.prev_hash = prev;
    auto body = attestation::store::CanonicalAuditBody(e);
    EXPECT_TRUE(body.ok());
    e.hash = attestation::store::ComputeAuditHash(prev, *body);
    if (seq == from_seq && anchor_out != nullptr) {
      anchor_out->seq = seq - 1;
      anchor_out->hash = prev;
    }
    if (seq >= from_seq) out += attestation::store::AuditEntryToJsonLine(e).value() + "\n";
    prev = e.hash;
  }
  return out;
}

TEST(Audit, VerifyGoodExportFromGenesis) {
  TempDir dir;
  WriteFile(dir / "a.jsonl", Export(1, 5));
  auto r = AuditVerify(dir / "a.jsonl", std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["records"], 5);
  EXPECT_EQ((*r)["anchor"], "0:" + std::string(64, '0'));
  EXPECT_TRUE((*r)["anchored_at_first_record"].get<bool>());
  EXPECT_EQ((*r)["head"].get<std::string>().substr(0, 2), "5:");
}

TEST(Audit, TamperedExportNamesTheFirstBadLineAndSeq) {
  TempDir dir;
  std::string jsonl = Export(1, 5);
  const std::size_t pos = jsonl.find("host-3");
  ASSERT_NE(pos, std::string::npos);
  jsonl.replace(pos, 6, "host-X");
  WriteFile(dir / "t.jsonl", jsonl);
  auto r = AuditVerify(dir / "t.jsonl", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ExitCodeForStatus(r.status()), 7);
  EXPECT_NE(r.status().message().find("line 3 (seq 3)"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("2 records before it verified"), std::string::npos) << r.status().message();

  // A removed record: the next one no longer links.
  std::string removed = Export(1, 5);
  const std::size_t l2 = removed.find('\n') + 1;
  removed.erase(l2, removed.find('\n', l2) + 1 - l2);
  WriteFile(dir / "r.jsonl", removed);
  auto gap = AuditVerify(dir / "r.jsonl", std::nullopt);
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.status().message().find("line 2 (seq 3)"), std::string::npos) << gap.status().message();
}

TEST(Audit, VerifyWithAnchor) {
  TempDir dir;
  attestation::store::AuditAnchor anchor;
  WriteFile(dir / "tail.jsonl", Export(4, 3, &anchor));
  auto good = AuditVerify(dir / "tail.jsonl", FormatAnchor(anchor));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_FALSE((*good)["anchored_at_first_record"].get<bool>());
  EXPECT_EQ((*good)["records"], 3);
  EXPECT_EQ((*good)["head"].get<std::string>().substr(0, 2), "6:");

  // Without the anchor it verifies against itself, and says so.
  auto self = AuditVerify(dir / "tail.jsonl", std::nullopt);
  ASSERT_TRUE(self.ok());
  EXPECT_TRUE((*self)["anchored_at_first_record"].get<bool>());
  EXPECT_EQ((*self)["anchor"], FormatAnchor(anchor));

  // Another anchor (an export that does not continue the kept head).
  attestation::store::AuditAnchor wrong = anchor;
  wrong.hash[0] ^= 1;
  auto bad = AuditVerify(dir / "tail.jsonl", FormatAnchor(wrong));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1 (seq 4)"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(AuditVerify(dir / "tail.jsonl", std::string("4:zz")).ok());
  EXPECT_EQ(AuditVerify(dir / "none.jsonl", std::nullopt).status().code(), StatusCode::kInvalidArgument);
}

TEST(Audit, ExportWritesExactlyWhatWasReceived) {
  TempDir dir;
  FakeAdminApi api;
  attestation::store::AuditAnchor anchor;
  api.raw.body = Export(2, 2, &anchor);
  api.raw.headers.emplace("X-Audit-Anchor-Seq", std::to_string(anchor.seq));
  api.raw.headers.emplace("X-Audit-Anchor-Hash", common::HexEncode(anchor.hash));
  AuditExportArgs a;
  a.from = "2025-03-01";
  a.to = "1740900000";
  a.out = dir / "x.jsonl";
  auto r = AuditExport(api, a, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(api.calls[0].target, "/v1/audit?from=1740787200&to=1740900000");
  EXPECT_EQ(testing::ReadFile(dir / "x.jsonl"), api.raw.body);
  EXPECT_EQ((*r)["anchor"], FormatAnchor(anchor));
  EXPECT_EQ((*r)["records"], 2);
  ASSERT_TRUE(AuditVerify(dir / "x.jsonl", (*r)["anchor"].get<std::string>()).ok());

  // Never over an existing file, and nothing asked.
  FakeAdminApi again;
  EXPECT_EQ(AuditExport(again, a, nullptr).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(again.calls.empty());
}

TEST(Render, ObjectsAndLists) {
  std::vector<Table> t = RenderObject(Json{{"id", "x"}, {"created_at", 1740830400}, {"roles", {"a", "b"}}});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].vertical);
  EXPECT_EQ(t[0].rows[0], (std::vector<std::string>{"2025-03-01 12:00", "x", "a,b"}));
  std::vector<Table> hosts = RenderHosts(Json::parse(
      R"({"hosts":[{"id":"h1","host_group":"g","status":"pending","ek_sha256":")" + kHex64 +
      R"(","ek_certificate_subject":"","ek_certificate_issuer":"","enrolled_at":1740830400,"approved_by":"",
         "approved_at":0,"revoked_at":0,"last_attested_at":0}]})"));
  EXPECT_EQ(hosts[0].rows[0][3], "aaaaaaaaaaaaaaaa…");
  EXPECT_EQ(hosts[0].rows[0][4], "(pinned EK)");
  EXPECT_EQ(hosts[0].rows[0][7], "never");
}

}  // namespace
}  // namespace agentroot::provisioning
