// The `agentroot` subcommands as functions: each takes the AdminApi and its
// arguments and returns the verifier's JSON answer (Result<Json>); a
// renderer per command turns that JSON into Tables (output.h). The
// executable (agentroot_main.cc) only parses flags and glues these together,
// so every command can be driven from a test against a real verifier.
//
// Local validation happens before anything is sent: a malformed manifest
// file, a bad duration, conflicting targets or an unreadable file is
// INVALID_ARGUMENT (exit 2) and the verifier sees no request at all.
//
// Thread safety: as the AdminApi passed in.
#ifndef AGENTROOT_PROVISIONING_COMMANDS_H_
#define AGENTROOT_PROVISIONING_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/json.h"
#include "agentroot/common/status.h"
#include "agentroot/provisioning/admin_client.h"
#include "agentroot/provisioning/output.h"

namespace agentroot::provisioning {

// ---- operators ----------------------------------------------------------
struct OperatorCaInitArgs {
  std::string dir;
  std::string name = "agentroot operator CA";
  int days = 3650;
};
common::Result<common::Json> OperatorCaInit(const OperatorCaInitArgs& args);  // offline

struct OperatorIssueArgs {
  std::string ca_dir, id, name, out_dir;
  int days = 365;
};
// Offline. {"id", "certificate", "private_key", "certificate_sha256", "not_after"}.
common::Result<common::Json> OperatorIssue(const OperatorIssueArgs& args);

struct OperatorAddArgs {
  std::string id, name, cert_file;
  std::vector<std::string> roles;  // infra, owner, reviewer, auditor
};
common::Result<common::Json> OperatorAdd(AdminApi& api, const OperatorAddArgs& args);
common::Result<common::Json> OperatorList(AdminApi& api);
common::Result<common::Json> OperatorWhoami(AdminApi& api);
common::Result<common::Json> OperatorSetCert(AdminApi& api, const std::string& id, const std::string& cert_file);
// Replaces an operator's roles.
common::Result<common::Json> OperatorSetRoles(AdminApi& api, const std::string& id,
                                              const std::vector<std::string>& roles);
// action: "revoke-cert" | "disable" | "enable".
common::Result<common::Json> OperatorAction(AdminApi& api, const std::string& id, const std::string& action);

// ---- trust anchors ------------------------------------------------------
common::Result<common::Json> TrustList(AdminApi& api);
// FILE: one PEM CA certificate (basicConstraints CA:TRUE).
common::Result<common::Json> TrustAddCa(AdminApi& api, const std::string& file, const std::string& description);
struct TrustPinEkArgs {
  std::string ek_public_file;  // a marshalled TPM2B_PUBLIC (tpm2_createek -u, tpm2_readpublic -o)
  std::string sha256;          // or its SHA-256 as 64 hex digits
  std::string group, description;
};
common::Result<common::Json> TrustPinEk(AdminApi& api, const TrustPinEkArgs& args);
// The SHA-256 (lower-case hex) of a marshalled TPM2B_PUBLIC file, which
// must parse as exactly one TPM2B_PUBLIC.
common::Result<std::string> EkPublicSha256(const std::string& file);
common::Result<common::Json> TrustAutoApprove(AdminApi& api, const std::string& group,
                                              const std::string& description);
common::Result<common::Json> TrustRemove(AdminApi& api, const std::string& id);

// ---- hosts --------------------------------------------------------------
common::Result<common::Json> HostsList(AdminApi& api, const std::string& status);  // "" = all
// action: "approve" | "revoke".
common::Result<common::Json> HostAction(AdminApi& api, const std::string& host_id, const std::string& action);

// ---- agents -------------------------------------------------------------
struct AgentArgs {
  std::string name;
  std::vector<std::string> owners;
  std::optional<std::string> host, group;
  std::vector<std::string> scopes, audiences;
  std::optional<std::string> max_ttl;     // DURATION
  std::optional<std::string> expires;     // YYYY-MM-DD (or any TIME)
  std::optional<std::string> expires_in;  // DURATION from now
  std::optional<std::string> manifest_file;
};
// The manifest content of a file, validated (ParseManifestDigests).
common::Result<common::Json> LoadManifestFile(const std::string& file);
// The body of POST /v1/agents for `args` at time `now` (validated locally).
common::Result<common::Json> AgentRegisterBody(const AgentArgs& args, int64_t now);
common::Result<common::Json> AgentRegister(AdminApi& api, const AgentArgs& args, int64_t now);
// Sends the changed fields (POST .../update) and/or the new manifest version
// (POST .../manifests); the answer is the AGENT, or {"agent", "manifest"}
// when both were sent, or the manifest answer alone.
common::Result<common::Json> AgentUpdate(AdminApi& api, const AgentArgs& args, int64_t now);
common::Result<common::Json> AgentsList(AdminApi& api);
common::Result<common::Json> AgentShow(AdminApi& api, const std::string& name);
// action: "suspend" | "resume" | "retire".
common::Result<common::Json> AgentAction(AdminApi& api, const std::string& name, const std::string& action,
                                         const std::string& reason);

// ---- reviews ------------------------------------------------------------
common::Result<common::Json> ReviewsList(AdminApi& api);
// A rejection needs a comment.
common::Result<common::Json> ReviewDecide(AdminApi& api, const std::string& name, int64_t version, bool approve,
                                          const std::string& comment);

// ---- JIT ----------------------------------------------------------------
struct JitRequestArgs {
  std::string name;
  std::vector<std::string> scopes;
  std::string duration;  // DURATION
  std::string reason;
};
common::Result<common::Json> JitRequest(AdminApi& api, const JitRequestArgs& args);
common::Result<common::Json> JitList(AdminApi& api, const std::string& agent);  // "" = all
// action: "approve" | "reject" | "revoke".
common::Result<common::Json> JitAction(AdminApi& api, const std::string& id, const std::string& action,
                                       const std::string& comment);

// ---- revocation ---------------------------------------------------------
struct RevokeArgs {
  std::optional<std::string> agent, host, jti;  // exactly one
};
common::Result<common::Json> Revoke(AdminApi& api, const RevokeArgs& args);

// ---- audit --------------------------------------------------------------
struct AuditExportArgs {
  std::optional<std::string> from, to;  // TIME
  std::string out;                      // "" or "-": standard output
};
// Writes the JSON lines exactly as received to `out` (created, never
// overwritten) or appends them to `*stdout_text`. {"anchor", "records",
// "bytes", "out"}; anchor = "SEQ:HASH" from the X-Audit-Anchor-* headers.
common::Result<common::Json> AuditExport(AdminApi& api, const AuditExportArgs& args, std::string* stdout_text);
// Offline. Without `anchor` the first record's own seq-1/prev_hash is the
// anchor ("anchored_at_first_record": true). DATA_LOSS naming the line and
// seq of the first bad record when the chain does not verify; otherwise
// {"file", "records", "anchor", "head", "anchored_at_first_record"}.
common::Result<common::Json> AuditVerify(const std::string& file, const std::optional<std::string>& anchor);

// ---- inventory ----------------------------------------------------------
struct InventoryArgs {
  std::optional<int> expiring_days, unused_days, usage_days;
};
common::Result<common::Json> Inventory(AdminApi& api, const InventoryArgs& args);

// ---- renderers ----------------------------------------------------------
std::vector<Table> RenderOperators(const common::Json& json);
std::vector<Table> RenderTrustAnchors(const common::Json& json);
std::vector<Table> RenderHosts(const common::Json& json);
std::vector<Table> RenderAgents(const common::Json& json);
std::vector<Table> RenderAgentDetail(const common::Json& json);  // agents show
std::vector<Table> RenderReviews(const common::Json& json);
std::vector<Table> RenderJitGrants(const common::Json& json);  // {"jit_grants": [...]} or one GRANT
std::vector<Table> RenderInventory(const common::Json& json);
// Any other answer (one object): one vertical table of its members; times
// (members named *_at) as UTC, lists comma-separated.
std::vector<Table> RenderObject(const common::Json& json);

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_COMMANDS_H_
