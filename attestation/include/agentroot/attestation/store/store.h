// Store: all of the verifier's state in one SQL database, SQLite (default, one
// file, WAL, synchronous=FULL) or PostgreSQL (several verifier replicas).
//
// Both backends have the same schema (versioned migrations applied by Open),
// the same semantics and pass the same test suite. docs/store.md describes
// the tables and how each guarantee below is enforced.
//
// Guarantees, across threads and across processes sharing the database:
//   - ConsumeNonce succeeds exactly once per nonce (one conditional UPDATE).
//   - IssueToken stores the token row and its audit record in one durable
//     transaction before it returns; a second IssueToken with the same
//     request_id stores nothing and returns the first token's jti.
//   - RecordProofJti accepts a DPoP proof jti once.
//   - Audit appends are serialized (SQLite: BEGIN IMMEDIATE; PostgreSQL:
//     pg_advisory_xact_lock), so the hash chain never forks; the audit table
//     refuses UPDATE and DELETE.
//   - Mutations that take `const AuditRecord* audit` append it (when not
//     null) in the same transaction as the change.
//
// Errors (Status codes): NOT_FOUND (no such row), ALREADY_EXISTS (unique key
// taken), FAILED_PRECONDITION (state forbids it, a referenced row is missing,
// a nonce expired or was used), INVALID_ARGUMENT (malformed input),
// UNAVAILABLE (database busy or unreachable), DATA_LOSS (corruption), INTERNAL.
// Backend errors keep the SQLite extended code or the PostgreSQL SQLSTATE in
// the message; messages never contain values of secret columns or the
// connection password.
//
// Times are Unix seconds (int64). Creation and change times come from the
// Clock given to Open; expiry times come from the caller.
//
// Thread safety: every method may be called concurrently from any thread; a
// small pool gives each call its own connection. On SQLite, concurrent
// write calls on one Store share a transaction and its fsync (group commit,
// each in its own savepoint); each returns only after the commit holding
// its changes, with its own error if it failed. The Clock must outlive the
// Store.
#ifndef AGENTROOT_ATTESTATION_STORE_STORE_H_
#define AGENTROOT_ATTESTATION_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::store {

// ---- Hosts -----------------------------------------------------------------

enum class HostStatus { kPending, kApproved, kRevoked };
std::string_view HostStatusName(HostStatus status);

struct Host {
  std::string id;
  common::Bytes ek_public;         // marshalled TPM2B_PUBLIC of the EK
  common::Bytes ek_public_sha256;  // set by the store: SHA-256(ek_public), unique
  common::Bytes ek_certificate;    // DER; empty when the EK is pinned by hash
  common::Bytes ak_public;         // marshalled TPM2B_PUBLIC of the AK
  common::Bytes ak_name;           // TPM Name of the AK
  std::string host_group;
  HostStatus status = HostStatus::kPending;  // set by the store on create
  int64_t enrolled_at = 0;                   // set by the store
  std::string approved_by;                   // empty until approved
  int64_t approved_at = 0;                   // 0 until approved
  int64_t revoked_at = 0;                    // 0 unless revoked
  int64_t ak_replaced_at = 0;                // 0 unless ReplaceAk ran
};

// ---- Operators (people) ----------------------------------------------------

enum class Role { kInfra, kOwner, kReviewer, kAuditor };
std::string_view RoleName(Role role);
common::Result<Role> ParseRole(std::string_view name);

enum class OperatorStatus { kActive, kDisabled };

struct Operator {
  std::string id;
  std::string display_name;
  std::vector<Role> roles;  // a set: stored sorted, duplicates removed
  OperatorStatus status = OperatorStatus::kActive;
  std::string client_cert_fingerprint;  // unique when non-empty
  int64_t created_at = 0;               // set by the store
};

// ---- Agents ----------------------------------------------------------------

enum class AgentStatus { kActive, kSuspended, kRetired };
std::string_view AgentStatusName(AgentStatus status);

struct Agent {
  std::string id;    // spiffe://<trust-domain>/agent/<name>
  std::string name;  // [A-Za-z0-9._-]+, equal to the id's last segment
  // Exactly one of host_id (an existing host) and host_group is non-empty.
  std::string host_id;
  std::string host_group;
  std::vector<std::string> allowed_scopes;
  std::vector<std::string> allowed_audiences;
  int64_t max_token_ttl_seconds = 300;  // > 0
  int64_t expires_at = 0;               // registration expiry
  AgentStatus status = AgentStatus::kActive;
  std::vector<std::string> owners;  // operator ids, at least one; stored sorted
  int64_t created_at = 0;           // set by the store
  int64_t updated_at = 0;           // set by the store
};

// ---- Manifests ---------------------------------------------------------------

enum class ManifestStatus { kPending, kApproved, kRejected };
std::string_view ManifestStatusName(ManifestStatus status);

struct Manifest {
  std::string agent_id;
  int64_t version = 0;  // 1, 2, ... per agent, assigned by AddManifest
  // {"exe_digest", "file_digests", "model_id", "allowed_tools", ...}: opaque
  // to the store, stored as canonical JSON.
  common::Json content;
  ManifestStatus status = ManifestStatus::kPending;
  std::string reviewer_id;  // empty until reviewed
  int64_t reviewed_at = 0;
  std::string comment;
  int64_t created_at = 0;
};

// ---- Agent keys --------------------------------------------------------------

struct AgentKey {
  std::string thumbprint;  // RFC 7638 JWK thumbprint (base64url), unique
  std::string agent_id;
  std::string host_id;
  common::Json public_jwk;   // public members only
  common::Bytes tpm_public;  // marshalled TPM2B_PUBLIC of the key
  int64_t certified_at = 0;  // set by the store
};

// ---- Nonces ------------------------------------------------------------------

struct Nonce {
  std::string value;       // unique
  std::string purpose;     // "attest", "enroll", "dpop", ...
  common::Bytes bound_data;  // e.g. the host id it was issued to
  int64_t expires_at = 0;
  int64_t consumed_at = 0;  // 0 while unused
  int64_t issued_at = 0;    // 0: the store's clock at CreateNonce
};

// What a rate limit counts: rows in a time window.
struct WindowCount {
  int64_t count = 0;
  int64_t oldest = 0;  // the earliest time counted (0 when count == 0)
};

// ---- Issued tokens -------------------------------------------------------------

struct TokenRecord {
  std::string jti;         // unique
  std::string request_id;  // unique: one token per token request
  std::string agent_id;
  std::string host_id;
  std::string cnf_jkt;
  std::string scope;     // space-separated, as in the token
  std::string audience;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
  int64_t revoked_at = 0;  // 0 unless revoked
};

// A DPoP proof's entry in the replay cache (proof_jtis): `jti` is what
// RecordProofJti takes, `expires_at` when it may be purged.
struct ProofJti {
  std::string jti;
  int64_t expires_at = 0;
};

struct IssueTokenResult {
  std::string jti;         // the stored token's jti (the first one on a replay)
  bool created = false;    // false: request_id was known, nothing stored
  int64_t audit_seq = 0;   // seq of the audit record (0 when !created)
};

// ---- Trust anchors (operator-managed, beside the configuration file's) --------

enum class TrustAnchorKind { kManufacturerCa, kEkPin, kAutoApprove };
// "manufacturer_ca" | "ek_pin" | "auto_approve"
std::string_view TrustAnchorKindName(TrustAnchorKind kind);
common::Result<TrustAnchorKind> ParseTrustAnchorKind(std::string_view name);

struct TrustAnchor {
  std::string id;  // unique, chosen by the caller ("ca-<hex>", "ek-<hex>", "group-<name>")
  TrustAnchorKind kind = TrustAnchorKind::kManufacturerCa;
  // manufacturer_ca: one PEM certificate; ek_pin: lower-case hex SHA-256 of
  // the EK's marshalled TPM2B_PUBLIC; auto_approve: empty.
  std::string value;
  std::string host_group;   // auto_approve: the group (non-empty); ek_pin: the group it may enroll into (empty: any)
  std::string description;  // e.g. the CA's subject, or an operator's comment
  std::string created_by;   // operator id
  int64_t created_at = 0;   // set by the store
};

// ---- Just-in-time elevations ------------------------------------------------------

enum class JitStatus { kPending, kApproved, kRejected, kRevoked };
// "pending" | "approved" | "rejected" | "revoked" (expiry is derived from
// expires_at, never stored: a grant expires by itself).
std::string_view JitStatusName(JitStatus status);

struct JitGrant {
  std::string id;  // unique, chosen by the caller (random)
  std::string agent_id;
  std::vector<std::string> scopes;  // extra scopes, at least one; stored in this order
  std::string reason;               // why (non-empty)
  int64_t duration_seconds = 0;     // > 0: the window length once approved
  std::string requested_by;         // operator id
  int64_t requested_at = 0;         // set by the store
  JitStatus status = JitStatus::kPending;  // set by the store on create
  std::string decided_by;           // empty while pending
  int64_t decided_at = 0;
  std::string comment;              // the decider's
  int64_t expires_at = 0;           // set when approved (the caller's value); 0 otherwise
};

// ---- Inventory reads ----------------------------------------------------------------

// An agent's token use (issued_tokens).
struct TokenUsage {
  int64_t last_issued_at = 0;               // over all time
  int64_t tokens_since = 0;                 // issued at >= since
  std::vector<std::string> scopes_since;    // every scope in those tokens, sorted, unique
};

// ---- The store -------------------------------------------------------------------

class Store {
 public:
  // The schema version this build writes; Open migrates up to it.
  static int LatestSchemaVersion();

  // `uri`: "sqlite:/path/to/file.db" (created if missing) or
  // "postgresql://..." / "postgres://..." (libpq URI). Migrates the schema
  // forward (idempotent; concurrent Opens of one database are serialized).
  // FAILED_PRECONDITION when the database's schema is newer than this build;
  // INVALID_ARGUMENT for an unknown scheme; UNAVAILABLE when it cannot connect.
  static common::Result<std::unique_ptr<Store>> Open(std::string_view uri,
                                                     const common::Clock& clock);

  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  virtual std::string_view backend() const = 0;  // "sqlite" | "postgresql"
  virtual common::Result<int> SchemaVersion() = 0;

  // Hosts. CreateHost: ALREADY_EXISTS for a known id or EK; returns the row
  // as stored (pending). ApproveHost: pending -> approved, else
  // FAILED_PRECONDITION. RevokeHost: pending|approved -> revoked, and the
  // host's outstanding tokens revoked in the same transaction. ReplaceAk
  // (re-enrollment with a new AK): not on a revoked host; status unchanged.
  virtual common::Result<Host> CreateHost(const Host& host, const AuditRecord* audit) = 0;
  virtual common::Result<Host> GetHost(std::string_view id) = 0;
  virtual common::Result<Host> GetHostByEkHash(common::ByteView ek_public_sha256) = 0;
  virtual common::Status ApproveHost(std::string_view id, std::string_view approved_by,
                                     const AuditRecord* audit) = 0;
  virtual common::Status RevokeHost(std::string_view id, const AuditRecord* audit) = 0;
  virtual common::Status ReplaceAk(std::string_view id, common::ByteView ak_public,
                                   common::ByteView ak_name, const AuditRecord* audit) = 0;
  virtual common::Result<std::vector<Host>> ListHosts() = 0;

  // Operators.
  virtual common::Status CreateOperator(const Operator& op, const AuditRecord* audit) = 0;
  virtual common::Result<Operator> GetOperator(std::string_view id) = 0;
  virtual common::Result<Operator> GetOperatorByCertFingerprint(std::string_view fingerprint) = 0;
  virtual common::Status SetOperatorStatus(std::string_view id, OperatorStatus status,
                                           const AuditRecord* audit) = 0;
  virtual common::Status SetOperatorRoles(std::string_view id, const std::vector<Role>& roles,
                                          const AuditRecord* audit) = 0;
  virtual common::Result<std::vector<Operator>> ListOperators() = 0;

  // Agents. Owners must exist (FAILED_PRECONDITION otherwise). UpdateAgent
  // replaces every field but id, name, status and created_at.
  // SetAgentStatus to suspended or retired also revokes the agent's
  // outstanding tokens in the same transaction; retired is final
  // (FAILED_PRECONDITION for any change from it). DeleteAgent fails
  // (FAILED_PRECONDITION) once manifests, keys or tokens refer to the agent:
  // retire it instead.
  virtual common::Status CreateAgent(const Agent& agent, const AuditRecord* audit) = 0;
  virtual common::Result<Agent> GetAgent(std::string_view id) = 0;
  virtual common::Status UpdateAgent(const Agent& agent, const AuditRecord* audit) = 0;
  virtual common::Status SetAgentStatus(std::string_view id, AgentStatus status,
                                        const AuditRecord* audit) = 0;
  virtual common::Status DeleteAgent(std::string_view id, const AuditRecord* audit) = 0;
  virtual common::Result<std::vector<Agent>> ListAgents() = 0;
  virtual common::Result<std::vector<Agent>> ListAgentsByOwner(std::string_view operator_id) = 0;

  // Manifests. AddManifest assigns the next version (1, 2, ...), pending.
  // ReviewManifest: `decision` is kApproved or kRejected; the version must be
  // pending (FAILED_PRECONDITION otherwise). Separation of duties is the
  // policy layer's job, not the store's.
  virtual common::Result<int64_t> AddManifest(std::string_view agent_id,
                                              const common::Json& content,
                                              const AuditRecord* audit) = 0;
  virtual common::Result<Manifest> GetManifest(std::string_view agent_id, int64_t version) = 0;
  virtual common::Result<Manifest> LatestApprovedManifest(std::string_view agent_id) = 0;
  // Versions of `agent_id` ascending; with an empty id, every agent's (by
  // agent id, then version: one read for listings).
  virtual common::Result<std::vector<Manifest>> ListManifests(std::string_view agent_id) = 0;
  virtual common::Status ReviewManifest(std::string_view agent_id, int64_t version,
                                        ManifestStatus decision, std::string_view reviewer_id,
                                        std::string_view comment, const AuditRecord* audit) = 0;

  // Agent keys: ALREADY_EXISTS for a known thumbprint.
  virtual common::Status AddAgentKey(const AgentKey& key, const AuditRecord* audit) = 0;
  virtual common::Result<AgentKey> GetAgentKey(std::string_view thumbprint) = 0;
  virtual common::Result<std::vector<AgentKey>> ListAgentKeys(std::string_view agent_id) = 0;

  // Nonces. ConsumeNonce returns the bound data exactly once per nonce:
  // NOT_FOUND for an unknown value (or another purpose), FAILED_PRECONDITION
  // when it has expired (expires_at <= now) or was consumed already.
  virtual common::Status CreateNonce(const Nonce& nonce) = 0;
  virtual common::Result<common::Bytes> ConsumeNonce(std::string_view value,
                                                     std::string_view purpose, int64_t now) = 0;
  // ConsumeNonce that appends `audit` in the same transaction, only when the
  // nonce is consumed: one durable commit for both. On any error nothing is
  // written.
  virtual common::Result<common::Bytes> ConsumeNonceAudited(std::string_view value,
                                                            std::string_view purpose, int64_t now,
                                                            const AuditRecord& audit) = 0;
  // What ConsumeNonce would return now (same errors), without consuming
  // anything: a read, for refusing early. Only ConsumeNonce* decides.
  virtual common::Result<common::Bytes> PeekNonce(std::string_view value, std::string_view purpose,
                                                  int64_t now) = 0;
  // Deletes nonces with expires_at <= now; returns how many.
  virtual common::Result<int64_t> PurgeExpiredNonces(int64_t now) = 0;
  // Challenges ("attest" and "certify" nonces bound to `host_id`) issued
  // after `since`, consumed or not, until purged (the per-host rate limit).
  virtual common::Result<WindowCount> CountHostChallengesSince(std::string_view host_id, int64_t since) = 0;

  // Tokens. IssueToken stores `token` and appends `audit` (whose details get
  // "jti": token.jti; INVALID_ARGUMENT if they name another jti) in one
  // transaction, durable when it returns OK. Only then may the caller hand
  // the token out. A known request_id returns the first jti, created=false.
  virtual common::Result<IssueTokenResult> IssueToken(const TokenRecord& token,
                                                      const AuditRecord& audit) = 0;
  // IssueToken under a per-agent rate limit: RESOURCE_EXHAUSTED, nothing
  // written, when token.agent_id already has `max_in_window` tokens issued
  // after `window_start`. The count and the insert are one transaction
  // serialized with every other token issue on the database, so replicas
  // together never exceed the limit.
  virtual common::Result<IssueTokenResult> IssueTokenWithinRate(const TokenRecord& token,
                                                                const AuditRecord& audit,
                                                                int64_t window_start,
                                                                int64_t max_in_window) = 0;
  // IssueTokenWithinRate that also records the DPoP proof the token was
  // requested with (RecordProofJti) in the same transaction: one durable
  // commit for proof, token and audit record. ALREADY_EXISTS, nothing
  // written, when `proof.jti` was recorded before (a replayed proof).
  virtual common::Result<IssueTokenResult> IssueTokenForProof(const TokenRecord& token,
                                                              const AuditRecord& audit,
                                                              int64_t window_start,
                                                              int64_t max_in_window,
                                                              const ProofJti& proof) = 0;
  virtual common::Result<TokenRecord> GetToken(std::string_view jti) = 0;
  // Tokens issued to `agent_id` after `since`, revoked or not (the per-agent
  // rate limit).
  virtual common::Result<WindowCount> CountAgentTokensSince(std::string_view agent_id, int64_t since) = 0;
  // Revocations stamp revoked_at (store clock) on tokens not yet revoked.
  // RevokeToken: NOT_FOUND for an unknown jti (OK if already revoked). The
  // others return how many tokens they revoked.
  virtual common::Status RevokeToken(std::string_view jti, const AuditRecord* audit) = 0;
  virtual common::Result<int64_t> RevokeAgentTokens(std::string_view agent_id,
                                                    const AuditRecord* audit) = 0;
  virtual common::Result<int64_t> RevokeHostTokens(std::string_view host_id,
                                                   const AuditRecord* audit) = 0;
  // NOT_FOUND for an unknown jti.
  virtual common::Result<bool> IsTokenRevoked(std::string_view jti) = 0;

  // DPoP proof jti replay cache: ALREADY_EXISTS when `jti` was recorded
  // before (and not purged yet).
  virtual common::Status RecordProofJti(std::string_view jti, int64_t expires_at) = 0;
  // Read only: whether `jti` is recorded (for refusing a replay early; only
  // RecordProofJti / IssueTokenForProof / AppendAuditSpendingProof decide).
  virtual common::Result<bool> ProofJtiRecorded(std::string_view jti) = 0;
  virtual common::Result<int64_t> PurgeExpiredProofJtis(int64_t now) = 0;

  // Audit.
  virtual common::Result<AuditEntry> AppendAudit(const AuditRecord& record) = 0;
  // AppendAudit that also records `proof` (a refused request's DPoP proof,
  // which must not be reused) in the same transaction; a proof jti recorded
  // before is left as it is.
  virtual common::Result<AuditEntry> AppendAuditSpendingProof(const AuditRecord& record,
                                                              const ProofJti& proof) = 0;
  // The last record (genesis anchor when the log is empty).
  virtual common::Result<AuditAnchor> AuditHead() = 0;
  struct AuditExport {
    AuditAnchor anchor;  // the record before the first exported one
    std::string jsonl;   // one record per line, each ending in '\n'
  };
  // Every record from the first with ts >= from_ts to the last with
  // ts < to_ts, in seq order and contiguous (so a record with an out-of-order
  // ts from a skewed replica clock inside the range is included).
  virtual common::Result<AuditExport> ExportAudit(int64_t from_ts, int64_t to_ts) = 0;


  // ---- Governance (issue 6) -----------------------------------------------------

  // Sets (or, with an empty fingerprint, clears) an operator's client
  // certificate fingerprint: the previous certificate is refused from then
  // on. NOT_FOUND for an unknown operator; ALREADY_EXISTS when another
  // operator has that fingerprint.
  virtual common::Status SetOperatorCertFingerprint(std::string_view id, std::string_view fingerprint,
                                                    const AuditRecord* audit) = 0;
  // Disables an operator and, in the same transaction, suspends every active
  // agent for which they were the last active owner (revoking those agents'
  // outstanding tokens), appending `audit` and, per suspended agent, a record
  // {actor: audit.actor, action "agent.suspend", subject the agent id,
  // decision info, reasons ["no_active_owner"], details {"disabled_owner": id}}.
  // Returns the suspended agent ids (sorted). NOT_FOUND for an unknown
  // operator; FAILED_PRECONDITION when already disabled.
  virtual common::Result<std::vector<std::string>> DisableOperator(std::string_view id,
                                                                   const AuditRecord& audit) = 0;

  // Trust anchors. AddTrustAnchor: ALREADY_EXISTS for a known id;
  // INVALID_ARGUMENT for an auto_approve without host_group or an ek_pin
  // whose value is not 64 lower-case hex digits. RemoveTrustAnchor:
  // NOT_FOUND for an unknown id. ListTrustAnchors: ordered by kind, then id.
  virtual common::Status AddTrustAnchor(const TrustAnchor& anchor, const AuditRecord* audit) = 0;
  virtual common::Status RemoveTrustAnchor(std::string_view id, const AuditRecord* audit) = 0;
  virtual common::Result<std::vector<TrustAnchor>> ListTrustAnchors() = 0;

  // JIT grants. CreateJitGrant: FAILED_PRECONDITION for an unknown agent,
  // ALREADY_EXISTS for a known id, INVALID_ARGUMENT for no scopes, an empty
  // reason or duration <= 0. DecideJitGrant: `decision` kApproved (stores
  // `expires_at`) or kRejected (expires_at stays 0); the grant must be
  // pending (FAILED_PRECONDITION otherwise; NOT_FOUND if unknown).
  // RevokeJitGrant: pending|approved -> revoked (decided_by/decided_at are
  // left as they were; FAILED_PRECONDITION from rejected or revoked).
  virtual common::Status CreateJitGrant(const JitGrant& grant, const AuditRecord* audit) = 0;
  virtual common::Result<JitGrant> GetJitGrant(std::string_view id) = 0;
  virtual common::Status DecideJitGrant(std::string_view id, JitStatus decision, std::string_view decided_by,
                                        std::string_view comment, int64_t expires_at,
                                        const AuditRecord* audit) = 0;
  virtual common::Status RevokeJitGrant(std::string_view id, const AuditRecord* audit) = 0;
  // Every grant of `agent_id` (empty: of all agents), newest request first.
  virtual common::Result<std::vector<JitGrant>> ListJitGrants(std::string_view agent_id) = 0;
  // Approved grants of `agent_id` with expires_at > now.
  virtual common::Result<std::vector<JitGrant>> ActiveJitGrants(std::string_view agent_id, int64_t now) = 0;

  // Manifests of every agent with `status`, oldest first (the review queue).
  virtual common::Result<std::vector<Manifest>> ListManifestsByStatus(ManifestStatus status) = 0;

  // Inventory reads. TokenUsageByAgent: per agent with at least one token.
  // LatestAuditBySubject: per subject, the latest ts of records with this
  // action and decision (e.g. "attest"/allow: an agent's last affirmed
  // attestation); LatestAuditByActor the same per actor (e.g. a host's).
  // AuditByAction: the latest `limit` records with `action`, newest first.
  // All use indexes, not a scan of the whole audit log.
  virtual common::Result<std::map<std::string, TokenUsage>> TokenUsageByAgent(int64_t since) = 0;
  virtual common::Result<std::map<std::string, int64_t>> LatestAuditBySubject(std::string_view action,
                                                                              AuditDecision decision) = 0;
  virtual common::Result<std::map<std::string, int64_t>> LatestAuditByActor(std::string_view action,
                                                                            AuditDecision decision) = 0;
  virtual common::Result<std::vector<AuditEntry>> AuditByAction(std::string_view action, std::size_t limit) = 0;

 protected:
  Store() = default;
};

}  // namespace agentroot::attestation::store

#endif  // AGENTROOT_ATTESTATION_STORE_STORE_H_
