// The Store over a SqlConnection pool: one implementation of the store's
// logic for both backends. Backend differences live in the drivers
// (sqlite_connection.cc, postgres_connection.cc) and the migrations.
#include <algorithm>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "agentroot/attestation/store/store.h"
#include "agentroot/common/signer.h"
#include "migrations.h"
#include "sql_connection.h"

namespace agentroot::attestation::store {
namespace {

using common::Bytes;
using common::ByteView;
using common::Json;
using common::Result;
using common::Status;
using internal::Dialect;
using internal::SqlConnection;
using internal::SqlResult;
using internal::SqlRow;

constexpr std::size_t kMaxConnections = 8;
constexpr int kManifestVersionAttempts = 5;

// ---- enum <-> text -----------------------------------------------------------

template <typename E, std::size_t N>
Result<E> ParseEnum(std::string_view text, const std::pair<E, std::string_view> (&names)[N],
                    std::string_view what) {
  for (const auto& [value, name] : names) {
    if (name == text) return value;
  }
  return common::DataLossError("unknown " + std::string(what) + " \"" + std::string(text) + "\"");
}

template <typename E, std::size_t N>
std::string_view EnumName(E value, const std::pair<E, std::string_view> (&names)[N]) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "";
}

constexpr std::pair<HostStatus, std::string_view> kHostStatusNames[] = {
    {HostStatus::kPending, "pending"},
    {HostStatus::kApproved, "approved"},
    {HostStatus::kRevoked, "revoked"}};
constexpr std::pair<Role, std::string_view> kRoleNames[] = {{Role::kInfra, "infra"},
                                                            {Role::kOwner, "owner"},
                                                            {Role::kReviewer, "reviewer"},
                                                            {Role::kAuditor, "auditor"}};
constexpr std::pair<OperatorStatus, std::string_view> kOperatorStatusNames[] = {
    {OperatorStatus::kActive, "active"}, {OperatorStatus::kDisabled, "disabled"}};
constexpr std::pair<AgentStatus, std::string_view> kAgentStatusNames[] = {
    {AgentStatus::kActive, "active"},
    {AgentStatus::kSuspended, "suspended"},
    {AgentStatus::kRetired, "retired"}};
constexpr std::pair<ManifestStatus, std::string_view> kManifestStatusNames[] = {
    {ManifestStatus::kPending, "pending"},
    {ManifestStatus::kApproved, "approved"},
    {ManifestStatus::kRejected, "rejected"}};
constexpr std::pair<TrustAnchorKind, std::string_view> kTrustAnchorKindNames[] = {
    {TrustAnchorKind::kManufacturerCa, "manufacturer_ca"},
    {TrustAnchorKind::kEkPin, "ek_pin"},
    {TrustAnchorKind::kAutoApprove, "auto_approve"}};
constexpr std::pair<JitStatus, std::string_view> kJitStatusNames[] = {
    {JitStatus::kPending, "pending"},
    {JitStatus::kApproved, "approved"},
    {JitStatus::kRejected, "rejected"},
    {JitStatus::kRevoked, "revoked"}};

// ---- JSON columns ------------------------------------------------------------

Result<std::string> CanonicalJson(const Json& json) {
  try {
    return json.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    return common::InvalidArgumentError(std::string("not valid UTF-8: ") + e.what());
  }
}

Result<std::string> EncodeStringList(const std::vector<std::string>& list) {
  return CanonicalJson(Json(list));
}

Result<std::vector<std::string>> DecodeStringList(const std::string& text) {
  AR_ASSIGN_OR_RETURN(Json json, common::ParseJsonStrict(text));
  std::vector<std::string> out;
  if (!json.is_array()) return common::DataLossError("stored list is not a JSON array");
  for (const Json& item : json) {
    if (!item.is_string()) return common::DataLossError("stored list holds a non-string");
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::vector<Role> NormalizeRoles(std::vector<Role> roles) {
  std::sort(roles.begin(), roles.end());
  roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
  return roles;
}

Result<std::string> EncodeRoles(const std::vector<Role>& roles) {
  std::vector<std::string> names;
  for (Role r : NormalizeRoles(roles)) names.emplace_back(RoleName(r));
  return EncodeStringList(names);
}

// ---- validation --------------------------------------------------------------

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

Status ValidateAgent(const Agent& a) {
  constexpr std::string_view kScheme = "spiffe://";
  constexpr std::string_view kPath = "/agent/";
  std::string_view id = a.id;
  if (!id.starts_with(kScheme)) {
    return common::InvalidArgumentError("agent id must be spiffe://<trust-domain>/agent/<name>");
  }
  id.remove_prefix(kScheme.size());
  const std::size_t slash = id.find('/');
  if (slash == 0 || slash == std::string_view::npos ||
      !std::all_of(id.begin(), id.begin() + slash, IsTrustDomainChar) ||
      id.substr(slash, kPath.size()) != kPath) {
    return common::InvalidArgumentError("agent id must be spiffe://<trust-domain>/agent/<name>");
  }
  const std::string_view name = id.substr(slash + kPath.size());
  if (name.empty() || name.size() > 255 || !std::all_of(name.begin(), name.end(), IsNameChar)) {
    return common::InvalidArgumentError("agent name must be 1-255 of [A-Za-z0-9._-]");
  }
  if (name != a.name) return common::InvalidArgumentError("agent name does not match its id");
  if (a.host_id.empty() == a.host_group.empty()) {
    return common::InvalidArgumentError("an agent names exactly one of host_id and host_group");
  }
  if (a.owners.empty()) return common::InvalidArgumentError("an agent needs at least one owner");
  if (a.max_token_ttl_seconds <= 0) {
    return common::InvalidArgumentError("max_token_ttl_seconds must be positive");
  }
  return Status();
}

Status RequireNonEmpty(std::string_view value, std::string_view what) {
  if (value.empty()) return common::InvalidArgumentError(std::string(what) + " must not be empty");
  return Status();
}


Status ValidateTrustAnchor(const TrustAnchor& anchor) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(anchor.id, "trust anchor id"));
  switch (anchor.kind) {
    case TrustAnchorKind::kManufacturerCa:
      return RequireNonEmpty(anchor.value, "a manufacturer CA's certificate");
    case TrustAnchorKind::kEkPin: {
      // 64 lower-case hex digits: what HexEncode gives back for its decoding.
      const Result<Bytes> digest = common::HexDecode(anchor.value);
      if (!digest.ok() || digest->size() != 32 || common::HexEncode(*digest) != anchor.value) {
        return common::InvalidArgumentError("an EK pin is a SHA-256 in 64 lower-case hex digits");
      }
      return Status();
    }
    case TrustAnchorKind::kAutoApprove:
      return RequireNonEmpty(anchor.host_group, "an auto_approve anchor's host group");
  }
  return common::InvalidArgumentError("unknown trust anchor kind");
}

Status ValidateJitGrant(const JitGrant& grant) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(grant.id, "JIT grant id"));
  AR_RETURN_IF_ERROR(RequireNonEmpty(grant.agent_id, "agent id"));
  if (grant.scopes.empty()) return common::InvalidArgumentError("a JIT grant needs at least one scope");
  for (const std::string& scope : grant.scopes) AR_RETURN_IF_ERROR(RequireNonEmpty(scope, "a JIT scope"));
  AR_RETURN_IF_ERROR(RequireNonEmpty(grant.reason, "a JIT grant's reason"));
  if (grant.duration_seconds <= 0) return common::InvalidArgumentError("duration_seconds must be positive");
  return Status();
}

internal::SqlParam NullIfEmpty(std::string_view s) {
  if (s.empty()) return nullptr;
  return s;
}

// ---- row mapping -----------------------------------------------------------------

constexpr std::string_view kHostColumns =
    "id, ek_public, ek_sha256, ek_certificate, ak_public, ak_name, host_group, status, "
    "enrolled_at, approved_by, approved_at, revoked_at, ak_replaced_at";

Result<Host> HostFromRow(const SqlRow& r) {
  Host h;
  h.id = r.Text(0);
  h.ek_public = r.Blob(1);
  h.ek_public_sha256 = r.Blob(2);
  h.ek_certificate = r.Blob(3);
  h.ak_public = r.Blob(4);
  h.ak_name = r.Blob(5);
  h.host_group = r.Text(6);
  AR_ASSIGN_OR_RETURN(h.status, ParseEnum(r.Text(7), kHostStatusNames, "host status"));
  h.enrolled_at = r.Int(8);
  h.approved_by = r.Text(9);
  h.approved_at = r.Int(10);
  h.revoked_at = r.Int(11);
  h.ak_replaced_at = r.Int(12);
  return h;
}

constexpr std::string_view kOperatorColumns =
    "id, display_name, roles, status, cert_fingerprint, created_at";

Result<Operator> OperatorFromRow(const SqlRow& r) {
  Operator op;
  op.id = r.Text(0);
  op.display_name = r.Text(1);
  AR_ASSIGN_OR_RETURN(std::vector<std::string> roles, DecodeStringList(r.Text(2)));
  for (const std::string& name : roles) {
    AR_ASSIGN_OR_RETURN(Role role, ParseEnum(name, kRoleNames, "role"));
    op.roles.push_back(role);
  }
  AR_ASSIGN_OR_RETURN(op.status, ParseEnum(r.Text(3), kOperatorStatusNames, "operator status"));
  op.client_cert_fingerprint = r.Text(4);
  op.created_at = r.Int(5);
  return op;
}

constexpr std::string_view kAgentColumns =
    "id, name, host_id, host_group, allowed_scopes, allowed_audiences, max_token_ttl_seconds, "
    "expires_at, status, created_at, updated_at";

Result<Agent> AgentFromRow(const SqlRow& r) {
  Agent a;
  a.id = r.Text(0);
  a.name = r.Text(1);
  a.host_id = r.Text(2);
  a.host_group = r.Text(3);
  AR_ASSIGN_OR_RETURN(a.allowed_scopes, DecodeStringList(r.Text(4)));
  AR_ASSIGN_OR_RETURN(a.allowed_audiences, DecodeStringList(r.Text(5)));
  a.max_token_ttl_seconds = r.Int(6);
  a.expires_at = r.Int(7);
  AR_ASSIGN_OR_RETURN(a.status, ParseEnum(r.Text(8), kAgentStatusNames, "agent status"));
  a.created_at = r.Int(9);
  a.updated_at = r.Int(10);
  return a;
}

constexpr std::string_view kManifestColumns =
    "agent_id, version, content, status, reviewer_id, reviewed_at, comment, created_at";

Result<Manifest> ManifestFromRow(const SqlRow& r) {
  Manifest m;
  m.agent_id = r.Text(0);
  m.version = r.Int(1);
  AR_ASSIGN_OR_RETURN(m.content, common::ParseJsonStrict(r.Text(2)));
  AR_ASSIGN_OR_RETURN(m.status, ParseEnum(r.Text(3), kManifestStatusNames, "manifest status"));
  m.reviewer_id = r.Text(4);
  m.reviewed_at = r.Int(5);
  m.comment = r.Text(6);
  m.created_at = r.Int(7);
  return m;
}

constexpr std::string_view kAgentKeyColumns =
    "thumbprint, agent_id, host_id, public_jwk, tpm_public, certified_at";

Result<AgentKey> AgentKeyFromRow(const SqlRow& r) {
  AgentKey k;
  k.thumbprint = r.Text(0);
  k.agent_id = r.Text(1);
  k.host_id = r.Text(2);
  AR_ASSIGN_OR_RETURN(k.public_jwk, common::ParseJsonStrict(r.Text(3)));
  k.tpm_public = r.Blob(4);
  k.certified_at = r.Int(5);
  return k;
}

constexpr std::string_view kTokenColumns =
    "jti, request_id, agent_id, host_id, cnf_jkt, scope, audience, issued_at, expires_at, "
    "revoked_at";

TokenRecord TokenFromRow(const SqlRow& r) {
  TokenRecord t;
  t.jti = r.Text(0);
  t.request_id = r.Text(1);
  t.agent_id = r.Text(2);
  t.host_id = r.Text(3);
  t.cnf_jkt = r.Text(4);
  t.scope = r.Text(5);
  t.audience = r.Text(6);
  t.issued_at = r.Int(7);
  t.expires_at = r.Int(8);
  t.revoked_at = r.Int(9);
  return t;
}

constexpr std::string_view kTrustAnchorColumns =
    "id, kind, value, host_group, description, created_by, created_at";

Result<TrustAnchor> TrustAnchorFromRow(const SqlRow& r) {
  TrustAnchor a;
  a.id = r.Text(0);
  AR_ASSIGN_OR_RETURN(a.kind, ParseEnum(r.Text(1), kTrustAnchorKindNames, "trust anchor kind"));
  a.value = r.Text(2);
  a.host_group = r.Text(3);
  a.description = r.Text(4);
  a.created_by = r.Text(5);
  a.created_at = r.Int(6);
  return a;
}

constexpr std::string_view kJitGrantColumns =
    "id, agent_id, scopes, reason, duration_seconds, requested_by, requested_at, status, "
    "decided_by, decided_at, comment, expires_at";

Result<JitGrant> JitGrantFromRow(const SqlRow& r) {
  JitGrant g;
  g.id = r.Text(0);
  g.agent_id = r.Text(1);
  AR_ASSIGN_OR_RETURN(g.scopes, DecodeStringList(r.Text(2)));
  g.reason = r.Text(3);
  g.duration_seconds = r.Int(4);
  g.requested_by = r.Text(5);
  g.requested_at = r.Int(6);
  AR_ASSIGN_OR_RETURN(g.status, ParseEnum(r.Text(7), kJitStatusNames, "JIT grant status"));
  g.decided_by = r.Text(8);
  g.decided_at = r.Int(9);
  g.comment = r.Text(10);
  g.expires_at = r.Int(11);
  return g;
}

constexpr std::string_view kAuditColumns =
    "seq, ts, actor, action, subject, decision, reasons, details, prev_hash, hash";

Result<AuditEntry> AuditFromRow(const SqlRow& r) {
  AuditEntry e;
  e.seq = r.Int(0);
  e.ts = r.Int(1);
  e.record.actor = r.Text(2);
  e.record.action = r.Text(3);
  e.record.subject = r.Text(4);
  AR_ASSIGN_OR_RETURN(e.record.decision, ParseAuditDecision(r.Text(5)));
  AR_ASSIGN_OR_RETURN(e.record.reasons, DecodeStringList(r.Text(6)));
  AR_ASSIGN_OR_RETURN(e.record.details, common::ParseJsonStrict(r.Text(7)));
  e.prev_hash = r.Blob(8);
  e.hash = r.Blob(9);
  return e;
}

std::string Sql(std::string_view a, std::string_view b, std::string_view c = "") {
  std::string s(a);
  s += b;
  s += c;
  return s;
}

// ---- the store ---------------------------------------------------------------------

class SqlStore final : public Store {
 public:
  using Factory = std::function<Result<std::unique_ptr<SqlConnection>>()>;

  SqlStore(std::string backend, Factory factory, const common::Clock& clock)
      : backend_(std::move(backend)), factory_(std::move(factory)), clock_(clock) {}

  // Seeds the pool with the connection that ran the migrations.
  void AddIdle(std::unique_ptr<SqlConnection> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    ++open_;
    idle_.push_back(std::move(conn));
  }

  std::string_view backend() const override { return backend_; }

  Result<int> SchemaVersion() override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    return internal::CurrentVersion(*lease);
  }

  // ---- hosts ----

  Result<Host> CreateHost(const Host& host, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(host.id, "host id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(common::ToString(host.ek_public), "EK public"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(common::ToString(host.ak_public), "AK public"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(common::ToString(host.ak_name), "AK name"));
    Host row = host;
    row.ek_public_sha256 = common::Sha256(host.ek_public);
    if (!host.ek_public_sha256.empty() && host.ek_public_sha256 != row.ek_public_sha256) {
      return common::InvalidArgumentError("ek_public_sha256 is not SHA-256(ek_public)");
    }
    row.status = HostStatus::kPending;
    row.enrolled_at = Now();
    row.approved_by.clear();
    row.approved_at = row.revoked_at = row.ak_replaced_at = 0;
    const Status written = Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult known, c.Exec("SELECT id FROM hosts WHERE ek_sha256 = $1",
                                                   {ByteView(row.ek_public_sha256)}));
      if (!known.rows.empty()) {
        return common::AlreadyExistsError("a host with this EK is already enrolled as " +
                                          known.rows[0].Text(0));
      }
      return c.Exec(Sql("INSERT INTO hosts (", kHostColumns,
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL)"),
                    {row.id, ByteView(row.ek_public), ByteView(row.ek_public_sha256),
                     ByteView(row.ek_certificate), ByteView(row.ak_public), ByteView(row.ak_name),
                     row.host_group, HostStatusName(row.status), row.enrolled_at})
          .status();
    });
    if (!written.ok()) return written;
    return row;
  }

  Result<Host> GetHost(std::string_view id) override {
    return GetOne<Host>(Sql("SELECT ", kHostColumns, " FROM hosts WHERE id = $1"), {id},
                        HostFromRow, "host");
  }

  Result<Host> GetHostByEkHash(ByteView ek_public_sha256) override {
    return GetOne<Host>(Sql("SELECT ", kHostColumns, " FROM hosts WHERE ek_sha256 = $1"),
                        {ek_public_sha256}, HostFromRow, "host");
  }

  Status ApproveHost(std::string_view id, std::string_view approved_by,
                     const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(approved_by, "approved_by"));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE hosts SET status = 'approved', "
                                              "approved_by = $2, approved_at = $3 "
                                              "WHERE id = $1 AND status = 'pending'",
                                              {id, approved_by, now}));
      if (r.affected == 1) return Status();
      return ExplainState(c, "SELECT status FROM hosts WHERE id = $1", id, "host", "pending");
    });
  }

  Status RevokeHost(std::string_view id, const AuditRecord* audit) override {
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE hosts SET status = 'revoked', "
                                              "revoked_at = $2 "
                                              "WHERE id = $1 AND status <> 'revoked'",
                                              {id, now}));
      if (r.affected != 1) {
        return ExplainState(c, "SELECT status FROM hosts WHERE id = $1", id, "host",
                            "pending or approved");
      }
      return RevokeTokensIn(c, kTokensOfHost, id, now).status();
    });
  }

  Status ReplaceAk(std::string_view id, ByteView ak_public, ByteView ak_name,
                   const AuditRecord* audit) override {
    if (ak_public.empty() || ak_name.empty()) {
      return common::InvalidArgumentError("AK public and name must not be empty");
    }
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE hosts SET ak_public = $2, ak_name = $3, "
                                              "ak_replaced_at = $4 "
                                              "WHERE id = $1 AND status <> 'revoked'",
                                              {id, ak_public, ak_name, now}));
      if (r.affected == 1) return Status();
      return ExplainState(c, "SELECT status FROM hosts WHERE id = $1", id, "host",
                          "pending or approved");
    });
  }

  Result<std::vector<Host>> ListHosts() override {
    return GetMany<Host>(Sql("SELECT ", kHostColumns, " FROM hosts ORDER BY id"), {}, HostFromRow);
  }

  // ---- operators ----

  Status CreateOperator(const Operator& op, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(op.id, "operator id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(op.display_name, "display name"));
    AR_ASSIGN_OR_RETURN(std::string roles, EncodeRoles(op.roles));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      return c.Exec(Sql("INSERT INTO operators (", kOperatorColumns,
                        ") VALUES ($1, $2, $3, $4, $5, $6)"),
                    {op.id, op.display_name, roles, EnumName(op.status, kOperatorStatusNames),
                     NullIfEmpty(op.client_cert_fingerprint), now})
          .status();
    });
  }

  Result<Operator> GetOperator(std::string_view id) override {
    return GetOne<Operator>(Sql("SELECT ", kOperatorColumns, " FROM operators WHERE id = $1"),
                            {id}, OperatorFromRow, "operator");
  }

  Result<Operator> GetOperatorByCertFingerprint(std::string_view fingerprint) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(fingerprint, "certificate fingerprint"));
    return GetOne<Operator>(
        Sql("SELECT ", kOperatorColumns, " FROM operators WHERE cert_fingerprint = $1"),
        {fingerprint}, OperatorFromRow, "operator");
  }

  Status SetOperatorStatus(std::string_view id, OperatorStatus status,
                           const AuditRecord* audit) override {
    // Serialized with DisableOperator (it decides who is a last active owner).
    return UpdateOne(audit, "UPDATE operators SET status = $2 WHERE id = $1",
                     {id, EnumName(status, kOperatorStatusNames)}, "operator", /*lock_chain=*/true);
  }

  Status SetOperatorRoles(std::string_view id, const std::vector<Role>& roles,
                          const AuditRecord* audit) override {
    AR_ASSIGN_OR_RETURN(std::string encoded, EncodeRoles(roles));
    return UpdateOne(audit, "UPDATE operators SET roles = $2 WHERE id = $1", {id, encoded},
                     "operator");
  }

  Result<std::vector<Operator>> ListOperators() override {
    return GetMany<Operator>(Sql("SELECT ", kOperatorColumns, " FROM operators ORDER BY id"), {},
                             OperatorFromRow);
  }

  // ---- agents ----

  Status CreateAgent(const Agent& agent, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(ValidateAgent(agent));
    AR_ASSIGN_OR_RETURN(std::string scopes, EncodeStringList(agent.allowed_scopes));
    AR_ASSIGN_OR_RETURN(std::string audiences, EncodeStringList(agent.allowed_audiences));
    const int64_t now = Now();
    // Owners change: serialized with DisableOperator.
    return Write(audit, /*lock_chain=*/true, [&](SqlConnection& c) -> Status {
      AR_RETURN_IF_ERROR(
          c.Exec(Sql("INSERT INTO agents (", kAgentColumns,
                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"),
                 {agent.id, agent.name, NullIfEmpty(agent.host_id), NullIfEmpty(agent.host_group),
                  scopes, audiences, agent.max_token_ttl_seconds, agent.expires_at,
                  EnumName(agent.status, kAgentStatusNames), now})
              .status());
      return InsertOwners(c, agent);
    });
  }

  Result<Agent> GetAgent(std::string_view id) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec(Sql("SELECT ", kAgentColumns,
                                                     " FROM agents WHERE id = $1"),
                                                 {id}));
    if (r.rows.empty()) return common::NotFoundError("no agent " + std::string(id));
    AR_ASSIGN_OR_RETURN(Agent agent, AgentFromRow(r.rows[0]));
    AR_RETURN_IF_ERROR(LoadOwners(*lease, agent));
    return agent;
  }

  Status UpdateAgent(const Agent& agent, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(ValidateAgent(agent));
    AR_ASSIGN_OR_RETURN(std::string scopes, EncodeStringList(agent.allowed_scopes));
    AR_ASSIGN_OR_RETURN(std::string audiences, EncodeStringList(agent.allowed_audiences));
    const int64_t now = Now();
    // Owners change: serialized with DisableOperator. Status is SetAgentStatus's.
    return Write(audit, /*lock_chain=*/true, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(
          SqlResult r,
          c.Exec("UPDATE agents SET host_id = $2, host_group = $3, allowed_scopes = $4, "
                 "allowed_audiences = $5, max_token_ttl_seconds = $6, expires_at = $7, "
                 "updated_at = $8 WHERE id = $1",
                 {agent.id, NullIfEmpty(agent.host_id), NullIfEmpty(agent.host_group), scopes,
                  audiences, agent.max_token_ttl_seconds, agent.expires_at, now}));
      if (r.affected != 1) return common::NotFoundError("no agent " + agent.id);
      AR_RETURN_IF_ERROR(
          c.Exec("DELETE FROM agent_owners WHERE agent_id = $1", {agent.id}).status());
      return InsertOwners(c, agent);
    });
  }

  Status SetAgentStatus(std::string_view id, AgentStatus status,
                        const AuditRecord* audit) override {
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE agents SET status = $2, updated_at = $3 "
                                              "WHERE id = $1 AND status <> 'retired'",
                                              {id, EnumName(status, kAgentStatusNames), now}));
      if (r.affected != 1) {
        return ExplainState(c, "SELECT status FROM agents WHERE id = $1", id, "agent",
                            "active or suspended");
      }
      if (status == AgentStatus::kActive) return Status();
      return RevokeTokensIn(c, kTokensOfAgent, id, now).status();
    });
  }

  Status DeleteAgent(std::string_view id, const AuditRecord* audit) override {
    return UpdateOne(audit, "DELETE FROM agents WHERE id = $1", {id}, "agent");
  }

  Result<std::vector<Agent>> ListAgents() override {
    return ListAgentsQuery(Sql("SELECT ", kAgentColumns, " FROM agents ORDER BY id"), "");
  }

  Result<std::vector<Agent>> ListAgentsByOwner(std::string_view operator_id) override {
    return ListAgentsQuery(
        "SELECT a.id, a.name, a.host_id, a.host_group, a.allowed_scopes, a.allowed_audiences, "
        "a.max_token_ttl_seconds, a.expires_at, a.status, a.created_at, a.updated_at "
        "FROM agents a JOIN agent_owners o ON o.agent_id = a.id "
        "WHERE o.operator_id = $1 ORDER BY a.id",
        operator_id);
  }

  // ---- manifests ----

  Result<int64_t> AddManifest(std::string_view agent_id, const Json& content,
                              const AuditRecord* audit) override {
    if (!content.is_object()) return common::InvalidArgumentError("manifest must be a JSON object");
    AR_ASSIGN_OR_RETURN(std::string text, CanonicalJson(content));
    const int64_t now = Now();
    Status last;
    for (int attempt = 0; attempt < kManifestVersionAttempts; ++attempt) {
      int64_t version = 0;
      last = Write(audit, [&](SqlConnection& c) -> Status {
        // Locks the agent row (PostgreSQL) so concurrent adds for one agent
        // take turns; SQLite's BEGIN IMMEDIATE already did.
        AR_ASSIGN_OR_RETURN(SqlResult agent,
                            c.Exec("UPDATE agents SET updated_at = updated_at WHERE id = $1",
                                   {agent_id}));
        if (agent.affected != 1) return common::NotFoundError("no agent " + std::string(agent_id));
        AR_ASSIGN_OR_RETURN(SqlResult r,
                            c.Exec("SELECT COALESCE(MAX(version), 0) + 1 FROM manifests "
                                   "WHERE agent_id = $1",
                                   {agent_id}));
        version = r.rows.empty() ? 1 : r.rows[0].Int(0);
        return c.Exec(Sql("INSERT INTO manifests (", kManifestColumns,
                          ") VALUES ($1, $2, $3, 'pending', NULL, NULL, NULL, $4)"),
                      {agent_id, version, text, now})
            .status();
      });
      if (last.ok()) return version;
      // Should not happen with the row lock; retry rather than fail if a
      // concurrent add still took the version.
      if (last.code() != common::StatusCode::kAlreadyExists) break;
    }
    return last;
  }

  Result<Manifest> GetManifest(std::string_view agent_id, int64_t version) override {
    return GetOne<Manifest>(Sql("SELECT ", kManifestColumns,
                                " FROM manifests WHERE agent_id = $1 AND version = $2"),
                            {agent_id, version}, ManifestFromRow, "manifest");
  }

  Result<Manifest> LatestApprovedManifest(std::string_view agent_id) override {
    return GetOne<Manifest>(Sql("SELECT ", kManifestColumns,
                                " FROM manifests WHERE agent_id = $1 AND status = 'approved' "
                                "ORDER BY version DESC LIMIT 1"),
                            {agent_id}, ManifestFromRow, "approved manifest");
  }

  Result<std::vector<Manifest>> ListManifests(std::string_view agent_id) override {
    if (agent_id.empty()) {
      return GetMany<Manifest>(Sql("SELECT ", kManifestColumns, " FROM manifests ORDER BY agent_id, version"), {},
                               ManifestFromRow);
    }
    return GetMany<Manifest>(Sql("SELECT ", kManifestColumns,
                                 " FROM manifests WHERE agent_id = $1 ORDER BY version"),
                             {agent_id}, ManifestFromRow);
  }

  Status ReviewManifest(std::string_view agent_id, int64_t version, ManifestStatus decision,
                        std::string_view reviewer_id, std::string_view comment,
                        const AuditRecord* audit) override {
    if (decision == ManifestStatus::kPending) {
      return common::InvalidArgumentError("a review approves or rejects");
    }
    AR_RETURN_IF_ERROR(RequireNonEmpty(reviewer_id, "reviewer id"));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(
          SqlResult r,
          c.Exec("UPDATE manifests SET status = $3, reviewer_id = $4, reviewed_at = $5, "
                 "comment = $6 WHERE agent_id = $1 AND version = $2 AND status = 'pending'",
                 {agent_id, version, EnumName(decision, kManifestStatusNames), reviewer_id, now,
                  comment}));
      if (r.affected == 1) return Status();
      AR_ASSIGN_OR_RETURN(SqlResult s,
                          c.Exec("SELECT status FROM manifests WHERE agent_id = $1 AND "
                                 "version = $2",
                                 {agent_id, version}));
      if (s.rows.empty()) {
        return common::NotFoundError("no manifest version " + std::to_string(version) + " of " +
                                     std::string(agent_id));
      }
      return common::FailedPreconditionError("manifest version " + std::to_string(version) +
                                             " is already " + s.rows[0].Text(0));
    });
  }

  // ---- agent keys ----

  Status AddAgentKey(const AgentKey& key, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(key.thumbprint, "thumbprint"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(key.agent_id, "agent id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(key.host_id, "host id"));
    if (!key.public_jwk.is_object() || key.public_jwk.contains("d")) {
      return common::InvalidArgumentError("public_jwk must be a public JWK object");
    }
    AR_ASSIGN_OR_RETURN(std::string jwk, CanonicalJson(key.public_jwk));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      return c.Exec(Sql("INSERT INTO agent_keys (", kAgentKeyColumns,
                        ") VALUES ($1, $2, $3, $4, $5, $6)"),
                    {key.thumbprint, key.agent_id, key.host_id, jwk, ByteView(key.tpm_public), now})
          .status();
    });
  }

  Result<AgentKey> GetAgentKey(std::string_view thumbprint) override {
    return GetOne<AgentKey>(
        Sql("SELECT ", kAgentKeyColumns, " FROM agent_keys WHERE thumbprint = $1"), {thumbprint},
        AgentKeyFromRow, "agent key");
  }

  Result<std::vector<AgentKey>> ListAgentKeys(std::string_view agent_id) override {
    return GetMany<AgentKey>(Sql("SELECT ", kAgentKeyColumns,
                                 " FROM agent_keys WHERE agent_id = $1 ORDER BY thumbprint"),
                             {agent_id}, AgentKeyFromRow);
  }

  // ---- nonces ----

  Status CreateNonce(const Nonce& nonce) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(nonce.value, "nonce"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(nonce.purpose, "nonce purpose"));
    return Write(nullptr, [&](SqlConnection& c) -> Status {
      return c.Exec("INSERT INTO nonces (value, purpose, bound_data, expires_at, consumed_at, issued_at) "
                    "VALUES ($1, $2, $3, $4, NULL, $5)",
                    {nonce.value, nonce.purpose, ByteView(nonce.bound_data), nonce.expires_at,
                     nonce.issued_at != 0 ? nonce.issued_at : Now()})
          .status();
    });
  }

  Result<Bytes> ConsumeNonce(std::string_view value, std::string_view purpose,
                             int64_t now) override {
    Bytes bound;
    const Status written = Write(nullptr, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(bound, ConsumeNonceIn(c, value, purpose, now));
      return Status();
    });
    if (!written.ok()) return written;
    return bound;
  }

  Result<Bytes> ConsumeNonceAudited(std::string_view value, std::string_view purpose, int64_t now,
                                    const AuditRecord& audit) override {
    Bytes bound;
    const Status written = Write(&audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(bound, ConsumeNonceIn(c, value, purpose, now));
      return Status();
    });
    if (!written.ok()) return written;
    return bound;
  }

  Result<Bytes> PeekNonce(std::string_view value, std::string_view purpose, int64_t now) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec("SELECT bound_data, consumed_at, expires_at FROM nonces "
                                                 "WHERE value = $1 AND purpose = $2",
                                                 {value, purpose}));
    if (r.rows.empty()) return common::NotFoundError("unknown nonce");
    if (!r.rows[0].IsNull(1)) return common::FailedPreconditionError("nonce already used");
    if (r.rows[0].Int(2) <= now) return common::FailedPreconditionError("nonce expired");
    return r.rows[0].Blob(0);
  }

  Result<int64_t> PurgeExpiredNonces(int64_t now) override {
    return Delete("DELETE FROM nonces WHERE expires_at <= $1", now);
  }

  Result<WindowCount> CountHostChallengesSince(std::string_view host_id, int64_t since) override {
    // The purpose condition is the partial index's (nonces_challenges_by_host).
    return CountWindow("SELECT COUNT(*), MIN(issued_at) FROM nonces WHERE purpose IN ('attest', 'certify') "
                       "AND bound_data = $1 AND issued_at > $2",
                       {ByteView(common::AsBytes(host_id)), since});
  }

  // ---- tokens ----

  Result<IssueTokenResult> IssueToken(const TokenRecord& token, const AuditRecord& audit) override {
    return IssueTokenLimited(token, audit, std::nullopt);
  }

  Result<IssueTokenResult> IssueTokenWithinRate(const TokenRecord& token, const AuditRecord& audit,
                                                int64_t window_start, int64_t max_in_window) override {
    return IssueTokenLimited(token, audit, std::pair{window_start, max_in_window});
  }

  Result<IssueTokenResult> IssueTokenForProof(const TokenRecord& token, const AuditRecord& audit,
                                              int64_t window_start, int64_t max_in_window,
                                              const ProofJti& proof) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(proof.jti, "proof jti"));
    return IssueTokenLimited(token, audit, std::pair{window_start, max_in_window}, &proof);
  }

  // `limit`: (window_start, max_in_window) for the token's agent. `proof`
  // (optional): recorded in the same transaction.
  Result<IssueTokenResult> IssueTokenLimited(const TokenRecord& token, const AuditRecord& audit,
                                             std::optional<std::pair<int64_t, int64_t>> limit,
                                             const ProofJti* proof = nullptr) {
    AR_RETURN_IF_ERROR(RequireNonEmpty(token.jti, "jti"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(token.request_id, "request id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(token.agent_id, "agent id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(token.host_id, "host id"));
    AR_RETURN_IF_ERROR(RequireNonEmpty(token.cnf_jkt, "cnf_jkt"));
    if (token.expires_at <= token.issued_at) {
      return common::InvalidArgumentError("token expires before it is issued");
    }
    AuditRecord record = audit;
    if (record.details.is_null()) record.details = Json::object();
    if (record.details.is_object()) {
      auto it = record.details.find("jti");
      if (it != record.details.end() && (!it->is_string() || *it != token.jti)) {
        return common::InvalidArgumentError("audit details name another jti");
      }
      record.details["jti"] = token.jti;
    }
    AR_RETURN_IF_ERROR(ValidateAuditRecord(record));

    IssueTokenResult result;
    // Every token issue takes the audit chain lock, on every replica: the
    // count below sees all tokens committed before it and none can slip in.
    const Status status = Transact(/*lock_audit=*/true, [&](SqlConnection& c, bool& discard) -> Status {
      result = IssueTokenResult();
      if (proof != nullptr) AR_RETURN_IF_ERROR(RecordProofJtiIn(c, proof->jti, proof->expires_at));
      if (limit) {
        AR_ASSIGN_OR_RETURN(SqlResult counted,
                            c.Exec("SELECT COUNT(*) FROM issued_tokens WHERE agent_id = $1 AND issued_at > $2",
                                   {token.agent_id, limit->first}));
        if (!counted.rows.empty() && counted.rows[0].Int(0) >= limit->second) {
          return common::ResourceExhaustedError("the agent reached its token rate limit");  // rolled back
        }
      }
      AR_ASSIGN_OR_RETURN(SqlResult inserted,
                          c.Exec(Sql("INSERT INTO issued_tokens (", kTokenColumns,
                                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) "
                                     "ON CONFLICT (request_id) DO NOTHING"),
                                 {token.jti, token.request_id, token.agent_id, token.host_id,
                                  token.cnf_jkt, token.scope, token.audience, token.issued_at,
                                  token.expires_at}));
      if (inserted.affected == 0) {
        AR_ASSIGN_OR_RETURN(SqlResult first,
                            c.Exec("SELECT jti FROM issued_tokens WHERE request_id = $1",
                                   {token.request_id}));
        if (first.rows.empty()) return common::InternalError("token request conflict vanished");
        result.jti = first.rows[0].Text(0);
        result.created = false;
        discard = true;  // nothing of this request is kept
        return Status();
      }
      AR_ASSIGN_OR_RETURN(AuditEntry entry, AppendLocked(c, record));
      result.jti = token.jti;
      result.created = true;
      result.audit_seq = entry.seq;
      return Status();
    });
    if (!status.ok()) return status;
    return result;
  }

  Result<TokenRecord> GetToken(std::string_view jti) override {
    return GetOne<TokenRecord>(
        Sql("SELECT ", kTokenColumns, " FROM issued_tokens WHERE jti = $1"), {jti},
        [](const SqlRow& r) -> Result<TokenRecord> { return TokenFromRow(r); }, "token");
  }

  Result<WindowCount> CountAgentTokensSince(std::string_view agent_id, int64_t since) override {
    return CountWindow("SELECT COUNT(*), MIN(issued_at) FROM issued_tokens WHERE agent_id = $1 AND issued_at > $2",
                       {agent_id, since});
  }

  Status RevokeToken(std::string_view jti, const AuditRecord* audit) override {
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_RETURN_IF_ERROR(c.Exec("UPDATE issued_tokens SET revoked_at = $2 "
                                "WHERE jti = $1 AND revoked_at IS NULL",
                                {jti, now})
                             .status());
      AR_ASSIGN_OR_RETURN(SqlResult s, c.Exec("SELECT jti FROM issued_tokens WHERE jti = $1",
                                              {jti}));
      if (s.rows.empty()) return common::NotFoundError("unknown token");
      return Status();
    });
  }

  Result<int64_t> RevokeAgentTokens(std::string_view agent_id, const AuditRecord* audit) override {
    return RevokeWhere(kTokensOfAgent, agent_id, audit);
  }

  Result<int64_t> RevokeHostTokens(std::string_view host_id, const AuditRecord* audit) override {
    return RevokeWhere(kTokensOfHost, host_id, audit);
  }

  Result<bool> IsTokenRevoked(std::string_view jti) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r,
                        lease->Exec("SELECT revoked_at FROM issued_tokens WHERE jti = $1", {jti}));
    if (r.rows.empty()) return common::NotFoundError("unknown token");
    return !r.rows[0].IsNull(0);
  }

  // ---- DPoP proof jtis ----

  Status RecordProofJti(std::string_view jti, int64_t expires_at) override {
    AR_RETURN_IF_ERROR(RequireNonEmpty(jti, "proof jti"));
    return Write(nullptr, [&](SqlConnection& c) -> Status { return RecordProofJtiIn(c, jti, expires_at); });
  }

  Result<bool> ProofJtiRecorded(std::string_view jti) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec("SELECT 1 FROM proof_jtis WHERE jti = $1", {jti}));
    return !r.rows.empty();
  }

  Result<int64_t> PurgeExpiredProofJtis(int64_t now) override {
    return Delete("DELETE FROM proof_jtis WHERE expires_at <= $1", now);
  }

  // ---- audit ----

  Result<AuditEntry> AppendAudit(const AuditRecord& record) override {
    AR_RETURN_IF_ERROR(ValidateAuditRecord(record));
    AuditEntry entry;
    const Status written = Write(nullptr, [&](SqlConnection& c) -> Status {
      AR_RETURN_IF_ERROR(c.LockAuditChain());
      AR_ASSIGN_OR_RETURN(entry, AppendLocked(c, record));
      return Status();
    });
    if (!written.ok()) return written;
    return entry;
  }

  Result<AuditEntry> AppendAuditSpendingProof(const AuditRecord& record, const ProofJti& proof) override {
    AR_RETURN_IF_ERROR(ValidateAuditRecord(record));
    AR_RETURN_IF_ERROR(RequireNonEmpty(proof.jti, "proof jti"));
    AuditEntry entry;
    const Status written = Write(nullptr, [&](SqlConnection& c) -> Status {
      AR_RETURN_IF_ERROR(c.LockAuditChain());
      const Status recorded = RecordProofJtiIn(c, proof.jti, proof.expires_at);
      if (!recorded.ok() && recorded.code() != common::StatusCode::kAlreadyExists) return recorded;
      AR_ASSIGN_OR_RETURN(entry, AppendLocked(c, record));
      return Status();
    });
    if (!written.ok()) return written;
    return entry;
  }

  Result<AuditAnchor> AuditHead() override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    return HeadOf(*lease);
  }

  Result<AuditExport> ExportAudit(int64_t from_ts, int64_t to_ts) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    SqlConnection& c = *lease;
    AuditExport out;
    AR_ASSIGN_OR_RETURN(SqlResult first,
                        c.Exec("SELECT MIN(seq) FROM audit_log WHERE ts >= $1", {from_ts}));
    AR_ASSIGN_OR_RETURN(SqlResult last,
                        c.Exec("SELECT MAX(seq) FROM audit_log WHERE ts < $1", {to_ts}));
    if (first.rows.empty() || last.rows.empty() || first.rows[0].IsNull(0) ||
        last.rows[0].IsNull(0) || first.rows[0].Int(0) > last.rows[0].Int(0)) {
      return out;
    }
    const int64_t from_seq = first.rows[0].Int(0);
    const int64_t to_seq = last.rows[0].Int(0);
    if (from_seq > 1) {
      AR_ASSIGN_OR_RETURN(SqlResult before,
                          c.Exec("SELECT seq, hash FROM audit_log WHERE seq = $1",
                                 {from_seq - 1}));
      if (before.rows.empty()) return common::DataLossError("audit record before the range is missing");
      out.anchor.seq = before.rows[0].Int(0);
      out.anchor.hash = before.rows[0].Blob(1);
    }
    // Committed seqs always form a prefix (appends are serialized and take
    // the next seq), so [from_seq, to_seq] has no gaps and does not change.
    AR_ASSIGN_OR_RETURN(SqlResult rows,
                        c.Exec(Sql("SELECT ", kAuditColumns,
                                   " FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq"),
                               {from_seq, to_seq}));
    for (const SqlRow& row : rows.rows) {
      AR_ASSIGN_OR_RETURN(AuditEntry entry, AuditFromRow(row));
      AR_ASSIGN_OR_RETURN(std::string line, AuditEntryToJsonLine(entry));
      out.jsonl += line;
      out.jsonl += '\n';
    }
    return out;
  }

  // ---- governance (issue 6) ----

  Status SetOperatorCertFingerprint(std::string_view id, std::string_view fingerprint,
                                    const AuditRecord* audit) override {
    return UpdateOne(audit, "UPDATE operators SET cert_fingerprint = $2 WHERE id = $1",
                     {id, NullIfEmpty(fingerprint)}, "operator");
  }

  Result<std::vector<std::string>> DisableOperator(std::string_view id, const AuditRecord& audit) override {
    AR_RETURN_IF_ERROR(ValidateAuditRecord(audit));
    const int64_t now = Now();
    std::vector<std::string> suspended;
    // One transaction behind the audit chain lock, like every write that
    // changes operators' status or agents' owners, so two co-owners disabled
    // at once on two replicas cannot each leave the agent to the other.
    const Status written = Transact(/*lock_audit=*/true, [&](SqlConnection& c, bool&) -> Status {
      suspended.clear();
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE operators SET status = 'disabled' "
                                              "WHERE id = $1 AND status = 'active'",
                                              {id}));
      if (r.affected != 1) {
        return ExplainState(c, "SELECT status FROM operators WHERE id = $1", id, "operator", "active");
      }
      AR_ASSIGN_OR_RETURN(
          SqlResult orphaned,
          c.Exec("SELECT a.id FROM agents a JOIN agent_owners o ON o.agent_id = a.id "
                 "WHERE o.operator_id = $1 AND a.status = 'active' AND NOT EXISTS ("
                 "SELECT 1 FROM agent_owners other JOIN operators p ON p.id = other.operator_id "
                 "WHERE other.agent_id = a.id AND p.status = 'active') "
                 "ORDER BY a.id",
                 {id}));
      for (const SqlRow& row : orphaned.rows) suspended.push_back(row.Text(0));
      std::sort(suspended.begin(), suspended.end());  // byte order, whatever the collation
      AR_RETURN_IF_ERROR(AppendLocked(c, audit).status());
      AuditRecord suspend;
      suspend.actor = audit.actor;
      suspend.action = "agent.suspend";
      suspend.decision = AuditDecision::kInfo;
      suspend.reasons = {"no_active_owner"};
      suspend.details = Json{{"disabled_owner", std::string(id)}};
      for (const std::string& agent_id : suspended) {
        AR_RETURN_IF_ERROR(c.Exec("UPDATE agents SET status = 'suspended', updated_at = $2 WHERE id = $1",
                                  {agent_id, now})
                               .status());
        AR_RETURN_IF_ERROR(RevokeTokensIn(c, kTokensOfAgent, agent_id, now).status());
        suspend.subject = agent_id;
        AR_RETURN_IF_ERROR(AppendLocked(c, suspend).status());
      }
      return Status();
    });
    if (!written.ok()) return written;
    return suspended;
  }

  Status AddTrustAnchor(const TrustAnchor& anchor, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(ValidateTrustAnchor(anchor));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      return c.Exec(Sql("INSERT INTO trust_anchors (", kTrustAnchorColumns, ") VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                    {anchor.id, TrustAnchorKindName(anchor.kind), anchor.value, anchor.host_group,
                     anchor.description, anchor.created_by, now})
          .status();
    });
  }

  Status RemoveTrustAnchor(std::string_view id, const AuditRecord* audit) override {
    return UpdateOne(audit, "DELETE FROM trust_anchors WHERE id = $1", {id}, "trust anchor");
  }

  Result<std::vector<TrustAnchor>> ListTrustAnchors() override {
    AR_ASSIGN_OR_RETURN(std::vector<TrustAnchor> anchors,
                        GetMany<TrustAnchor>(Sql("SELECT ", kTrustAnchorColumns, " FROM trust_anchors"), {},
                                             TrustAnchorFromRow));
    // Kind in enum order, then id in byte order (not the database's collation).
    std::sort(anchors.begin(), anchors.end(), [](const TrustAnchor& a, const TrustAnchor& b) {
      return std::tie(a.kind, a.id) < std::tie(b.kind, b.id);
    });
    return anchors;
  }

  Status CreateJitGrant(const JitGrant& grant, const AuditRecord* audit) override {
    AR_RETURN_IF_ERROR(ValidateJitGrant(grant));
    AR_ASSIGN_OR_RETURN(std::string scopes, EncodeStringList(grant.scopes));
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      const Status inserted =
          c.Exec(Sql("INSERT INTO jit_grants (", kJitGrantColumns,
                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL, NULL, NULL, NULL)"),
                 {grant.id, grant.agent_id, scopes, grant.reason, grant.duration_seconds, grant.requested_by, now})
              .status();
      if (inserted.code() == common::StatusCode::kFailedPrecondition) {
        return common::FailedPreconditionError("no agent " + grant.agent_id);
      }
      return inserted;
    });
  }

  Result<JitGrant> GetJitGrant(std::string_view id) override {
    return GetOne<JitGrant>(Sql("SELECT ", kJitGrantColumns, " FROM jit_grants WHERE id = $1"), {id},
                            JitGrantFromRow, "JIT grant");
  }

  Status DecideJitGrant(std::string_view id, JitStatus decision, std::string_view decided_by,
                        std::string_view comment, int64_t expires_at, const AuditRecord* audit) override {
    if (decision != JitStatus::kApproved && decision != JitStatus::kRejected) {
      return common::InvalidArgumentError("a JIT decision approves or rejects");
    }
    AR_RETURN_IF_ERROR(RequireNonEmpty(decided_by, "decided_by"));
    const internal::SqlParam expiry =
        decision == JitStatus::kApproved ? internal::SqlParam(expires_at) : internal::SqlParam(nullptr);
    const int64_t now = Now();
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r,
                          c.Exec("UPDATE jit_grants SET status = $2, decided_by = $3, decided_at = $4, "
                                 "comment = $5, expires_at = $6 WHERE id = $1 AND status = 'pending'",
                                 {id, JitStatusName(decision), decided_by, now, comment, expiry}));
      if (r.affected == 1) return Status();
      return ExplainState(c, "SELECT status FROM jit_grants WHERE id = $1", id, "JIT grant", "pending");
    });
  }

  Status RevokeJitGrant(std::string_view id, const AuditRecord* audit) override {
    return Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("UPDATE jit_grants SET status = 'revoked' "
                                              "WHERE id = $1 AND status IN ('pending', 'approved')",
                                              {id}));
      if (r.affected == 1) return Status();
      return ExplainState(c, "SELECT status FROM jit_grants WHERE id = $1", id, "JIT grant",
                          "pending or approved");
    });
  }

  Result<std::vector<JitGrant>> ListJitGrants(std::string_view agent_id) override {
    if (agent_id.empty()) {
      return GetMany<JitGrant>(Sql("SELECT ", kJitGrantColumns, " FROM jit_grants ORDER BY requested_at DESC, id"),
                               {}, JitGrantFromRow);
    }
    return GetMany<JitGrant>(
        Sql("SELECT ", kJitGrantColumns, " FROM jit_grants WHERE agent_id = $1 ORDER BY requested_at DESC, id"),
        {agent_id}, JitGrantFromRow);
  }

  Result<std::vector<JitGrant>> ActiveJitGrants(std::string_view agent_id, int64_t now) override {
    // The index (agent_id, status, expires_at) answers it in order.
    return GetMany<JitGrant>(Sql("SELECT ", kJitGrantColumns,
                                 " FROM jit_grants WHERE agent_id = $1 AND status = 'approved' "
                                 "AND expires_at > $2 ORDER BY expires_at, id"),
                             {agent_id, now}, JitGrantFromRow);
  }

  Result<std::vector<Manifest>> ListManifestsByStatus(ManifestStatus status) override {
    return GetMany<Manifest>(Sql("SELECT ", kManifestColumns,
                                 " FROM manifests WHERE status = $1 ORDER BY created_at, agent_id, version"),
                             {EnumName(status, kManifestStatusNames)}, ManifestFromRow);
  }

  Result<std::map<std::string, TokenUsage>> TokenUsageByAgent(int64_t since) override {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    // Both read the index (agent_id, issued_at); the second also the rows of
    // the window only, for their scopes.
    AR_ASSIGN_OR_RETURN(SqlResult totals,
                        lease->Exec("SELECT agent_id, MAX(issued_at), "
                                    "COUNT(CASE WHEN issued_at >= $1 THEN 1 END) "
                                    "FROM issued_tokens GROUP BY agent_id",
                                    {since}));
    AR_ASSIGN_OR_RETURN(SqlResult scopes, lease->Exec("SELECT DISTINCT agent_id, scope FROM issued_tokens "
                                                      "WHERE issued_at >= $1",
                                                      {since}));
    std::map<std::string, TokenUsage> usage;
    for (const SqlRow& row : totals.rows) {
      TokenUsage& u = usage[row.Text(0)];
      u.last_issued_at = row.Int(1);
      u.tokens_since = row.Int(2);
    }
    std::map<std::string, std::set<std::string>> seen;
    for (const SqlRow& row : scopes.rows) {
      std::set<std::string>& agent_scopes = seen[row.Text(0)];
      const std::string scope = row.Text(1);
      for (std::size_t at = 0; at < scope.size();) {
        std::size_t end = scope.find(' ', at);
        if (end == std::string::npos) end = scope.size();
        if (end > at) agent_scopes.insert(scope.substr(at, end - at));
        at = end + 1;
      }
    }
    for (auto& [agent_id, agent_scopes] : seen) {
      usage[agent_id].scopes_since.assign(agent_scopes.begin(), agent_scopes.end());
    }
    return usage;
  }

  Result<std::map<std::string, int64_t>> LatestAuditBySubject(std::string_view action,
                                                              AuditDecision decision) override {
    return LatestAuditBy("subject", action, decision);
  }

  Result<std::map<std::string, int64_t>> LatestAuditByActor(std::string_view action,
                                                            AuditDecision decision) override {
    return LatestAuditBy("actor", action, decision);
  }

  Result<std::vector<AuditEntry>> AuditByAction(std::string_view action, std::size_t limit) override {
    const int64_t n = static_cast<int64_t>(std::min<std::size_t>(limit, std::numeric_limits<int64_t>::max()));
    AR_ASSIGN_OR_RETURN(std::string literal, ActionLiteral(action));
    return GetMany<AuditEntry>(
        Sql("SELECT ", kAuditColumns, " FROM audit_log WHERE action = " + literal + " ORDER BY seq DESC LIMIT $1"),
        {n}, AuditFromRow);
  }

 private:
  // A pooled connection, returned to the pool (or dropped if broken) when
  // the lease ends.
  class Lease {
   public:
    Lease(SqlStore* store, std::unique_ptr<SqlConnection> conn)
        : store_(store), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) store_->Release(std::move(conn_));
    }
    SqlConnection& operator*() { return *conn_; }
    SqlConnection* operator->() { return conn_.get(); }

   private:
    SqlStore* store_;
    std::unique_ptr<SqlConnection> conn_;
  };

  int64_t Now() const { return clock_.NowUnixSeconds(); }

  Result<Lease> Acquire() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxConnections; });
      if (!idle_.empty()) {
        std::unique_ptr<SqlConnection> conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
      ++open_;
    }
    auto conn = factory_();
    if (!conn.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      --open_;
      cv_.notify_one();
      return conn.status();
    }
    return Lease(this, std::move(conn).value());
  }

  void Release(std::unique_ptr<SqlConnection> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn->broken()) {
      --open_;
      conn.reset();
    } else {
      idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
  }

  // The body of a write transaction: OK commits its changes; an error rolls
  // them back and is returned; `discard` set with OK rolls them back and
  // returns OK (a request answered before).
  using TxnBody = std::function<Status(SqlConnection&, bool& discard)>;

  // Runs `body` in a write transaction, after the audit chain lock when
  // `lock_audit` (lock order: audit chain, then rows — so audit writers
  // never deadlock). Returns once the transaction is durable (or failed).
  Status Transact(bool lock_audit, const TxnBody& body) {
    if (backend_ == "sqlite") return GroupCommit(body);
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    SqlConnection& c = *lease;
    AR_RETURN_IF_ERROR(c.BeginWrite());
    bool discard = false;
    Status status = [&]() -> Status {
      if (lock_audit) AR_RETURN_IF_ERROR(c.LockAuditChain());
      AR_RETURN_IF_ERROR(body(c, discard));
      return discard ? c.Rollback() : c.Commit();
    }();
    if (!status.ok()) c.Rollback().IgnoreError();
    return status;
  }

  // SQLite group commit. SQLite has one writer per file and each COMMIT is a
  // WAL fsync; its busy handler makes a writer that finds the file locked
  // sleep and poll (1, 2, 5, 10 ms ...). So this process's write
  // transactions queue here instead: one thread (the leader) takes every
  // body queued so far, runs them in one BEGIN IMMEDIATE transaction, each
  // inside its own SAVEPOINT (a failing body rolls back only itself), and
  // commits once; bodies queued meanwhile form the next batch. Every caller
  // returns only after the COMMIT that holds its changes (or with its
  // error). The audit chain needs no lock: the batch is the only writer and
  // each body reads the head its predecessors left. Other processes on the
  // file still meet the busy handler (busy_timeout).
  struct QueuedWrite {
    const TxnBody* body;
    Status result;
    bool done = false;
  };

  Status GroupCommit(const TxnBody& body) {
    QueuedWrite me{&body, Status()};
    std::unique_lock<std::mutex> lock(commit_mu_);
    commit_queue_.push_back(&me);
    while (!me.done) {
      if (committing_) {
        commit_cv_.wait(lock);
        continue;
      }
      committing_ = true;
      std::vector<QueuedWrite*> batch;
      batch.swap(commit_queue_);
      lock.unlock();
      RunBatch(batch);
      lock.lock();
      for (QueuedWrite* w : batch) w->done = true;
      committing_ = false;
      commit_cv_.notify_all();
    }
    return me.result;
  }

  void RunBatch(const std::vector<QueuedWrite*>& batch) {
    auto fail_all = [&](const Status& status) {
      for (QueuedWrite* w : batch) w->result = status;
    };
    Result<Lease> lease = Acquire();
    if (!lease.ok()) return fail_all(lease.status());
    SqlConnection& c = **lease;
    if (Status begun = c.BeginWrite(); !begun.ok()) return fail_all(begun);
    for (QueuedWrite* w : batch) {
      if (Status s = c.ExecScript("SAVEPOINT w"); !s.ok()) {
        c.Rollback().IgnoreError();
        return fail_all(s);
      }
      bool discard = false;
      try {
        w->result = (*w->body)(c, discard);
      } catch (const std::exception& e) {
        w->result = common::InternalError(std::string("write transaction threw: ") + e.what());
      }
      const Status ended = w->result.ok() && !discard ? c.ExecScript("RELEASE w")
                                                      : c.ExecScript("ROLLBACK TO w; RELEASE w");
      if (!ended.ok()) {  // the transaction is gone (SQLite rolled it back)
        c.Rollback().IgnoreError();
        return fail_all(ended);
      }
    }
    if (Status committed = c.Commit(); !committed.ok()) {
      c.Rollback().IgnoreError();
      for (QueuedWrite* w : batch) {
        if (w->result.ok()) w->result = committed;
      }
    }
  }

  // Runs `fn` in a write transaction; appends `audit` (when not null) in the
  // same transaction, after taking the audit chain lock first. `lock_chain`
  // takes that lock even without a record: it serializes the write with
  // every audited one on PostgreSQL (SQLite: already one writer).
  template <typename Fn>
  Status Write(const AuditRecord* audit, Fn&& fn) {
    return Write(audit, /*lock_chain=*/false, std::forward<Fn>(fn));
  }
  template <typename Fn>
  Status Write(const AuditRecord* audit, bool lock_chain, Fn&& fn) {
    if (audit != nullptr) AR_RETURN_IF_ERROR(ValidateAuditRecord(*audit));
    return Transact(audit != nullptr || lock_chain, [&](SqlConnection& c, bool&) -> Status {
      AR_RETURN_IF_ERROR(fn(c));
      if (audit != nullptr) AR_RETURN_IF_ERROR(AppendLocked(c, *audit).status());
      return Status();
    });
  }

  // Inside a write transaction: consumes the nonce, returns its bound data.
  static Result<Bytes> ConsumeNonceIn(SqlConnection& c, std::string_view value,
                                      std::string_view purpose, int64_t now) {
    // The single conditional UPDATE is the whole guarantee: of any number
    // of concurrent callers exactly one sees a row.
    AR_ASSIGN_OR_RETURN(
        SqlResult r,
        c.Exec("UPDATE nonces SET consumed_at = $3 WHERE value = $1 AND purpose = $2 "
               "AND consumed_at IS NULL AND expires_at > $3 RETURNING bound_data",
               {value, purpose, now}));
    if (r.rows.size() == 1) return r.rows[0].Blob(0);
    AR_ASSIGN_OR_RETURN(SqlResult s, c.Exec("SELECT consumed_at FROM nonces WHERE value = $1 "
                                            "AND purpose = $2",
                                            {value, purpose}));
    if (s.rows.empty()) return common::NotFoundError("unknown nonce");
    if (!s.rows[0].IsNull(0)) return common::FailedPreconditionError("nonce already used");
    return common::FailedPreconditionError("nonce expired");
  }

  // Inside a write transaction: records a DPoP proof jti; ALREADY_EXISTS
  // when it was recorded before.
  static Status RecordProofJtiIn(SqlConnection& c, std::string_view jti, int64_t expires_at) {
    AR_ASSIGN_OR_RETURN(SqlResult r,
                        c.Exec("INSERT INTO proof_jtis (jti, expires_at) VALUES ($1, $2) "
                               "ON CONFLICT (jti) DO NOTHING",
                               {jti, expires_at}));
    if (r.affected != 1) return common::AlreadyExistsError("DPoP proof jti already used");
    return Status();
  }

  Result<AuditAnchor> HeadOf(SqlConnection& c) {
    AR_ASSIGN_OR_RETURN(SqlResult r,
                        c.Exec("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", {}));
    AuditAnchor head;
    if (!r.rows.empty()) {
      head.seq = r.rows[0].Int(0);
      head.hash = r.rows[0].Blob(1);
    }
    return head;
  }

  // Precondition: inside a write transaction holding the audit chain lock.
  Result<AuditEntry> AppendLocked(SqlConnection& c, const AuditRecord& record) {
    AR_ASSIGN_OR_RETURN(AuditAnchor head, HeadOf(c));
    AuditEntry entry;
    entry.seq = head.seq + 1;
    entry.ts = Now();
    entry.record = record;
    if (entry.record.details.is_null()) entry.record.details = Json::object();
    entry.prev_hash = head.hash;
    AR_ASSIGN_OR_RETURN(std::string body, CanonicalAuditBody(entry));
    entry.hash = ComputeAuditHash(entry.prev_hash, body);
    AR_ASSIGN_OR_RETURN(std::string reasons, EncodeStringList(record.reasons));
    AR_ASSIGN_OR_RETURN(std::string details, CanonicalJson(entry.record.details));
    AR_RETURN_IF_ERROR(c.Exec(Sql("INSERT INTO audit_log (", kAuditColumns,
                                  ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                              {entry.seq, entry.ts, record.actor, record.action, record.subject,
                               AuditDecisionName(record.decision), reasons, details,
                               ByteView(entry.prev_hash), ByteView(entry.hash)})
                           .status());
    return entry;
  }

  // After a conditional UPDATE matched nothing: NOT_FOUND, or
  // FAILED_PRECONDITION naming the current state.
  static Status ExplainState(SqlConnection& c, std::string_view sql, std::string_view id,
                             std::string_view what, std::string_view expected) {
    AR_ASSIGN_OR_RETURN(SqlResult s, c.Exec(sql, {id}));
    if (s.rows.empty()) return common::NotFoundError("no " + std::string(what) + " " + std::string(id));
    return common::FailedPreconditionError(std::string(what) + " " + std::string(id) + " is " +
                                           s.rows[0].Text(0) + ", not " + std::string(expected));
  }

  Status UpdateOne(const AuditRecord* audit, std::string_view sql,
                   std::initializer_list<internal::SqlParam> params, std::string_view what,
                   bool lock_chain = false) {
    return Write(audit, lock_chain, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec(sql, params));
      if (r.affected != 1) return common::NotFoundError("no such " + std::string(what));
      return Status();
    });
  }

  Result<int64_t> Delete(std::string_view sql, int64_t now) {
    int64_t count = 0;
    const Status written = Write(nullptr, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec(sql, {now}));
      count = r.affected;
      return Status();
    });
    if (!written.ok()) return written;
    return count;
  }

  // The outstanding tokens of one agent or host: `sql` is one of these two.
  static constexpr std::string_view kTokensOfAgent =
      "UPDATE issued_tokens SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL";
  static constexpr std::string_view kTokensOfHost =
      "UPDATE issued_tokens SET revoked_at = $2 WHERE host_id = $1 AND revoked_at IS NULL";

  // Inside a write transaction: stamps revoked_at; returns how many.
  static Result<int64_t> RevokeTokensIn(SqlConnection& c, std::string_view sql, std::string_view value,
                                        int64_t now) {
    AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec(sql, {value, now}));
    return r.affected;
  }

  Result<int64_t> RevokeWhere(std::string_view sql, std::string_view value, const AuditRecord* audit) {
    const int64_t now = Now();
    int64_t count = 0;
    const Status written = Write(audit, [&](SqlConnection& c) -> Status {
      AR_ASSIGN_OR_RETURN(count, RevokeTokensIn(c, sql, value, now));
      return Status();
    });
    if (!written.ok()) return written;
    return count;
  }

  // `sql`: "SELECT <key>, MAX(ts) FROM audit_log WHERE action = $1 AND
  // decision = $2 GROUP BY <key>", read from a covering index.
  // The action is written into the SQL as a literal (after checking it is
  // a plain action name), not bound: only then can the planners use the
  // partial indexes, which cover only the actions the inventory reads
  // ("attest", "agent.shadow"), so that the hot path's token.issue records
  // maintain none of them.
  static Result<std::string> ActionLiteral(std::string_view action) {
    if (action.empty() || action.size() > 64 || !std::all_of(action.begin(), action.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        })) {
      return common::InvalidArgumentError("audit action must be [a-z0-9._-], 1-64 characters");
    }
    return "'" + std::string(action) + "'";
  }

  Result<std::map<std::string, int64_t>> LatestAuditBy(std::string_view column, std::string_view action,
                                                       AuditDecision decision) {
    AR_ASSIGN_OR_RETURN(std::string literal, ActionLiteral(action));
    const std::string sql = "SELECT " + std::string(column) + ", MAX(ts) FROM audit_log WHERE action = " + literal +
                            " AND decision = $1 GROUP BY " + std::string(column);
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec(sql, {AuditDecisionName(decision)}));
    std::map<std::string, int64_t> latest;
    for (const SqlRow& row : r.rows) latest[row.Text(0)] = row.Int(1);
    return latest;
  }

  Result<WindowCount> CountWindow(std::string_view sql, std::initializer_list<internal::SqlParam> params) {
    return GetOne<WindowCount>(
        sql, params,
        [](const SqlRow& r) -> Result<WindowCount> { return WindowCount{r.Int(0), r.IsNull(1) ? 0 : r.Int(1)}; },
        "count");
  }

  template <typename T, typename Map>
  Result<T> GetOne(std::string_view sql, std::initializer_list<internal::SqlParam> params,
                   Map&& map, std::string_view what) {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec(sql, params));
    if (r.rows.empty()) return common::NotFoundError("no such " + std::string(what));
    return map(r.rows[0]);
  }

  template <typename T, typename Map>
  Result<std::vector<T>> GetMany(std::string_view sql,
                                 std::initializer_list<internal::SqlParam> params, Map&& map) {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    AR_ASSIGN_OR_RETURN(SqlResult r, lease->Exec(sql, params));
    std::vector<T> out;
    out.reserve(r.rows.size());
    for (const SqlRow& row : r.rows) {
      AR_ASSIGN_OR_RETURN(T value, map(row));
      out.push_back(std::move(value));
    }
    return out;
  }

  Status InsertOwners(SqlConnection& c, const Agent& agent) {
    std::vector<std::string> owners = agent.owners;
    std::sort(owners.begin(), owners.end());
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
    for (const std::string& owner : owners) {
      Status s = c.Exec("INSERT INTO agent_owners (agent_id, operator_id) VALUES ($1, $2)",
                        {agent.id, owner})
                     .status();
      if (s.code() == common::StatusCode::kFailedPrecondition) {
        return common::FailedPreconditionError("owner " + owner + " is not an operator");
      }
      AR_RETURN_IF_ERROR(s);
    }
    return Status();
  }

  static Status LoadOwners(SqlConnection& c, Agent& agent) {
    AR_ASSIGN_OR_RETURN(SqlResult r, c.Exec("SELECT operator_id FROM agent_owners "
                                            "WHERE agent_id = $1 ORDER BY operator_id",
                                            {agent.id}));
    agent.owners.clear();
    for (const SqlRow& row : r.rows) agent.owners.push_back(row.Text(0));
    return Status();
  }

  Result<std::vector<Agent>> ListAgentsQuery(std::string_view sql, std::string_view param) {
    AR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    Result<SqlResult> r = param.empty() ? lease->Exec(sql, {}) : lease->Exec(sql, {param});
    if (!r.ok()) return r.status();
    std::vector<Agent> agents;
    for (const SqlRow& row : r->rows) {
      AR_ASSIGN_OR_RETURN(Agent agent, AgentFromRow(row));
      AR_RETURN_IF_ERROR(LoadOwners(*lease, agent));
      agents.push_back(std::move(agent));
    }
    return agents;
  }

  const std::string backend_;
  const Factory factory_;
  const common::Clock& clock_;

  std::mutex commit_mu_;  // SQLite group commit
  std::condition_variable commit_cv_;
  std::vector<QueuedWrite*> commit_queue_;  // guarded by commit_mu_
  bool committing_ = false;                 // guarded by commit_mu_: a leader runs a batch
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<SqlConnection>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                              // guarded by mu_
};

}  // namespace

std::string_view HostStatusName(HostStatus status) { return EnumName(status, kHostStatusNames); }
std::string_view RoleName(Role role) { return EnumName(role, kRoleNames); }
Result<Role> ParseRole(std::string_view name) {
  auto role = ParseEnum(name, kRoleNames, "role");
  if (!role.ok()) return common::InvalidArgumentError("unknown role \"" + std::string(name) + "\"");
  return role;
}
std::string_view AgentStatusName(AgentStatus status) { return EnumName(status, kAgentStatusNames); }
std::string_view ManifestStatusName(ManifestStatus status) {
  return EnumName(status, kManifestStatusNames);
}
std::string_view TrustAnchorKindName(TrustAnchorKind kind) { return EnumName(kind, kTrustAnchorKindNames); }
Result<TrustAnchorKind> ParseTrustAnchorKind(std::string_view name) {
  auto kind = ParseEnum(name, kTrustAnchorKindNames, "trust anchor kind");
  if (!kind.ok()) return common::InvalidArgumentError("unknown trust anchor kind \"" + std::string(name) + "\"");
  return kind;
}
std::string_view JitStatusName(JitStatus status) { return EnumName(status, kJitStatusNames); }

int Store::LatestSchemaVersion() { return internal::LatestVersion(); }

Result<std::unique_ptr<Store>> Store::Open(std::string_view uri, const common::Clock& clock) {
  std::string backend;
  SqlStore::Factory factory;
  if (uri.starts_with("sqlite:")) {
    std::string path(uri.substr(std::string_view("sqlite:").size()));
    if (path.empty() || path == ":memory:" || path.starts_with("file:")) {
      return common::InvalidArgumentError("sqlite: URI needs a file path (sqlite:/path/file.db)");
    }
    backend = "sqlite";
    factory = [path]() { return internal::OpenSqliteConnection(path); };
  } else if (uri.starts_with("postgresql://") || uri.starts_with("postgres://")) {
    backend = "postgresql";
    factory = [conninfo = std::string(uri)]() { return internal::OpenPostgresConnection(conninfo); };
  } else {
    return common::InvalidArgumentError(
        "store URI must start with sqlite: or postgresql:// (got scheme \"" +
        std::string(uri.substr(0, uri.find(':'))) + "\")");
  }
  AR_ASSIGN_OR_RETURN(std::unique_ptr<SqlConnection> first, factory());
  AR_RETURN_IF_ERROR(internal::Migrate(*first, clock.NowUnixSeconds()));
  auto store = std::make_unique<SqlStore>(std::move(backend), std::move(factory), clock);
  store->AddIdle(std::move(first));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace agentroot::attestation::store
