// Helpers shared by the files that implement VerifierCore (verifier.cc,
// verifier_session.cc, verifier_hosts.cc). Private to the library.
#ifndef AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_
#define AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_

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

}  // namespace agentroot::attestation::internal

#endif  // AGENTROOT_ATTESTATION_SRC_VERIFIER_INTERNAL_H_
