// VerifierCore: host-facing extras: a host's own status, shadow-agent
// reports, and the operators' shadow-agent inventory.
#include <algorithm>

#include "agentroot/attestation/tpm_evidence.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/attestation/verifier.h"
#include "verifier_internal.h"

namespace agentroot::attestation {

using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;
using internal::Audit;
using internal::Problem;
using store::AuditDecision;

using internal::kShadowAction;

Result<store::HostStatus> VerifierCore::HostStatusOf(std::string_view host_id) {
  auto host = store_->GetHost(host_id);
  if (!host.ok()) return Problem(StatusCode::kNotFound, problem::kHostUnknown, "no such host");
  return host->status;
}

Status VerifierCore::ReportShadowAgent(std::string_view host_id, std::string_view nonce, const ShadowReport& report,
                                       common::ByteView quote_attest, common::ByteView quote_signature) {
  const int64_t now = clock_.NowUnixSeconds();
  const std::string actor = host_id.empty() ? "unknown" : std::string(host_id);
  auto fail = [&](StatusCode code, std::string_view type, const std::string& detail) -> Status {
    AuditBestEffort(Audit(actor, "agent.shadow.report", report.exe_path, AuditDecision::kDeny, {std::string(type)},
                          {{"detail", detail}}));
    return Problem(code, type, detail);
  };
  auto bound = store_->ConsumeNonce(nonce, "report", now);
  if (!bound.ok() || common::ToString(*bound) != host_id) {
    return fail(StatusCode::kUnauthenticated, problem::kNonceInvalid, "unknown, expired, used or foreign nonce");
  }
  auto host = store_->GetHost(host_id);
  if (!host.ok()) return fail(StatusCode::kNotFound, problem::kHostUnknown, "no such host");
  if (host->status != store::HostStatus::kApproved) {
    return fail(StatusCode::kPermissionDenied, problem::kHostNotApproved, "host is not approved");
  }
  auto ak = TpmPublic::Parse(host->ak_public);
  if (!ak.ok()) return common::InternalError("stored AK unreadable");
  auto quote = VerifyQuoteSignature(*ak, quote_attest, quote_signature,
                                    ShadowReportQualifyingData(common::AsBytes(nonce), report));
  if (!quote.ok()) return fail(quote.status().code(), problem::kEvidenceInvalid, quote.status().message());
  store::AuditRecord record = Audit(actor, kShadowAction, report.exe_path, AuditDecision::kDeny, {"unregistered_agent"},
                             {{"exe_path", report.exe_path}, {"exe_sha256", report.exe_sha256_hex},
                              {"uid", report.uid}, {"gid", report.gid}, {"pid", report.pid},
                              {"seen_at", report.time}});
  return store_->AppendAudit(record).status();
}

Result<Json> VerifierCore::ListShadowAgents(std::string_view operator_id, std::size_t limit) {
  AR_RETURN_IF_ERROR(RequireAnyRole(operator_id, {store::Role::kAuditor, store::Role::kInfra}, "shadow_agents.list",
                                    "shadow-agents").status());
  AR_ASSIGN_OR_RETURN(std::vector<store::AuditEntry> entries, store_->AuditByAction(kShadowAction, limit));
  Json out = Json::array();
  for (const store::AuditEntry& entry : entries) {  // newest first
    const Json& d = entry.record.details;
    out.push_back(Json{{"seq", entry.seq}, {"time", entry.ts}, {"host_id", entry.record.actor},
                       {"exe_path", d.value("exe_path", "")}, {"exe_sha256", d.value("exe_sha256", "")},
                       {"uid", d.value("uid", int64_t{0})}, {"gid", d.value("gid", int64_t{0})},
                       {"pid", d.value("pid", int64_t{0})}, {"seen_at", d.value("seen_at", int64_t{0})}});
  }
  return out;
}

}  // namespace agentroot::attestation
