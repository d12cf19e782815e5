// VerifierCore: the verifier's decisions, independent of HTTP.
//
// Each operation takes parsed inputs, decides with the store's state, writes
// what it decided (with an audit record, in one transaction) and returns the
// result or a Status whose message starts with a stable problem or OAuth
// error code. The HTTPS service (verifier_service.h) maps these to routes,
// problem details and OAuth responses; tests drive the core directly and
// over HTTPS.
//
// Flows (ARCHITECTURE.md):
//  1. Enroll -> MakeCredential challenge; Activate proves the AK is in the
//     TPM that holds the certified EK. Only then is the host written (pending,
//     or approved by an auto-approve rule). Nothing is stored before the proof.
//  2. Agents, manifests, reviews: governance operations by operators with
//     roles (infra, owner, reviewer, auditor).
//  3. RegisterAgentKey: TPM2_Certify evidence under the host's AK.
//  4/5. Challenge + Attest: quote + measurement log -> a signed EAR.
//  6. Token: EAR + DPoP proof -> an RFC 9068 access token bound to the key.
//  8. Introspect / Revoke.
//
// Issuer keys: one key signs EARs and access tokens; the JWKS publishes it
// together with other keys (the previous one until everything it signed has
// expired, the next one before it starts signing). RotateIssuerKeys swaps
// the signing key and the published set as one snapshot, so a request sees
// either the old keys or the new ones, never a mix.
//
// Rate limits are counted from the store (tokens per agent, challenges per
// host, over the last 60 s), so replicas on one database share them.
//
// Thread safety: all methods may be called concurrently, RotateIssuerKeys
// too; state lives in the Store, which serializes what must be serialized.
#ifndef AGENTROOT_ATTESTATION_VERIFIER_H_
#define AGENTROOT_ATTESTATION_VERIFIER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/ear.h"
#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/session_binding.h"
#include "agentroot/attestation/store/store.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

struct VerifierConfig {
  std::string issuer;                  // e.g. https://verifier.example:8443
  std::string token_endpoint;          // absolute URL the DPoP proof's htu must name
  std::string trust_domain;            // agent ids are spiffe://<trust_domain>/agent/<name>
  std::string manufacturer_roots_pem;  // trusted TPM manufacturer CAs
  // Host groups whose hosts are approved on activation (the EK chain is
  // always verified).
  std::vector<std::string> auto_approve_groups;
  // Reference SHA-256 PCR values per host group: group -> pcr -> 32 bytes.
  std::map<std::string, std::map<uint32_t, common::Bytes>> pcr_references;
  uint32_t measurement_pcr = 15;
  int64_t nonce_ttl_seconds = 60;
  int64_t ear_ttl_seconds = 120;
  int64_t token_rate_per_minute = 120;     // tokens per agent, counted in the store
  int64_t challenge_rate_per_minute = 60;  // challenges per host, counted in the store
  // RFC 9449 §8: the token endpoint requires a server-issued DPoP nonce
  // (single use, kept in the store so replicas share them).
  bool require_dpop_nonce = false;
  int64_t dpop_nonce_ttl_seconds = 120;
  std::string build = "agentroot 0.1.0";
  // CA(s) of operator client certificates (PEM): certificates registered
  // for operators must chain to it. Empty: not checked (tests only).
  std::string operator_ca_pem;
  // The longest just-in-time elevation an operator may request.
  int64_t jit_max_seconds = 8 * 3600;
};

// What the inventory's findings look back on (days).
struct InventoryOptions {
  int64_t expiring_days = 30;
  int64_t unused_days = 30;
  int64_t usage_days = 30;
};

// Changes to an agent's registration; unset members stay as they are.
struct AgentUpdate {
  std::optional<std::vector<std::string>> owners;
  std::optional<std::string> host_id;     // replaces the placement (clears host_group)
  std::optional<std::string> host_group;  // replaces the placement (clears host_id)
  std::optional<std::vector<std::string>> scopes;
  std::optional<std::vector<std::string>> audiences;
  std::optional<int64_t> max_token_ttl;
  std::optional<int64_t> expires_at;
};

// A trust anchor as an operator sees it: from the store (managed through
// the admin API) or from the configuration file (read-only).
struct TrustAnchorInfo {
  store::TrustAnchor anchor;
  std::string source;  // "store" | "config"
  std::string subject;  // manufacturer_ca
  int64_t not_after = 0;
};

struct HostInfo {
  store::Host host;
  std::string ek_certificate_subject;  // empty when the EK is pinned
  std::string ek_certificate_issuer;
  int64_t last_attested_at = 0;  // 0: never
};

// Problem type codes at the start of error messages ("<code>: detail").
namespace problem {
inline constexpr std::string_view kEkUntrusted = "ek_untrusted";
inline constexpr std::string_view kAkInvalid = "ak_invalid";
inline constexpr std::string_view kActivationFailed = "activation_failed";
inline constexpr std::string_view kNonceInvalid = "nonce_invalid";
inline constexpr std::string_view kHostUnknown = "host_unknown";
inline constexpr std::string_view kHostNotApproved = "host_not_approved";
inline constexpr std::string_view kAgentUnknown = "agent_unknown";
inline constexpr std::string_view kKeyNotCertified = "key_not_certified";
inline constexpr std::string_view kEvidenceInvalid = "evidence_invalid";
inline constexpr std::string_view kForbidden = "forbidden";
inline constexpr std::string_view kInvalidInput = "invalid_input";
inline constexpr std::string_view kNotFound = "not_found";
inline constexpr std::string_view kConflict = "conflict";
// Too many requests (HTTP 429 with Retry-After); the same word as the token
// policy's reason::kRateLimited.
inline constexpr std::string_view kRateLimited = "rate_limited";
}  // namespace problem

// The window rate limits count over.
inline constexpr int64_t kRateWindowSeconds = 60;

// A rate-limit refusal: RESOURCE_EXHAUSTED, "<type>: <detail> (retry after N s)".
common::Status RateLimitedError(std::string_view type, std::string_view detail, int64_t retry_after_seconds);
// N of a RateLimitedError; nullopt for any other status.
std::optional<int64_t> RetryAfterOf(const common::Status& status);

struct EnrollRequest {
  common::Bytes ek_certificate;       // DER or PEM
  std::string ek_intermediates_pem;   // may be empty
  common::Bytes ek_public;            // TPM2B_PUBLIC
  common::Bytes ak_public;            // TPM2B_PUBLIC
  std::string host_group;
};

struct EnrollChallenge {
  std::string host_id;
  std::string activation_id;
  common::Bytes credential_blob;   // TPM2B_ID_OBJECT
  common::Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET
  int64_t expires_at = 0;
};

struct ActivationResult {
  std::string host_id;
  store::HostStatus status = store::HostStatus::kPending;
  bool reenrolled = false;  // a known EK presented a new AK
};

struct AttestRequest {
  std::string host_id;
  std::string agent_id;
  std::string nonce;
  common::Bytes agent_key_public;  // TPM2B_PUBLIC of the agent key
  common::Bytes quote_attest;      // TPMS_ATTEST
  common::Bytes quote_signature;   // TPMT_SIGNATURE
  std::map<uint32_t, common::Bytes> pcr_values;  // SHA-256 bank
  std::string measurement_log;     // JSON lines
};

struct AttestOutcome {
  std::string ear;  // signed; its status may be warning/contraindicated
  AttestationResult result;
  std::vector<std::string> reasons;  // why not affirming
};

struct TokenExchange {
  std::string subject_token;  // the EAR
  std::string dpop_proof;
  std::string scope;          // space-separated
  std::string audience;
  std::optional<int64_t> requested_ttl;
  // Session proof mode (docs/tokens.md): a session binding (session_binding.h)
  // signed by the agent key the EAR names, binding the DPoP proof's key. The
  // token is then bound to the proof (session) key, carries
  // agentroot.tpm_jkt and agentroot.proof_mode "session", and expires no
  // later than the binding.
  std::optional<std::string> session_binding;
};

struct IssuedToken {
  std::string access_token;
  std::string jti;
  int64_t expires_in = 0;
  std::string scope;
};

class VerifierCore {
 public:
  // `issuer_key` signs EARs and access tokens (an hsm::Key in production).
  // `previous_issuer_keys` (each with its kid and alg) are published with it:
  // tokens and EARs they signed keep verifying. INVALID_ARGUMENT for a key
  // without kid or alg, or two keys with one kid.
  static common::Result<std::unique_ptr<VerifierCore>> Create(
      VerifierConfig config, std::shared_ptr<store::Store> store,
      std::shared_ptr<const common::Signer> issuer_key,
      std::vector<common::Jwk> previous_issuer_keys, const common::Clock& clock);

  const VerifierConfig& config() const { return config_; }
  // spiffe://<trust_domain>/agent/<name>
  std::string AgentIdFor(std::string_view name) const;
  store::Store& store() { return *store_; }

  // OAuth metadata (RFC 8414) and the JWKS document.
  common::Json Metadata() const;
  common::Json Jwks() const;

  // 1. Enrollment.
  common::Result<EnrollChallenge> Enroll(const EnrollRequest& request);
  common::Result<ActivationResult> Activate(std::string_view host_id, std::string_view activation_id,
                                            common::ByteView secret);

  // A single-use nonce for `purpose` ("attest", "certify" or "report")
  // bound to a host.
  common::Result<store::Nonce> Challenge(std::string_view host_id, std::string_view purpose);

  // 3. Agent key registration from TPM2_Certify evidence.
  common::Result<store::AgentKey> RegisterAgentKey(std::string_view host_id, std::string_view agent_id,
                                                   std::string_view nonce, common::ByteView key_public,
                                                   common::ByteView certify_attest,
                                                   common::ByteView certify_signature);

  // 5. Appraisal.
  common::Result<AttestOutcome> Attest(const AttestRequest& request);

  // 6. Token exchange. `dpop_method`/`dpop_url` are the request's.
  common::Result<IssuedToken> Token(const TokenExchange& request);

  // A fresh single-use DPoP nonce (sent as the DPoP-Nonce header).
  common::Result<std::string> IssueDpopNonce();

  // Host-facing extras (verifier_hosts.cc).
  // The host's own status, for hostd's polling (unauthenticated: the host id
  // is unguessable and the answer only pending/approved/revoked).
  common::Result<store::HostStatus> HostStatusOf(std::string_view host_id);
  // A shadow agent reported by a host: `quote_attest`/`quote_signature` are a
  // TPM2_Quote by the host's AK whose qualifying data is
  // ShadowReportQualifyingData(nonce, report), `nonce` a "report" challenge
  // for this host (consumed). PCR values are not appraised. Appends an audit
  // record (actor the host, action agent.shadow, decision deny, reason
  // unregistered_agent). nonce_invalid / host_unknown / host_not_approved /
  // evidence_invalid otherwise (audited).
  common::Status ReportShadowAgent(std::string_view host_id, std::string_view nonce, const ShadowReport& report,
                                   common::ByteView quote_attest, common::ByteView quote_signature);
  // The latest `limit` shadow-agent records (newest first) from the audit
  // log, for an operator with the auditor or infra role; a refusal is
  // audited. Each: {seq, time, host_id, pid, uid, gid, exe_path, exe_sha256}.
  common::Result<common::Json> ListShadowAgents(std::string_view operator_id, std::size_t limit);

  // 8. RFC 7662 introspection response, and RFC 7009 revocation.
  common::Json Introspect(std::string_view token);
  common::Status Revoke(std::string_view token, std::string_view actor);

  // 2. Governance. `operator_id` is the authenticated operator.
  common::Result<store::Operator> Authenticate(std::string_view client_cert_fingerprint);
  common::Status ApproveHost(std::string_view operator_id, std::string_view host_id);
  common::Status CreateAgent(std::string_view operator_id, store::Agent agent);
  common::Result<int64_t> AddManifest(std::string_view operator_id, std::string_view agent_id,
                                      const common::Json& content);
  common::Status ReviewManifest(std::string_view operator_id, std::string_view agent_id, int64_t version,
                                bool approve, std::string_view comment);

  // The audit log's records with from_ts <= ts < to_ts (see
  // Store::ExportAudit) for an operator with the auditor role; a refusal is
  // audited. PERMISSION_DENIED otherwise.
  common::Result<store::Store::AuditExport> ExportAudit(std::string_view operator_id, int64_t from_ts = 0,
                                                        int64_t to_ts = INT64_MAX);

  // ---- The admin API of issue 6 (verifier_governance.cc) ----------------------
  // Every method takes the authenticated operator, checks their role (reads:
  // any active operator), and audits what it changes in the change's own
  // transaction, refusals best effort. Errors: "<problem>: detail" with
  // INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION or
  // ALREADY_EXISTS (HTTP 400/404/403/409/409).

  // Operators (infra; listing also auditor).
  common::Result<store::Operator> Whoami(std::string_view operator_id);
  common::Result<std::vector<store::Operator>> ListOperators(std::string_view operator_id);
  // Registers an operator with a client certificate (PEM) that chains to the
  // operator CA and is valid now. Returns the stored operator.
  common::Result<store::Operator> AddOperator(std::string_view operator_id, store::Operator op,
                                              std::string_view certificate_pem);
  // Replaces (new PEM) or clears (empty) an operator's certificate: the old
  // one is refused from then on. Returns the new fingerprint ("" cleared).
  common::Result<std::string> SetOperatorCertificate(std::string_view operator_id, std::string_view id,
                                                     std::string_view certificate_pem);
  // Disables a person; returns the agents suspended because they were their
  // last active owner. EnableOperator leaves those agents suspended.
  common::Result<std::vector<std::string>> DisableOperator(std::string_view operator_id, std::string_view id);
  common::Status EnableOperator(std::string_view operator_id, std::string_view id);
  // Replaces an operator's roles (a person who changed team). Nobody
  // changes their own roles.
  common::Result<store::Operator> SetOperatorRoles(std::string_view operator_id, std::string_view id,
                                                   std::vector<store::Role> roles);

  // Trust anchors (changes: infra). Anchors added here count beside the
  // configuration file's at the next enrollment.
  common::Result<std::vector<TrustAnchorInfo>> ListTrustAnchors(std::string_view operator_id);
  // `anchor.kind` and the kind's fields (manufacturer_ca: value = one PEM CA
  // certificate; ek_pin: value = 64 hex digits; auto_approve: host_group);
  // the id is derived. Returns the stored anchor.
  common::Result<store::TrustAnchor> AddTrustAnchor(std::string_view operator_id, store::TrustAnchor anchor);
  common::Status RemoveTrustAnchor(std::string_view operator_id, std::string_view id);

  // Hosts.
  common::Result<std::vector<HostInfo>> ListHosts(std::string_view operator_id,
                                                  std::optional<store::HostStatus> status);
  // Revokes a host and its outstanding tokens (infra).
  common::Status RevokeHost(std::string_view operator_id, std::string_view host_id);

  // Agents. Changes: an owner of the agent or infra.
  common::Result<std::vector<store::Agent>> ListAgents(std::string_view operator_id);
  common::Result<store::Agent> GetAgent(std::string_view operator_id, std::string_view agent_id);
  common::Result<std::vector<store::Manifest>> ListManifests(std::string_view operator_id, std::string_view agent_id);
  // Every agent's manifest versions (ascending) by agent id, in one read:
  // for listings, instead of a read per agent.
  common::Result<std::map<std::string, std::vector<store::Manifest>>> ManifestsByAgent(std::string_view operator_id);
  common::Result<store::Agent> UpdateAgent(std::string_view operator_id, std::string_view agent_id,
                                           const AgentUpdate& update);
  // kSuspended / kActive (resume: refused when retired or without an active
  // owner) / kRetired (final). Suspending and retiring revoke the agent's
  // outstanding tokens.
  common::Result<store::Agent> SetAgentStatus(std::string_view operator_id, std::string_view agent_id,
                                              store::AgentStatus status, std::string_view reason);
  // Every pending manifest version, oldest first.
  common::Result<std::vector<store::Manifest>> PendingReviews(std::string_view operator_id);

  // Just-in-time elevation. Requested by an owner of the agent; approved or
  // rejected by someone else with the infra or reviewer role or another
  // owner; revoked by the requester, an owner or infra (which also revokes
  // the agent's outstanding tokens). The window starts at approval.
  common::Result<store::JitGrant> RequestJit(std::string_view operator_id, std::string_view agent_id,
                                             std::vector<std::string> scopes, int64_t duration_seconds,
                                             std::string_view reason);
  common::Result<store::JitGrant> DecideJit(std::string_view operator_id, std::string_view grant_id, bool approve,
                                            std::string_view comment);
  common::Result<store::JitGrant> RevokeJit(std::string_view operator_id, std::string_view grant_id);
  common::Result<std::vector<store::JitGrant>> ListJit(std::string_view operator_id, std::string_view agent_id);
  // "pending" | "active" | "expired" | "rejected" | "revoked" at the clock's now.
  std::string JitState(const store::JitGrant& grant) const;

  // The inventory (docs/cli.md "agentroot inventory"): every agent with its
  // owners, placement, access, last attestation and token, review state and
  // findings, plus the shadow agents hosts reported.
  common::Result<common::Json> Inventory(std::string_view operator_id, const InventoryOptions& options);

  // Operator revocation, effective at once (introspection, resource servers
  // with the revocation hook). Exactly one of `jti`, `agent_id`, `host_id`.
  // Infra may revoke anything; an owner the tokens of their own agents.
  // Returns how many tokens were revoked.
  common::Result<int64_t> RevokeByOperator(std::string_view operator_id, std::string_view jti,
                                           std::string_view agent_id, std::string_view host_id);

  // The signing key and the published set, as one immutable snapshot.
  struct IssuerKeys {
    std::shared_ptr<const common::Signer> signer;
    std::vector<common::Jwk> jwks;                // signer first, each with kid and alg
    std::vector<common::VerificationKey> keys;    // the same keys, for verification
  };
  std::shared_ptr<const IssuerKeys> issuer_keys() const;

  // Live key rotation: `signer` signs from now on, `published` (kid + alg
  // each) stay in the JWKS beside it. All or nothing: on any error the old
  // keys stay in force. Refused (FAILED_PRECONDITION) when the new signing
  // key was not published before (resource servers' JWKS caches would not
  // know it yet), or when the old signing key would vanish from the JWKS in
  // the same step (its tokens and EARs would stop verifying at once); retire
  // it in a later rotation. Every change is an audit record by `actor`
  // (action issuer_key.rotate, old and new kid and published kids), written
  // before the swap; an identical key set changes nothing and is not
  // audited (returns false). Returns true when the keys changed.
  common::Result<bool> RotateIssuerKeys(std::shared_ptr<const common::Signer> signer,
                                        std::vector<common::Jwk> published, std::string_view actor);

 private:
  VerifierCore(VerifierConfig config, std::shared_ptr<store::Store> store, std::shared_ptr<const IssuerKeys> keys,
               std::unique_ptr<EkCertificateValidator> ek_validator, const common::Clock& clock)
      : config_(std::move(config)), store_(std::move(store)), issuer_keys_(std::move(keys)),
        ek_validator_(std::move(ek_validator)), clock_(clock) {}

  static common::Result<std::shared_ptr<const IssuerKeys>> MakeIssuerKeys(
      std::shared_ptr<const common::Signer> signer, const std::vector<common::Jwk>& published);
  // The operator, active, with one of `roles` (any role when empty);
  // PERMISSION_DENIED otherwise, audited as `action` on `subject`.
  common::Result<store::Operator> RequireAnyRole(std::string_view operator_id, std::vector<store::Role> roles,
                                                 std::string_view action, std::string_view subject);
  // The agent, and whether `op` may change it (an owner, or infra).
  common::Result<store::Agent> AgentForChange(const store::Operator& op, std::string_view agent_id,
                                              std::string_view action);
  // The EK validator for this enrollment: the configuration's roots plus
  // the store's manufacturer_ca anchors (rebuilt when they change).
  common::Result<std::shared_ptr<const EkCertificateValidator>> CurrentEkValidator(
      const std::vector<store::TrustAnchor>& anchors);
  // Seconds until the agent may get a token again; 0 when under the limit.
  common::Result<int64_t> TokenRetryAfter(const std::string& agent_id, int64_t now);
  // The session binding of a token request (verifier_session.cc): verified
  // against the agent key registered for `ear`'s jkt, naming `proof_jkt` as
  // the session key and the EAR's key as the TPM key. Refusals are audited.
  common::Result<SessionBinding> CheckSessionBinding(std::string_view binding, const AttestationResult& ear,
                                                     const std::string& proof_jkt);
  void PurgeExpiredOccasionally(int64_t now);
  void AuditBestEffort(const store::AuditRecord& record);

  VerifierConfig config_;
  std::shared_ptr<store::Store> store_;
  mutable std::mutex keys_mu_;  // guards the issuer_keys_ pointer, not the snapshot
  std::shared_ptr<const IssuerKeys> issuer_keys_;
  std::mutex rotate_mu_;  // one rotation at a time
  std::unique_ptr<EkCertificateValidator> ek_validator_;
  std::mutex ek_mu_;  // guards the two below
  std::string store_roots_pem_;  // the store's CA anchors the cached validator was built with
  std::shared_ptr<const EkCertificateValidator> combined_validator_;
  const common::Clock& clock_;
  std::atomic<int64_t> last_purge_{0};
};

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_VERIFIER_H_
