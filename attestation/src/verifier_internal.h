// Helpers shared by the files that implement VerifierCore (verifier.cc,
// verifier_session.cc, verifier_hosts.cc). Private to the library.
#ifndef AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_
#define AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/store/store.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::internal {

// A problem status, "<type>: <detail>" (the OAuthError convention).
inline common::Status Problem(common::StatusCode code, std::string_view type, std::string_view detail) {
  return OAuthError(code, type, detail);
}

inline store::AuditRecord Audit(std::string actor, std::string action, std::string subject,
                                store::AuditDecision decision, std::vector<std::string> reasons = {},
                                common::Json details = common::Json::object()) {
  store::AuditRecord r;
  r.actor = std::move(actor);
  r.action = std::move(action);
  r.subject = std::move(subject);
  r.decision = decision;
  r.reasons = std::move(reasons);
  r.details = std::move(details);
  return r;
}

// The audit action of a shadow-agent report (verifier_hosts.cc).
inline constexpr char kShadowAction[] = "agent.shadow";

// An agent's review state from its manifests (ascending versions):
// {"state": the latest version's status or "none", "approved_version": the
// latest approved version or 0, "latest_version": N or 0}.
inline common::Json ReviewSummary(const std::vector<store::Manifest>& manifests) {
  int64_t approved = 0;
  for (const store::Manifest& m : manifests) {
    if (m.status == store::ManifestStatus::kApproved) approved = std::max(approved, m.version);
  }
  if (manifests.empty()) return common::Json{{"state", "none"}, {"approved_version", 0}, {"latest_version", 0}};
  const store::Manifest& latest = *std::max_element(
      manifests.begin(), manifests.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return common::Json{{"state", std::string(store::ManifestStatusName(latest.status))},
                      {"approved_version", approved},
                      {"latest_version", latest.version}};
}

}  // namespace agentroot::attestation::internal

#endif  // AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_
