// VerifierCore: the session binding of a token request (hostd's `session`
// proof mode; docs/tokens.md "Session-bound tokens").
#include "agentroot/attestation/token_policy.h"
#include "agentroot/attestation/verifier.h"
#include "verifier_internal.h"

namespace agentroot::attestation {

using common::Result;
using common::StatusCode;
using internal::Audit;
using store::AuditDecision;

Result<SessionBinding> VerifierCore::CheckSessionBinding(std::string_view binding, const AttestationResult& ear,
                                                         const std::string& proof_jkt) {
  auto refuse = [&](std::string_view reason, StatusCode code, const std::string& detail) -> common::Status {
    AuditBestEffort(Audit(ear.agent_id, "token.issue", ear.agent_id, AuditDecision::kDeny, {std::string(reason)},
                          {{"host", ear.host_id}, {"jkt", proof_jkt}, {"tpm_jkt", ear.jkt}, {"detail", detail},
                           {"proof_mode", "session"}}));
    return OAuthError(code, oauth_error::kInvalidGrant, std::string(reason) + ": " + detail);
  };
  // The key the EAR attests, as registered from TPM2_Certify evidence.
  auto key = store_->GetAgentKey(ear.jkt);
  if (!key.ok() || key->agent_id != ear.agent_id) {
    return refuse(reason::kSessionBindingInvalid, StatusCode::kPermissionDenied,
                  "the attested key is not registered for this agent");
  }
  auto verified = VerifySessionBinding(binding, key->public_jwk, ear.agent_id, clock_);
  if (!verified.ok()) {
    return refuse(reason::kSessionBindingInvalid, verified.status().code(), std::string(verified.status().message()));
  }
  if (verified->expires_at <= clock_.NowUnixSeconds()) {  // no leeway: the token may not outlive it
    return refuse(reason::kSessionBindingInvalid, StatusCode::kUnauthenticated, "the binding has expired");
  }
  if (verified->tpm_jkt != ear.jkt) {
    return refuse(reason::kSessionBindingNotAttestedKey, StatusCode::kPermissionDenied,
                  "the binding's tpm_jkt is not the attested key");
  }
  if (verified->session_jkt != proof_jkt) {
    return refuse(reason::kSessionBindingNotProofKey, StatusCode::kPermissionDenied,
                  "the binding's jkt is not the DPoP proof's key");
  }
  return verified;
}

}  // namespace agentroot::attestation
