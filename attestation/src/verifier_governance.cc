// VerifierCore: governance, the operators' admin operations (ARCHITECTURE.md
// flow 2 and issue 6): operators, trust anchors, hosts, agents, reviews,
// just-in-time elevation, revocation, audit export and the inventory.
//
// Every change is authorized by role or ownership here (not in the HTTP
// layer) and written with its audit record in one transaction; refusals are
// audited best effort.
#include <algorithm>
#include <map>
#include <set>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/token_policy.h"
#include "agentroot/attestation/verifier.h"
#include "agentroot/common/random.h"
#include "verifier_internal.h"

namespace agentroot::attestation {

using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;
using internal::Audit;
using internal::Problem;
using store::AuditDecision;
using store::AuditRecord;
using store::Role;

namespace {

constexpr int64_t kDay = 86400;

bool HasRole(const store::Operator& op, Role role) {
  return std::find(op.roles.begin(), op.roles.end(), role) != op.roles.end();
}

bool IsOwner(const store::Agent& agent, std::string_view operator_id) {
  return std::find(agent.owners.begin(), agent.owners.end(), operator_id) != agent.owners.end();
}

// Store errors carry no problem type; give them one, keeping the code.
Status FromStore(const Status& status) {
  if (status.ok()) return status;
  switch (status.code()) {
    case StatusCode::kNotFound: return Problem(status.code(), problem::kNotFound, status.message());
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return Problem(status.code(), problem::kConflict, status.message());
    case StatusCode::kInvalidArgument: return Problem(status.code(), problem::kInvalidInput, status.message());
    default: return status;
  }
}

// Operator ids and host groups: what an operator can type and read back.
bool IsName(std::string_view s, std::size_t max = 64) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '@';
  });
}

bool IsScopeToken(std::string_view s) {
  // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
  });
}

bool IsLowerHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// Manifests (as ListManifests("") returns them) grouped by agent id.
std::map<std::string, std::vector<store::Manifest>> GroupByAgent(std::vector<store::Manifest> manifests) {
  std::map<std::string, std::vector<store::Manifest>> out;
  for (store::Manifest& m : manifests) out[m.agent_id].push_back(std::move(m));
  return out;
}

}  // namespace

// ---------------------------------------------------------------- governance (issue 3/4)

Result<store::Operator> VerifierCore::Authenticate(std::string_view fingerprint) {
  auto op = store_->GetOperatorByCertFingerprint(fingerprint);
  if (!op.ok() || op->status != store::OperatorStatus::kActive) {
    AuditBestEffort(Audit("unknown", "operator.authenticate", std::string(fingerprint.substr(0, 16)),
                          AuditDecision::kDeny, {"unknown_or_disabled_operator"}));
    return Problem(StatusCode::kUnauthenticated, problem::kForbidden, "unknown or disabled operator");
  }
  return op;
}

Status VerifierCore::ApproveHost(std::string_view operator_id, std::string_view host_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "host.approve", host_id).status());
  AuditRecord audit = Audit(std::string(operator_id), "host.approve", std::string(host_id), AuditDecision::kAllow);
  return store_->ApproveHost(host_id, operator_id, &audit);
}

Status VerifierCore::CreateAgent(std::string_view operator_id, store::Agent agent) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kOwner}, "agent.create", agent.id).status());
  if (agent.id != AgentIdFor(agent.name)) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "agent id must be " + AgentIdFor("<name>"));
  }
  if (std::find(agent.owners.begin(), agent.owners.end(), operator_id) == agent.owners.end()) {
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "the registering owner must be an owner");
  }
  AuditRecord audit = Audit(std::string(operator_id), "agent.create", agent.id, AuditDecision::kAllow, {},
                            {{"owners", agent.owners}, {"scopes", agent.allowed_scopes},
                             {"audiences", agent.allowed_audiences}, {"max_ttl", agent.max_token_ttl_seconds}});
  return store_->CreateAgent(agent, &audit);
}

Result<int64_t> VerifierCore::AddManifest(std::string_view operator_id, std::string_view agent_id,
                                          const Json& content) {
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  if (std::find(agent->owners.begin(), agent->owners.end(), operator_id) == agent->owners.end()) {
    AuditBestEffort(Audit(std::string(operator_id), "manifest.add", std::string(agent_id), AuditDecision::kDeny, {"not_owner"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "only an owner adds manifests");
  }
  if (!ParseManifestDigests(content).ok()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "bad manifest");
  AuditRecord audit = Audit(std::string(operator_id), "manifest.add", std::string(agent_id), AuditDecision::kAllow);
  return store_->AddManifest(agent_id, content, &audit);
}

Status VerifierCore::ReviewManifest(std::string_view operator_id, std::string_view agent_id, int64_t version,
                                    bool approve, std::string_view comment) {
  const std::string subject = std::string(agent_id) + "#" + std::to_string(version);
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kReviewer}, "manifest.review", subject).status());
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  if (std::find(agent->owners.begin(), agent->owners.end(), operator_id) != agent->owners.end()) {
    AuditBestEffort(Audit(std::string(operator_id), "manifest.review", subject, AuditDecision::kDeny,
                          {std::string(reason::kReviewerIsOwner)}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "an owner may not review their own agent");
  }
  AuditRecord audit = Audit(std::string(operator_id), "manifest.review", subject, AuditDecision::kAllow, {},
                            {{"approve", approve}, {"comment", std::string(comment)}});
  return store_->ReviewManifest(agent_id, version,
                                approve ? store::ManifestStatus::kApproved : store::ManifestStatus::kRejected,
                                operator_id, comment, &audit);
}

Result<store::Store::AuditExport> VerifierCore::ExportAudit(std::string_view operator_id, int64_t from_ts,
                                                            int64_t to_ts) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kAuditor}, "audit.export", "audit-log").status());
  if (from_ts < 0 || to_ts <= from_ts) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "the time range must have from < to");
  }
  return store_->ExportAudit(from_ts, to_ts);
}

Result<int64_t> VerifierCore::RevokeByOperator(std::string_view operator_id, std::string_view jti,
                                               std::string_view agent_id, std::string_view host_id) {
  const int given = !jti.empty() + !agent_id.empty() + !host_id.empty();
  if (given != 1) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "name exactly one of jti, agent_id, host_id");
  }
  auto op = store_->GetOperator(operator_id);
  if (!op.ok() || op->status != store::OperatorStatus::kActive) {
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "unknown or disabled operator");
  }
  const bool infra = std::find(op->roles.begin(), op->roles.end(), store::Role::kInfra) != op->roles.end();
  // Whose tokens: an owner may revoke those of the agents they own.
  std::string owning_agent(agent_id);
  if (!jti.empty()) {
    auto token = store_->GetToken(jti);
    if (!token.ok()) return Problem(StatusCode::kNotFound, problem::kInvalidInput, "no such token");
    owning_agent = token->agent_id;
  }
  bool owner = false;
  if (!owning_agent.empty()) {
    auto agent = store_->GetAgent(owning_agent);
    owner = agent.ok() && std::find(agent->owners.begin(), agent->owners.end(), operator_id) != agent->owners.end();
  }
  const std::string subject = !jti.empty() ? std::string(jti) : !agent_id.empty() ? std::string(agent_id) : std::string(host_id);
  const char* action = !jti.empty() ? "token.revoke" : !agent_id.empty() ? "agent.revoke_tokens" : "host.revoke_tokens";
  if (!infra && !(owner && host_id.empty())) {
    AuditBestEffort(Audit(std::string(operator_id), action, subject, AuditDecision::kDeny, {"role"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                   "revocation needs the infra role, or ownership of the agent");
  }
  AuditRecord audit = Audit(std::string(operator_id), action, subject, AuditDecision::kAllow);
  if (!jti.empty()) {
    AR_RETURN_IF_ERROR(store_->RevokeToken(jti, &audit));
    return int64_t{1};
  }
  if (!agent_id.empty()) return store_->RevokeAgentTokens(agent_id, &audit);
  return store_->RevokeHostTokens(host_id, &audit);
}

std::string VerifierCore::AgentIdFor(std::string_view name) const {
  return "spiffe://" + config_.trust_domain + "/agent/" + std::string(name);
}

// ---------------------------------------------------------------- issue 6: authorization helpers

Result<store::Operator> VerifierCore::RequireAnyRole(std::string_view operator_id, std::vector<Role> roles,
                                                     std::string_view action, std::string_view subject) {
  auto op = store_->GetOperator(operator_id);
  if (op.ok() && op->status == store::OperatorStatus::kActive &&
      (roles.empty() || std::any_of(roles.begin(), roles.end(), [&](Role r) { return HasRole(*op, r); }))) {
    return op;
  }
  AuditBestEffort(Audit(std::string(operator_id), std::string(action), std::string(subject), AuditDecision::kDeny,
                        {"role"}));
  std::string names;
  for (Role r : roles) names += (names.empty() ? "" : " or ") + std::string(store::RoleName(r));
  return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                 roles.empty() ? "unknown or disabled operator" : "the " + names + " role is required");
}

Result<store::Agent> VerifierCore::AgentForChange(const store::Operator& op, std::string_view agent_id,
                                                  std::string_view action) {
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  if (!IsOwner(*agent, op.id) && !HasRole(op, Role::kInfra)) {
    AuditBestEffort(Audit(op.id, std::string(action), std::string(agent_id), AuditDecision::kDeny, {"not_owner"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "only an owner of the agent or infra may");
  }
  return agent;
}

// ---------------------------------------------------------------- operators

Result<store::Operator> VerifierCore::Whoami(std::string_view operator_id) {
  return RequireAnyRole(operator_id, {}, "operator.whoami", operator_id);
}

Result<std::vector<store::Operator>> VerifierCore::ListOperators(std::string_view operator_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra, Role::kAuditor}, "operator.list", "operators").status());
  return store_->ListOperators();
}

namespace {

// The SHA-256 fingerprint of an operator certificate that chains to the
// operator CA (when one is configured) and is valid at `now`.
Result<std::string> OperatorCertificateFingerprint(std::string_view pem, std::string_view operator_ca_pem,
                                                   int64_t now) {
  auto certs = ParsePemCertificates(pem);
  if (!certs.ok() || certs->size() != 1) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "certificate_pem must hold one PEM certificate");
  }
  AR_ASSIGN_OR_RETURN(CertificateSummary summary, SummarizeCertificate(certs->front().get()));
  if (!operator_ca_pem.empty()) {
    if (Status chained = VerifyCertificateChain(certs->front().get(), operator_ca_pem, now, true); !chained.ok()) {
      return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                     "not an operator client certificate from the operator CA: " + chained.message());
    }
  }
  return common::HexEncode(common::Sha256(summary.der));
}

}  // namespace

Result<store::Operator> VerifierCore::AddOperator(std::string_view operator_id, store::Operator op,
                                                  std::string_view certificate_pem) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "operator.create", op.id).status());
  if (!IsName(op.id)) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                   "operator id: 1-64 of A-Z a-z 0-9 . _ - @");
  }
  if (op.display_name.empty() || op.display_name.size() > 200) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "display_name: 1-200 characters");
  }
  if (op.roles.empty()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "at least one role");
  AR_ASSIGN_OR_RETURN(op.client_cert_fingerprint,
                      OperatorCertificateFingerprint(certificate_pem, config_.operator_ca_pem, clock_.NowUnixSeconds()));
  op.status = store::OperatorStatus::kActive;
  Json roles = Json::array();
  for (Role r : op.roles) roles.push_back(std::string(store::RoleName(r)));
  AuditRecord audit = Audit(std::string(operator_id), "operator.create", op.id, AuditDecision::kAllow, {},
                            {{"roles", roles}, {"display_name", op.display_name},
                             {"certificate_sha256", op.client_cert_fingerprint}});
  AR_RETURN_IF_ERROR(FromStore(store_->CreateOperator(op, &audit)));
  return store_->GetOperator(op.id);
}

Result<std::string> VerifierCore::SetOperatorCertificate(std::string_view operator_id, std::string_view id,
                                                         std::string_view certificate_pem) {
  const char* action = certificate_pem.empty() ? "operator.certificate_revoke" : "operator.certificate_set";
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, action, id).status());
  std::string fingerprint;
  if (!certificate_pem.empty()) {
    AR_ASSIGN_OR_RETURN(fingerprint,
                        OperatorCertificateFingerprint(certificate_pem, config_.operator_ca_pem, clock_.NowUnixSeconds()));
  }
  AuditRecord audit = Audit(std::string(operator_id), action, std::string(id), AuditDecision::kAllow, {},
                            {{"certificate_sha256", fingerprint}});
  AR_RETURN_IF_ERROR(FromStore(store_->SetOperatorCertFingerprint(id, fingerprint, &audit)));
  return fingerprint;
}

Result<std::vector<std::string>> VerifierCore::DisableOperator(std::string_view operator_id, std::string_view id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "operator.disable", id).status());
  if (operator_id == id) {
    return Problem(StatusCode::kFailedPrecondition, problem::kConflict,
                   "operators cannot disable themselves (another infra operator must)");
  }
  AuditRecord audit = Audit(std::string(operator_id), "operator.disable", std::string(id), AuditDecision::kAllow);
  auto suspended = store_->DisableOperator(id, audit);
  if (!suspended.ok()) return FromStore(suspended.status());
  return suspended;
}

Status VerifierCore::EnableOperator(std::string_view operator_id, std::string_view id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "operator.enable", id).status());
  AuditRecord audit = Audit(std::string(operator_id), "operator.enable", std::string(id), AuditDecision::kAllow);
  return FromStore(store_->SetOperatorStatus(id, store::OperatorStatus::kActive, &audit));
}

Result<store::Operator> VerifierCore::SetOperatorRoles(std::string_view operator_id, std::string_view id,
                                                       std::vector<Role> roles) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "operator.roles", id).status());
  if (operator_id == id) {
    return Problem(StatusCode::kFailedPrecondition, problem::kConflict,
                   "operators cannot change their own roles (another infra operator must)");
  }
  if (roles.empty()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "at least one role");
  Json names = Json::array();
  for (Role r : roles) names.push_back(std::string(store::RoleName(r)));
  AuditRecord audit = Audit(std::string(operator_id), "operator.roles", std::string(id), AuditDecision::kAllow, {},
                            {{"roles", names}});
  AR_RETURN_IF_ERROR(FromStore(store_->SetOperatorRoles(id, roles, &audit)));
  return store_->GetOperator(id);
}

// ---------------------------------------------------------------- trust anchors

Result<std::vector<TrustAnchorInfo>> VerifierCore::ListTrustAnchors(std::string_view operator_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "trust_anchor.list", "trust-anchors").status());
  std::vector<TrustAnchorInfo> out;
  auto describe_ca = [](TrustAnchorInfo& info, const X509* cert) {
    auto summary = SummarizeCertificate(cert);
    if (!summary.ok()) return;
    info.subject = summary->subject;
    info.not_after = summary->not_after;
    if (info.anchor.id.empty()) info.anchor.id = "ca-" + common::HexEncode(common::Sha256(summary->der)).substr(0, 16);
  };
  if (!config_.manufacturer_roots_pem.empty()) {
    auto roots = ParsePemCertificates(config_.manufacturer_roots_pem);
    if (roots.ok()) {
      for (const auto& root : *roots) {
        TrustAnchorInfo info;
        info.source = "config";
        info.anchor.kind = store::TrustAnchorKind::kManufacturerCa;
        describe_ca(info, root.get());
        info.anchor.description = info.subject;
        out.push_back(std::move(info));
      }
    }
  }
  for (const std::string& group : config_.auto_approve_groups) {
    TrustAnchorInfo info;
    info.source = "config";
    info.anchor.id = "group-" + group;
    info.anchor.kind = store::TrustAnchorKind::kAutoApprove;
    info.anchor.host_group = group;
    out.push_back(std::move(info));
  }
  AR_ASSIGN_OR_RETURN(std::vector<store::TrustAnchor> stored, store_->ListTrustAnchors());
  for (store::TrustAnchor& anchor : stored) {
    TrustAnchorInfo info;
    info.source = "store";
    info.anchor = std::move(anchor);
    if (info.anchor.kind == store::TrustAnchorKind::kManufacturerCa) {
      auto certs = ParsePemCertificates(info.anchor.value);
      if (certs.ok() && !certs->empty()) describe_ca(info, certs->front().get());
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<store::TrustAnchor> VerifierCore::AddTrustAnchor(std::string_view operator_id, store::TrustAnchor anchor) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "trust_anchor.add", "trust-anchors").status());
  switch (anchor.kind) {
    case store::TrustAnchorKind::kManufacturerCa: {
      auto certs = ParsePemCertificates(anchor.value);
      if (!certs.ok() || certs->size() != 1) {
        return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "certificate_pem must hold one PEM certificate");
      }
      AR_ASSIGN_OR_RETURN(CertificateSummary summary, SummarizeCertificate(certs->front().get()));
      if (!summary.is_ca) {
        return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                       "not a CA certificate (basicConstraints CA:TRUE): " + summary.subject);
      }
      anchor.id = "ca-" + common::HexEncode(common::Sha256(summary.der)).substr(0, 16);
      if (anchor.description.empty()) anchor.description = summary.subject;
      anchor.host_group.clear();
      break;
    }
    case store::TrustAnchorKind::kEkPin:
      std::transform(anchor.value.begin(), anchor.value.end(), anchor.value.begin(), ::tolower);
      if (!IsLowerHex64(anchor.value)) {
        return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                       "ek_sha256 must be the SHA-256 of the EK public area (64 hex digits)");
      }
      if (!anchor.host_group.empty() && !IsName(anchor.host_group)) {
        return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "bad host_group");
      }
      anchor.id = "ek-" + anchor.value.substr(0, 16);
      break;
    case store::TrustAnchorKind::kAutoApprove:
      if (!IsName(anchor.host_group)) {
        return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                       "auto_approve needs a host_group (1-64 of A-Z a-z 0-9 . _ - @)");
      }
      anchor.value.clear();
      anchor.id = "group-" + anchor.host_group;
      break;
  }
  if (anchor.description.size() > 500) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "description: at most 500 characters");
  }
  anchor.created_by = std::string(operator_id);
  AuditRecord audit = Audit(std::string(operator_id), "trust_anchor.add", anchor.id, AuditDecision::kAllow, {},
                            {{"kind", std::string(store::TrustAnchorKindName(anchor.kind))},
                             {"host_group", anchor.host_group}, {"description", anchor.description}});
  AR_RETURN_IF_ERROR(FromStore(store_->AddTrustAnchor(anchor, &audit)));
  return anchor;
}

Status VerifierCore::RemoveTrustAnchor(std::string_view operator_id, std::string_view id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "trust_anchor.remove", id).status());
  AuditRecord audit = Audit(std::string(operator_id), "trust_anchor.remove", std::string(id), AuditDecision::kAllow);
  Status removed = store_->RemoveTrustAnchor(id, &audit);
  if (removed.code() == StatusCode::kNotFound) {
    return Problem(StatusCode::kNotFound, problem::kNotFound,
                   "no trust anchor " + std::string(id) + " in the registry (anchors from the configuration file "
                   "are changed there)");
  }
  return FromStore(removed);
}

Result<std::shared_ptr<const EkCertificateValidator>> VerifierCore::CurrentEkValidator(
    const std::vector<store::TrustAnchor>& anchors) {
  std::string store_pems;
  for (const store::TrustAnchor& a : anchors) {
    if (a.kind == store::TrustAnchorKind::kManufacturerCa) store_pems += a.value + "\n";
  }
  std::lock_guard lock(ek_mu_);
  if (store_pems.empty()) {
    if (!ek_validator_) {
      return common::UnauthenticatedError("no TPM manufacturer CA is trusted and the EK is not pinned");
    }
    // Non-owning: the core owns ek_validator_ and outlives every request.
    return std::shared_ptr<const EkCertificateValidator>(ek_validator_.get(), [](const EkCertificateValidator*) {});
  }
  if (!combined_validator_ || store_pems != store_roots_pem_) {
    AR_ASSIGN_OR_RETURN(auto built, EkCertificateValidator::Create(config_.manufacturer_roots_pem + "\n" + store_pems));
    combined_validator_ = std::move(built);
    store_roots_pem_ = std::move(store_pems);
  }
  return combined_validator_;
}

// ---------------------------------------------------------------- hosts

Result<std::vector<HostInfo>> VerifierCore::ListHosts(std::string_view operator_id,
                                                      std::optional<store::HostStatus> status) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "host.list", "hosts").status());
  AR_ASSIGN_OR_RETURN(std::vector<store::Host> hosts, store_->ListHosts());
  AR_ASSIGN_OR_RETURN(auto attested, store_->LatestAuditByActor("attest", AuditDecision::kAllow));
  std::vector<HostInfo> out;
  for (store::Host& host : hosts) {
    if (status && host.status != *status) continue;
    HostInfo info;
    if (!host.ek_certificate.empty()) {
      if (auto cert = ParseCertificate(host.ek_certificate); cert.ok()) {
        if (auto summary = SummarizeCertificate(cert->get()); summary.ok()) {
          info.ek_certificate_subject = summary->subject;
          info.ek_certificate_issuer = summary->issuer;
        }
      }
    }
    if (auto it = attested.find(host.id); it != attested.end()) info.last_attested_at = it->second;
    info.host = std::move(host);
    out.push_back(std::move(info));
  }
  return out;
}

Status VerifierCore::RevokeHost(std::string_view operator_id, std::string_view host_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {Role::kInfra}, "host.revoke", host_id).status());
  AuditRecord audit = Audit(std::string(operator_id), "host.revoke", std::string(host_id), AuditDecision::kAllow);
  Status revoked = store_->RevokeHost(host_id, &audit);
  if (revoked.code() == StatusCode::kNotFound) return Problem(StatusCode::kNotFound, problem::kHostUnknown, "no such host");
  return FromStore(revoked);
}

// ---------------------------------------------------------------- agents

Result<std::vector<store::Agent>> VerifierCore::ListAgents(std::string_view operator_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "agent.list", "agents").status());
  return store_->ListAgents();
}

Result<store::Agent> VerifierCore::GetAgent(std::string_view operator_id, std::string_view agent_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "agent.show", agent_id).status());
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  return agent;
}

Result<std::vector<store::Manifest>> VerifierCore::ListManifests(std::string_view operator_id,
                                                                 std::string_view agent_id) {
  AR_RETURN_IF_ERROR(GetAgent(operator_id, agent_id).status());
  return store_->ListManifests(agent_id);
}

Result<std::map<std::string, std::vector<store::Manifest>>> VerifierCore::ManifestsByAgent(
    std::string_view operator_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "manifest.list", "manifests").status());
  AR_ASSIGN_OR_RETURN(std::vector<store::Manifest> all, store_->ListManifests(""));
  return GroupByAgent(std::move(all));
}

Result<store::Agent> VerifierCore::UpdateAgent(std::string_view operator_id, std::string_view agent_id,
                                               const AgentUpdate& update) {
  AR_ASSIGN_OR_RETURN(store::Operator op, RequireAnyRole(operator_id, {}, "agent.update", agent_id));
  AR_ASSIGN_OR_RETURN(store::Agent agent, AgentForChange(op, agent_id, "agent.update"));
  if (agent.status == store::AgentStatus::kRetired) {
    return Problem(StatusCode::kFailedPrecondition, problem::kConflict, "the agent is retired");
  }
  if (update.host_id && update.host_group) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "give host_id or host_group, not both");
  }
  Json changed = Json::object();
  if (update.owners) {
    if (update.owners->empty()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "at least one owner");
    agent.owners = *update.owners;
    changed["owners"] = agent.owners;
  }
  if (update.host_id) {
    agent.host_id = *update.host_id;
    agent.host_group.clear();
    changed["host_id"] = agent.host_id;
  }
  if (update.host_group) {
    agent.host_group = *update.host_group;
    agent.host_id.clear();
    changed["host_group"] = agent.host_group;
  }
  if (update.scopes) {
    if (update.scopes->empty() || !std::all_of(update.scopes->begin(), update.scopes->end(), IsScopeToken)) {
      return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "scopes: at least one, no spaces");
    }
    agent.allowed_scopes = *update.scopes;
    changed["scopes"] = agent.allowed_scopes;
  }
  if (update.audiences) {
    if (update.audiences->empty()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "at least one audience");
    agent.allowed_audiences = *update.audiences;
    changed["audiences"] = agent.allowed_audiences;
  }
  if (update.max_token_ttl) {
    if (*update.max_token_ttl <= 0 || *update.max_token_ttl > 86400) {
      return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "max_token_ttl: 1 s to 1 day");
    }
    agent.max_token_ttl_seconds = *update.max_token_ttl;
    changed["max_token_ttl"] = agent.max_token_ttl_seconds;
  }
  if (update.expires_at) {
    if (*update.expires_at <= clock_.NowUnixSeconds()) {
      return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "expires_at is in the past");
    }
    agent.expires_at = *update.expires_at;
    changed["expires_at"] = agent.expires_at;
  }
  if (changed.empty()) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "nothing to change");
  // Four eyes on access: an owner may narrow what the agent reaches, but
  // widening it after review (a new scope or audience, a longer token
  // lifetime, another placement) is for an infra operator who does not own
  // the agent, or a JIT elevation, which someone else approves.
  AR_ASSIGN_OR_RETURN(store::Agent before, store_->GetAgent(agent_id));
  auto adds = [](const std::vector<std::string>& now, const std::vector<std::string>& was) {
    return std::any_of(now.begin(), now.end(),
                       [&](const std::string& x) { return std::find(was.begin(), was.end(), x) == was.end(); });
  };
  const bool widens = adds(agent.allowed_scopes, before.allowed_scopes) ||
                      adds(agent.allowed_audiences, before.allowed_audiences) ||
                      agent.max_token_ttl_seconds > before.max_token_ttl_seconds ||
                      agent.host_id != before.host_id || agent.host_group != before.host_group;
  if (widens && (!HasRole(op, Role::kInfra) || IsOwner(before, op.id))) {
    AuditBestEffort(Audit(op.id, "agent.update", agent.id, AuditDecision::kDeny, {"widens_access"}, changed));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                   "widening an agent's access (scopes, audiences, token lifetime, placement) needs an infra operator "
                   "who is not its owner; for a while, request a JIT elevation");
  }
  AuditRecord audit = Audit(op.id, "agent.update", agent.id, AuditDecision::kAllow, {}, changed);
  AR_RETURN_IF_ERROR(FromStore(store_->UpdateAgent(agent, &audit)));
  return store_->GetAgent(agent_id);
}

Result<store::Agent> VerifierCore::SetAgentStatus(std::string_view operator_id, std::string_view agent_id,
                                                  store::AgentStatus status, std::string_view reason) {
  const char* action = status == store::AgentStatus::kActive      ? "agent.resume"
                       : status == store::AgentStatus::kSuspended ? "agent.suspend"
                                                                   : "agent.retire";
  AR_ASSIGN_OR_RETURN(store::Operator op, RequireAnyRole(operator_id, {}, action, agent_id));
  AR_ASSIGN_OR_RETURN(store::Agent agent, AgentForChange(op, agent_id, action));
  if (agent.status == status) return agent;  // idempotent: nothing to do, nothing audited
  if (agent.status == store::AgentStatus::kRetired) {
    return Problem(StatusCode::kFailedPrecondition, problem::kConflict, "the agent is retired (final)");
  }
  if (status == store::AgentStatus::kActive) {
    bool owned = std::any_of(agent.owners.begin(), agent.owners.end(), [&](const std::string& id) {
      auto owner = store_->GetOperator(id);
      return owner.ok() && owner->status == store::OperatorStatus::kActive;
    });
    if (!owned) {
      return Problem(StatusCode::kFailedPrecondition, problem::kConflict,
                     "the agent has no active owner: give it one (agents update --owner) before resuming it");
    }
  }
  if (reason.size() > 500) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "reason: at most 500 characters");
  AuditRecord audit = Audit(op.id, action, agent.id, AuditDecision::kAllow, {}, {{"reason", std::string(reason)}});
  AR_RETURN_IF_ERROR(FromStore(store_->SetAgentStatus(agent.id, status, &audit)));
  return store_->GetAgent(agent_id);
}

Result<std::vector<store::Manifest>> VerifierCore::PendingReviews(std::string_view operator_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "review.list", "reviews").status());
  return store_->ListManifestsByStatus(store::ManifestStatus::kPending);
}

// ---------------------------------------------------------------- just-in-time elevation

std::string VerifierCore::JitState(const store::JitGrant& grant) const {
  if (grant.status != store::JitStatus::kApproved) return std::string(store::JitStatusName(grant.status));
  return grant.expires_at > clock_.NowUnixSeconds() ? "active" : "expired";
}

Result<store::JitGrant> VerifierCore::RequestJit(std::string_view operator_id, std::string_view agent_id,
                                                 std::vector<std::string> scopes, int64_t duration_seconds,
                                                 std::string_view reason) {
  AR_ASSIGN_OR_RETURN(store::Operator op, RequireAnyRole(operator_id, {}, "jit.request", agent_id));
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  if (!IsOwner(*agent, op.id)) {
    AuditBestEffort(Audit(op.id, "jit.request", std::string(agent_id), AuditDecision::kDeny, {"not_owner"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "only an owner of the agent requests elevation");
  }
  if (agent->status != store::AgentStatus::kActive) {
    return Problem(StatusCode::kFailedPrecondition, problem::kConflict, "the agent is not active");
  }
  if (scopes.empty() || !std::all_of(scopes.begin(), scopes.end(), IsScopeToken)) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "scopes: at least one, no spaces");
  }
  for (const std::string& scope : scopes) {
    if (std::find(agent->allowed_scopes.begin(), agent->allowed_scopes.end(), scope) != agent->allowed_scopes.end()) {
      return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                     "scope " + scope + " is already allowed: elevation is for scopes the agent does not have");
    }
  }
  if (duration_seconds < 60 || duration_seconds > config_.jit_max_seconds) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput,
                   "duration: 60 s to " + std::to_string(config_.jit_max_seconds) + " s");
  }
  if (reason.empty() || reason.size() > 500) {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "a reason (1-500 characters) is required");
  }
  store::JitGrant grant;
  AR_ASSIGN_OR_RETURN(std::string random, common::RandomToken(12));
  grant.id = "jit-" + random;
  grant.agent_id = agent->id;
  grant.scopes = std::move(scopes);
  grant.reason = std::string(reason);
  grant.duration_seconds = duration_seconds;
  grant.requested_by = op.id;
  AuditRecord audit = Audit(op.id, "jit.request", grant.agent_id, AuditDecision::kAllow, {},
                            {{"grant", grant.id}, {"scopes", grant.scopes}, {"duration_seconds", duration_seconds},
                             {"reason", grant.reason}});
  AR_RETURN_IF_ERROR(FromStore(store_->CreateJitGrant(grant, &audit)));
  return store_->GetJitGrant(grant.id);
}

Result<store::JitGrant> VerifierCore::DecideJit(std::string_view operator_id, std::string_view grant_id, bool approve,
                                                std::string_view comment) {
  const char* action = approve ? "jit.approve" : "jit.reject";
  AR_ASSIGN_OR_RETURN(store::Operator op, RequireAnyRole(operator_id, {}, action, grant_id));
  auto grant = store_->GetJitGrant(grant_id);
  if (!grant.ok()) return Problem(StatusCode::kNotFound, problem::kNotFound, "no such JIT grant");
  if (grant->requested_by == op.id) {
    AuditBestEffort(Audit(op.id, action, std::string(grant_id), AuditDecision::kDeny, {"requester"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                   "the requester may not decide their own elevation: someone else must");
  }
  auto agent = store_->GetAgent(grant->agent_id);
  const bool may = HasRole(op, Role::kInfra) || HasRole(op, Role::kReviewer) || (agent.ok() && IsOwner(*agent, op.id));
  if (!may) {
    AuditBestEffort(Audit(op.id, action, std::string(grant_id), AuditDecision::kDeny, {"role"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                   "deciding an elevation needs the infra or reviewer role, or ownership of the agent");
  }
  if (comment.size() > 500) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "comment: at most 500 characters");
  const int64_t expires_at = approve ? clock_.NowUnixSeconds() + grant->duration_seconds : 0;
  AuditRecord audit = Audit(op.id, action, std::string(grant_id), AuditDecision::kAllow, {},
                            {{"agent", grant->agent_id}, {"scopes", grant->scopes}, {"expires_at", expires_at},
                             {"comment", std::string(comment)}});
  AR_RETURN_IF_ERROR(FromStore(store_->DecideJitGrant(grant_id,
                                                      approve ? store::JitStatus::kApproved : store::JitStatus::kRejected,
                                                      op.id, comment, expires_at, &audit)));
  return store_->GetJitGrant(grant_id);
}

Result<store::JitGrant> VerifierCore::RevokeJit(std::string_view operator_id, std::string_view grant_id) {
  AR_ASSIGN_OR_RETURN(store::Operator op, RequireAnyRole(operator_id, {}, "jit.revoke", grant_id));
  auto grant = store_->GetJitGrant(grant_id);
  if (!grant.ok()) return Problem(StatusCode::kNotFound, problem::kNotFound, "no such JIT grant");
  auto agent = store_->GetAgent(grant->agent_id);
  const bool may = grant->requested_by == op.id || HasRole(op, Role::kInfra) || (agent.ok() && IsOwner(*agent, op.id));
  if (!may) {
    AuditBestEffort(Audit(op.id, "jit.revoke", std::string(grant_id), AuditDecision::kDeny, {"role"}));
    return Problem(StatusCode::kPermissionDenied, problem::kForbidden,
                   "revoking an elevation needs the requester, an owner of the agent, or infra");
  }
  AuditRecord audit = Audit(op.id, "jit.revoke", std::string(grant_id), AuditDecision::kAllow, {},
                            {{"agent", grant->agent_id}});
  AR_RETURN_IF_ERROR(FromStore(store_->RevokeJitGrant(grant_id, &audit)));
  // No token may outlive the elevation it used: the agent's tokens go too
  // (the agent gets new ones within its own scopes).
  AuditRecord tokens = Audit(op.id, "agent.revoke_tokens", grant->agent_id, AuditDecision::kAllow, {},
                             {{"jit_grant", std::string(grant_id)}});
  AR_RETURN_IF_ERROR(store_->RevokeAgentTokens(grant->agent_id, &tokens).status());
  return store_->GetJitGrant(grant_id);
}

Result<std::vector<store::JitGrant>> VerifierCore::ListJit(std::string_view operator_id, std::string_view agent_id) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "jit.list", "jit-grants").status());
  return store_->ListJitGrants(agent_id);
}

// ---------------------------------------------------------------- inventory

Result<Json> VerifierCore::Inventory(std::string_view operator_id, const InventoryOptions& options) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {}, "inventory", "inventory").status());
  for (int64_t days : {options.expiring_days, options.unused_days, options.usage_days}) {
    if (days < 1 || days > 3650) return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "days: 1-3650");
  }
  const int64_t now = clock_.NowUnixSeconds();
  AR_ASSIGN_OR_RETURN(std::vector<store::Agent> agents, store_->ListAgents());
  AR_ASSIGN_OR_RETURN(std::vector<store::Operator> operators, store_->ListOperators());
  std::set<std::string> active_operators;
  for (const store::Operator& op : operators) {
    if (op.status == store::OperatorStatus::kActive) active_operators.insert(op.id);
  }
  AR_ASSIGN_OR_RETURN(auto usage, store_->TokenUsageByAgent(now - options.usage_days * kDay));
  AR_ASSIGN_OR_RETURN(auto attested, store_->LatestAuditBySubject("attest", AuditDecision::kAllow));
  AR_ASSIGN_OR_RETURN(std::vector<store::JitGrant> grants, store_->ListJitGrants(""));
  std::map<std::string, Json> in_force_of;  // agent id -> the grants in force, newest request first
  for (const store::JitGrant& g : grants) {
    if (JitState(g) != "active") continue;
    auto [it, added] = in_force_of.try_emplace(g.agent_id, Json::array());
    it->second.push_back(Json{{"id", g.id}, {"scopes", g.scopes}, {"expires_at", g.expires_at}});
  }
  AR_ASSIGN_OR_RETURN(std::vector<store::Manifest> all_manifests, store_->ListManifests(""));
  const auto manifests_of = GroupByAgent(std::move(all_manifests));
  Json findings = Json::array();
  auto finding = [&](Json& agent_findings, const std::string& code, const std::string& subject, std::string detail) {
    agent_findings.push_back(code);
    findings.push_back(Json{{"code", code}, {"subject", subject}, {"detail", std::move(detail)}});
  };
  Json out_agents = Json::array();
  for (const store::Agent& agent : agents) {
    Json owners = Json::array();
    int active_owners = 0;
    for (const std::string& owner : agent.owners) {
      const bool active = active_operators.count(owner) != 0;
      active_owners += active;
      owners.push_back(Json{{"id", owner}, {"active", active}});
    }
    auto found = in_force_of.find(agent.id);
    Json in_force = found == in_force_of.end() ? Json::array() : std::move(found->second);
    const auto manifests = manifests_of.find(agent.id);
    const store::TokenUsage* used = nullptr;
    if (auto it = usage.find(agent.id); it != usage.end()) used = &it->second;
    const int64_t last_attested = attested.count(agent.id) != 0 ? attested.at(agent.id) : 0;
    Json a = {{"id", agent.id}, {"name", agent.name}, {"status", std::string(store::AgentStatusName(agent.status))},
              {"owners", owners}, {"host_id", agent.host_id}, {"host_group", agent.host_group},
              {"scopes", agent.allowed_scopes}, {"audiences", agent.allowed_audiences},
              {"jit_grants_in_force", in_force}, {"expires_at", agent.expires_at},
              {"last_attested_at", last_attested}, {"last_token_at", used ? used->last_issued_at : 0},
              {"scopes_used", used ? used->scopes_since : std::vector<std::string>{}},
              {"review", internal::ReviewSummary(manifests == manifests_of.end() ? std::vector<store::Manifest>{}
                                                                                  : manifests->second)}};
    Json agent_findings = Json::array();
    if (agent.status != store::AgentStatus::kRetired) {
      if (active_owners == 0) {
        finding(agent_findings, "no_active_owner", agent.id, "no owner of this agent is an active operator");
      } else if (active_owners == 1) {
        finding(agent_findings, "single_owner", agent.id, "one active owner: the agent is orphaned when they leave");
      }
      if (a["review"]["approved_version"].get<int64_t>() == 0) {
        finding(agent_findings, "never_reviewed", agent.id, "no manifest version of this agent was ever approved");
      }
      if (agent.expires_at <= now) {
        finding(agent_findings, "expired", agent.id, "the registration has expired");
      } else if (agent.expires_at <= now + options.expiring_days * kDay) {
        finding(agent_findings, "expiring", agent.id,
                "the registration ends within " + std::to_string(options.expiring_days) + " days");
      }
      const int64_t unused_since = now - options.unused_days * kDay;
      if (agent.created_at < unused_since && (used == nullptr || used->last_issued_at < unused_since)) {
        finding(agent_findings, "unused", agent.id,
                "no token in the last " + std::to_string(options.unused_days) + " days");
      }
      if (used != nullptr && used->tokens_since > 0) {
        std::vector<std::string> unused_scopes;
        for (const std::string& scope : agent.allowed_scopes) {
          if (!std::binary_search(used->scopes_since.begin(), used->scopes_since.end(), scope)) {
            unused_scopes.push_back(scope);
          }
        }
        if (!unused_scopes.empty()) {
          finding(agent_findings, "over_broad_scopes", agent.id,
                  "allowed but not used in the last " + std::to_string(options.usage_days) +
                      " days: " + FormatScope(unused_scopes));
        }
      }
    }
    a["findings"] = std::move(agent_findings);
    out_agents.push_back(std::move(a));
  }
  // Shadow agents, one row per reporting host and executable.
  AR_ASSIGN_OR_RETURN(std::vector<store::AuditEntry> reports, store_->AuditByAction(internal::kShadowAction, 10000));
  std::map<std::pair<std::string, std::string>, Json> shadows;
  for (auto it = reports.rbegin(); it != reports.rend(); ++it) {  // oldest first
    const Json& d = it->record.details;
    auto key = std::make_pair(it->record.actor, d.value("exe_sha256", "") + "\n" + d.value("exe_path", ""));
    auto [row, inserted] = shadows.try_emplace(key, Json{{"host_id", it->record.actor},
                                                         {"exe_path", d.value("exe_path", "")},
                                                         {"exe_sha256", d.value("exe_sha256", "")},
                                                         {"uid", d.value("uid", int64_t{0})},
                                                         {"reports", 0}, {"first_seen", it->ts}});
    row->second["reports"] = row->second["reports"].get<int64_t>() + 1;
    row->second["last_seen"] = it->ts;
  }
  Json shadow_list = Json::array();
  for (auto& [key, row] : shadows) {
    findings.push_back(Json{{"code", "shadow_agent"}, {"subject", row["host_id"]},
                            {"detail", "unregistered " + row["exe_path"].get<std::string>() + " asked for credentials (" +
                                           std::to_string(row["reports"].get<int64_t>()) + " reports)"}});
    shadow_list.push_back(std::move(row));
  }
  return Json{{"generated_at", now},
              {"parameters", {{"expiring_days", options.expiring_days}, {"unused_days", options.unused_days},
                              {"usage_days", options.usage_days}}},
              {"agents", std::move(out_agents)},
              {"shadow_agents", std::move(shadow_list)},
              {"findings", std::move(findings)}};
}

}  // namespace agentroot::attestation
