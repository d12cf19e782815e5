#include "migrations.h"

#include <string>

namespace agentroot::attestation::store::internal {
namespace {

using common::Result;
using common::Status;

// ---- SQLite ------------------------------------------------------------------

constexpr std::string_view kSqliteV1 = R"sql(
CREATE TABLE hosts (
  id TEXT PRIMARY KEY,
  ek_public BLOB NOT NULL,
  ek_sha256 BLOB NOT NULL UNIQUE,
  ek_certificate BLOB NOT NULL,
  ak_public BLOB NOT NULL,
  ak_name BLOB NOT NULL,
  host_group TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
  enrolled_at INTEGER NOT NULL,
  approved_by TEXT,
  approved_at INTEGER,
  revoked_at INTEGER,
  ak_replaced_at INTEGER
);
CREATE INDEX hosts_by_group ON hosts (host_group);

CREATE TABLE operators (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  roles TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
  cert_fingerprint TEXT UNIQUE,
  created_at INTEGER NOT NULL
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  host_id TEXT REFERENCES hosts (id),
  host_group TEXT,
  allowed_scopes TEXT NOT NULL,
  allowed_audiences TEXT NOT NULL,
  max_token_ttl_seconds INTEGER NOT NULL CHECK (max_token_ttl_seconds > 0),
  expires_at INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'retired')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK ((host_id IS NULL) <> (host_group IS NULL))
);

CREATE TABLE agent_owners (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  operator_id TEXT NOT NULL REFERENCES operators (id),
  PRIMARY KEY (agent_id, operator_id)
);
CREATE INDEX agent_owners_by_operator ON agent_owners (operator_id);

CREATE TABLE manifests (
  agent_id TEXT NOT NULL REFERENCES agents (id),
  version INTEGER NOT NULL CHECK (version > 0),
  content TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  reviewer_id TEXT REFERENCES operators (id),
  reviewed_at INTEGER,
  comment TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (agent_id, version)
);

CREATE TABLE agent_keys (
  thumbprint TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  host_id TEXT NOT NULL REFERENCES hosts (id),
  public_jwk TEXT NOT NULL,
  tpm_public BLOB NOT NULL,
  certified_at INTEGER NOT NULL
);
CREATE INDEX agent_keys_by_agent ON agent_keys (agent_id);

CREATE TABLE nonces (
  value TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  bound_data BLOB NOT NULL,
  expires_at INTEGER NOT NULL,
  consumed_at INTEGER
);
CREATE INDEX nonces_by_expiry ON nonces (expires_at);

CREATE TABLE issued_tokens (
  jti TEXT PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  host_id TEXT NOT NULL REFERENCES hosts (id),
  cnf_jkt TEXT NOT NULL,
  scope TEXT NOT NULL,
  audience TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX issued_tokens_by_agent ON issued_tokens (agent_id);

CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  ts INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'info')),
  reasons TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL UNIQUE
);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
)sql";

constexpr std::string_view kSqliteV2 = R"sql(
CREATE TABLE proof_jtis (
  jti TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX proof_jtis_by_expiry ON proof_jtis (expires_at);
CREATE INDEX issued_tokens_by_host ON issued_tokens (host_id);
)sql";

// Rate limits counted in the store: tokens per agent and challenges per host
// in the last minute. The challenge index is partial: enrollment nonces bind
// large JSON and are never counted.
constexpr std::string_view kSqliteV3 = R"sql(
ALTER TABLE nonces ADD COLUMN issued_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX nonces_challenges_by_host ON nonces (bound_data, issued_at)
  WHERE purpose IN ('attest', 'certify');
CREATE INDEX issued_tokens_by_agent_time ON issued_tokens (agent_id, issued_at);
DROP INDEX issued_tokens_by_agent;
)sql";

// Governance (issue 6): operator-managed trust anchors, JIT elevations, the
// review queue, and the inventory's audit reads. Two audit indexes lead with
// (action, decision) so "latest ts per subject/actor of action X with decision
// Y" is read from the index alone (covering), never from the log's rows; the
// third gives "the latest N records of action X" without sorting them all.
constexpr std::string_view kSqliteV4 = R"sql(
CREATE TABLE trust_anchors (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('manufacturer_ca', 'ek_pin', 'auto_approve')),
  value TEXT NOT NULL,
  host_group TEXT NOT NULL,
  description TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE jit_grants (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  scopes TEXT NOT NULL,
  reason TEXT NOT NULL,
  duration_seconds INTEGER NOT NULL CHECK (duration_seconds > 0),
  requested_by TEXT NOT NULL,
  requested_at INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
  decided_by TEXT,
  decided_at INTEGER,
  comment TEXT,
  expires_at INTEGER
);
CREATE INDEX jit_grants_by_agent ON jit_grants (agent_id, status, expires_at);

CREATE INDEX manifests_by_status ON manifests (status, created_at);
-- Partial: only the records the inventory reads are indexed, so the hot
-- path's token.issue appends maintain none of these.
CREATE INDEX audit_log_attest_by_subject ON audit_log (decision, subject, ts, action) WHERE action = 'attest';
CREATE INDEX audit_log_attest_by_actor ON audit_log (decision, actor, ts, action) WHERE action = 'attest';
CREATE INDEX audit_log_shadow ON audit_log (seq) WHERE action = 'agent.shadow';
)sql";

constexpr Migration kSqliteMigrations[] = {
    {1, "hosts, operators, agents, manifests, keys, nonces, tokens, audit log", kSqliteV1},
    {2, "DPoP proof jti replay cache; tokens by host", kSqliteV2},
    {3, "rate limits: nonce issue times, challenges by host, tokens by agent and time", kSqliteV3},
    {4, "governance: trust anchors, JIT grants, manifests by status, audit by action", kSqliteV4},
};

// ---- PostgreSQL -------------------------------------------------------------

constexpr std::string_view kPostgresV1 = R"sql(
CREATE TABLE hosts (
  id TEXT PRIMARY KEY,
  ek_public BYTEA NOT NULL,
  ek_sha256 BYTEA NOT NULL UNIQUE,
  ek_certificate BYTEA NOT NULL,
  ak_public BYTEA NOT NULL,
  ak_name BYTEA NOT NULL,
  host_group TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
  enrolled_at BIGINT NOT NULL,
  approved_by TEXT,
  approved_at BIGINT,
  revoked_at BIGINT,
  ak_replaced_at BIGINT
);
CREATE INDEX hosts_by_group ON hosts (host_group);

CREATE TABLE operators (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  roles TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
  cert_fingerprint TEXT UNIQUE,
  created_at BIGINT NOT NULL
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  host_id TEXT REFERENCES hosts (id),
  host_group TEXT,
  allowed_scopes TEXT NOT NULL,
  allowed_audiences TEXT NOT NULL,
  max_token_ttl_seconds BIGINT NOT NULL CHECK (max_token_ttl_seconds > 0),
  expires_at BIGINT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'retired')),
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  CHECK ((host_id IS NULL) <> (host_group IS NULL))
);

CREATE TABLE agent_owners (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  operator_id TEXT NOT NULL REFERENCES operators (id),
  PRIMARY KEY (agent_id, operator_id)
);
CREATE INDEX agent_owners_by_operator ON agent_owners (operator_id);

CREATE TABLE manifests (
  agent_id TEXT NOT NULL REFERENCES agents (id),
  version BIGINT NOT NULL CHECK (version > 0),
  content TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  reviewer_id TEXT REFERENCES operators (id),
  reviewed_at BIGINT,
  comment TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (agent_id, version)
);

CREATE TABLE agent_keys (
  thumbprint TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  host_id TEXT NOT NULL REFERENCES hosts (id),
  public_jwk TEXT NOT NULL,
  tpm_public BYTEA NOT NULL,
  certified_at BIGINT NOT NULL
);
CREATE INDEX agent_keys_by_agent ON agent_keys (agent_id);

CREATE TABLE nonces (
  value TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  bound_data BYTEA NOT NULL,
  expires_at BIGINT NOT NULL,
  consumed_at BIGINT
);
CREATE INDEX nonces_by_expiry ON nonces (expires_at);

CREATE TABLE issued_tokens (
  jti TEXT PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  host_id TEXT NOT NULL REFERENCES hosts (id),
  cnf_jkt TEXT NOT NULL,
  scope TEXT NOT NULL,
  audience TEXT NOT NULL,
  issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE INDEX issued_tokens_by_agent ON issued_tokens (agent_id);

CREATE TABLE audit_log (
  seq BIGINT PRIMARY KEY CHECK (seq > 0),
  ts BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'info')),
  reasons TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL UNIQUE
);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
$fn$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $fn$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
)sql";

constexpr std::string_view kPostgresV2 = R"sql(
CREATE TABLE proof_jtis (
  jti TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE INDEX proof_jtis_by_expiry ON proof_jtis (expires_at);
CREATE INDEX issued_tokens_by_host ON issued_tokens (host_id);
)sql";

constexpr std::string_view kPostgresV3 = R"sql(
ALTER TABLE nonces ADD COLUMN issued_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX nonces_challenges_by_host ON nonces (bound_data, issued_at)
  WHERE purpose IN ('attest', 'certify');
CREATE INDEX issued_tokens_by_agent_time ON issued_tokens (agent_id, issued_at);
DROP INDEX issued_tokens_by_agent;
)sql";

constexpr std::string_view kPostgresV4 = R"sql(
CREATE TABLE trust_anchors (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('manufacturer_ca', 'ek_pin', 'auto_approve')),
  value TEXT NOT NULL,
  host_group TEXT NOT NULL,
  description TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE jit_grants (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  scopes TEXT NOT NULL,
  reason TEXT NOT NULL,
  duration_seconds BIGINT NOT NULL CHECK (duration_seconds > 0),
  requested_by TEXT NOT NULL,
  requested_at BIGINT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
  decided_by TEXT,
  decided_at BIGINT,
  comment TEXT,
  expires_at BIGINT
);
CREATE INDEX jit_grants_by_agent ON jit_grants (agent_id, status, expires_at);

CREATE INDEX manifests_by_status ON manifests (status, created_at);
-- Partial: only the records the inventory reads are indexed, so the hot
-- path's token.issue appends maintain none of these.
CREATE INDEX audit_log_attest_by_subject ON audit_log (decision, subject, ts, action) WHERE action = 'attest';
CREATE INDEX audit_log_attest_by_actor ON audit_log (decision, actor, ts, action) WHERE action = 'attest';
CREATE INDEX audit_log_shadow ON audit_log (seq) WHERE action = 'agent.shadow';
)sql";

constexpr Migration kPostgresMigrations[] = {
    {1, "hosts, operators, agents, manifests, keys, nonces, tokens, audit log", kPostgresV1},
    {2, "DPoP proof jti replay cache; tokens by host", kPostgresV2},
    {3, "rate limits: nonce issue times, challenges by host, tokens by agent and time", kPostgresV3},
    {4, "governance: trust anchors, JIT grants, manifests by status, audit by action", kPostgresV4},
};

static_assert(std::size(kSqliteMigrations) == std::size(kPostgresMigrations),
              "both backends must have the same migrations");

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " description TEXT NOT NULL,"
    " applied_at BIGINT NOT NULL)";

Status MigrateLocked(SqlConnection& conn, int64_t now, int target) {
  AR_RETURN_IF_ERROR(conn.LockMigrations());
  AR_RETURN_IF_ERROR(conn.ExecScript(kCreateMigrationsTable));
  AR_ASSIGN_OR_RETURN(const int current, CurrentVersion(conn));
  if (current > LatestVersion()) {
    return common::FailedPreconditionError(
        "database schema version " + std::to_string(current) +
        " is newer than this build supports (" + std::to_string(LatestVersion()) +
        "); run a newer agentroot-verifier");
  }
  for (const Migration& m : Migrations(conn.dialect())) {
    if (m.version <= current || m.version > target) continue;
    AR_RETURN_IF_ERROR(
        conn.ExecScript(m.sql).WithContext("migration " + std::to_string(m.version)));
    AR_RETURN_IF_ERROR(conn.Exec("INSERT INTO schema_migrations (version, description, applied_at)"
                                 " VALUES ($1, $2, $3)",
                                 {int64_t{m.version}, m.description, now})
                           .status());
  }
  return conn.Commit();
}

}  // namespace

std::span<const Migration> Migrations(Dialect dialect) {
  if (dialect == Dialect::kSqlite) return kSqliteMigrations;
  return kPostgresMigrations;
}

int LatestVersion() { return kSqliteMigrations[std::size(kSqliteMigrations) - 1].version; }

Result<int> CurrentVersion(SqlConnection& conn) {
  AR_ASSIGN_OR_RETURN(SqlResult r,
                      conn.Exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {}));
  if (r.rows.empty()) return 0;
  return static_cast<int>(r.rows[0].Int(0));
}

Status Migrate(SqlConnection& conn, int64_t now, int target) {
  if (target < 0) target = LatestVersion();
  AR_RETURN_IF_ERROR(conn.BeginWrite());
  Status status = MigrateLocked(conn, now, target);
  if (!status.ok()) conn.Rollback().IgnoreError();
  return status;
}

}  // namespace agentroot::attestation::store::internal
