// The token decision: one function that checks everything a token request
// must satisfy (ARCHITECTURE.md flow 6) and says why not.
//
// It is pure: the service loads the registry state into the views below,
// verifies the attestation result (VerifyEar) and the DPoP proof
// (VerifyDpopProof) first, and records the Decision, allow or deny, with all
// its reasons in the audit log. Every failing check adds its own stable
// reason code (kReason*), so a refusal names every problem, not only the
// first, and each can be tested and queried on its own.
//
// Thread safety: pure function.
#ifndef AGENTROOT_ATTESTATION_TOKEN_POLICY_H_
#define AGENTROOT_ATTESTATION_TOKEN_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/ear.h"

namespace agentroot::attestation {

// Stable reason codes (persisted in audit records: extend, never rename).
namespace reason {
inline constexpr std::string_view kHostUnknown = "host_unknown";
inline constexpr std::string_view kHostNotApproved = "host_not_approved";
inline constexpr std::string_view kAgentUnknown = "agent_unknown";
inline constexpr std::string_view kAgentNotActive = "agent_not_active";
inline constexpr std::string_view kAgentNotOnHost = "agent_not_on_host";
inline constexpr std::string_view kRegistrationExpired = "registration_expired";
inline constexpr std::string_view kNoActiveOwner = "no_active_owner";
inline constexpr std::string_view kManifestNotApproved = "manifest_not_approved";
inline constexpr std::string_view kReviewerIsOwner = "reviewer_is_owner";
inline constexpr std::string_view kAttestationNotAffirming = "attestation_not_affirming";
inline constexpr std::string_view kAttestationMismatch = "attestation_for_another_agent_host_or_manifest";
inline constexpr std::string_view kKeyNotCertified = "key_not_certified";
inline constexpr std::string_view kProofKeyMismatch = "proof_key_not_attested_key";
inline constexpr std::string_view kScopeNotAllowed = "scope_not_allowed";
inline constexpr std::string_view kAudienceNotAllowed = "audience_not_allowed";
inline constexpr std::string_view kTtlExceedsMax = "ttl_exceeds_max";
inline constexpr std::string_view kNoScope = "no_scope_requested";
inline constexpr std::string_view kRateLimited = "rate_limited";
// Session proof mode (session_binding.h): the binding does not verify against
// the registered agent key, or does not name the proof key / the attested key.
inline constexpr std::string_view kSessionBindingInvalid = "session_binding_invalid";
inline constexpr std::string_view kSessionBindingNotProofKey = "session_binding_not_proof_key";
inline constexpr std::string_view kSessionBindingNotAttestedKey = "session_binding_not_attested_key";
}  // namespace reason

struct HostView {
  std::string id;
  std::string group;
  bool approved = false;
};

struct AgentView {
  std::string id;
  bool active = false;  // not suspended or retired
  std::string host_id;     // set when registered to one host
  std::string host_group;  // set when registered to a host group
  int64_t registration_expires_at = 0;
  std::vector<std::string> active_owners;
  std::vector<std::string> allowed_scopes;
  std::vector<std::string> allowed_audiences;
  int64_t max_token_ttl = 300;
};

struct ManifestView {
  int version = 0;
  bool approved = false;
  std::string reviewer;
};

// A time-boxed extra scope (just-in-time elevation), already approved.
struct JitGrantView {
  std::string scope;
  int64_t expires_at = 0;
  std::string grant_id;  // the grant it comes from (one grant may give several scopes)
};

struct TokenRequestView {
  std::vector<std::string> scopes;  // requested
  std::string audience;
  std::optional<int64_t> requested_ttl;
  std::string proof_jkt;  // thumbprint of the verified DPoP proof key
};

struct KeyBindingView {
  std::string agent_id;
  std::string host_id;
  std::string jkt;  // certified (TPM2_Certify under the host's AK) agent key
};

struct Decision {
  bool allow = false;
  std::vector<std::string> reasons;     // empty when allowed
  std::vector<std::string> scopes;      // granted, in request order
  int64_t ttl = 0;                      // seconds
  std::vector<std::string> jit_scopes;  // granted through JIT grants
  std::vector<std::string> jit_grant_ids;  // the grants used (each once, in first-use order)
};

// OAuth scope strings (RFC 6749 §3.3): space-separated tokens.
std::vector<std::string> ParseScope(std::string_view scope);
std::string FormatScope(const std::vector<std::string>& scopes);

// `host`, `agent`, `manifest`, `key` are nullopt when unknown. `ear` is an
// already signature-verified attestation result. `now` is Unix seconds.
// `rate_limited` is the caller's rate limiter verdict.
Decision DecideToken(const std::optional<HostView>& host, const std::optional<AgentView>& agent,
                     const std::optional<ManifestView>& manifest, const std::optional<KeyBindingView>& key,
                     const AttestationResult& ear, const TokenRequestView& request,
                     const std::vector<JitGrantView>& jit_grants, int64_t now, bool rate_limited);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_TOKEN_POLICY_H_
