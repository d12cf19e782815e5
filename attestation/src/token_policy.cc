#include "agentroot/attestation/token_policy.h"

#include <algorithm>

namespace agentroot::attestation {

namespace {

bool Contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void Add(Decision& d, std::string_view reason) {
  if (!Contains(d.reasons, reason)) d.reasons.emplace_back(reason);
}

}  // namespace

std::vector<std::string> ParseScope(std::string_view scope) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < scope.size()) {
    std::size_t end = scope.find(' ', pos);
    if (end == std::string_view::npos) end = scope.size();
    if (end > pos) out.emplace_back(scope.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::string FormatScope(const std::vector<std::string>& scopes) {
  std::string out;
  for (const std::string& s : scopes) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

Decision DecideToken(const std::optional<HostView>& host, const std::optional<AgentView>& agent,
                     const std::optional<ManifestView>& manifest, const std::optional<KeyBindingView>& key,
                     const AttestationResult& ear, const TokenRequestView& request,
                     const std::vector<JitGrantView>& jit_grants, int64_t now, bool rate_limited) {
  Decision d;
  std::vector<const JitGrantView*> jit_used;  // per JIT scope granted, the grant it came from
  if (!host) {
    Add(d, reason::kHostUnknown);
  } else if (!host->approved) {
    Add(d, reason::kHostNotApproved);
  }
  if (!agent) {
    Add(d, reason::kAgentUnknown);
  } else {
    if (!agent->active) Add(d, reason::kAgentNotActive);
    if (agent->registration_expires_at <= now) Add(d, reason::kRegistrationExpired);
    if (agent->active_owners.empty()) Add(d, reason::kNoActiveOwner);
    if (host) {
      bool on_host = (!agent->host_id.empty() && agent->host_id == host->id) ||
                     (!agent->host_group.empty() && agent->host_group == host->group);
      if (!on_host) Add(d, reason::kAgentNotOnHost);
    }
  }
  if (!manifest || !manifest->approved) {
    Add(d, reason::kManifestNotApproved);
  } else if (agent && Contains(agent->active_owners, manifest->reviewer)) {
    // Separation of duties is enforced at review time too; re-checked here in
    // case ownership changed after the review.
    Add(d, reason::kReviewerIsOwner);
  }
  if (ear.status != EarStatus::kAffirming) Add(d, reason::kAttestationNotAffirming);
  if ((agent && ear.agent_id != agent->id) || (host && ear.host_id != host->id) ||
      (manifest && ear.manifest_version != manifest->version)) {
    Add(d, reason::kAttestationMismatch);
  }
  if (!key || (agent && key->agent_id != agent->id) || (host && key->host_id != host->id) || key->jkt != ear.jkt) {
    Add(d, reason::kKeyNotCertified);
  }
  if (request.proof_jkt.empty() || request.proof_jkt != ear.jkt) Add(d, reason::kProofKeyMismatch);

  if (request.scopes.empty()) Add(d, reason::kNoScope);
  if (agent) {
    for (const std::string& scope : request.scopes) {
      if (Contains(agent->allowed_scopes, scope)) {
        d.scopes.push_back(scope);
        continue;
      }
      // The grant of this scope that lasts longest.
      const JitGrantView* best = nullptr;
      for (const JitGrantView& g : jit_grants) {
        if (g.scope == scope && g.expires_at > now && (best == nullptr || g.expires_at > best->expires_at)) best = &g;
      }
      if (best != nullptr) {
        d.scopes.push_back(scope);
        d.jit_scopes.push_back(scope);
        jit_used.push_back(best);
        if (!Contains(d.jit_grant_ids, best->grant_id)) d.jit_grant_ids.push_back(best->grant_id);
      } else {
        Add(d, reason::kScopeNotAllowed);
      }
    }
    if (!Contains(agent->allowed_audiences, request.audience)) Add(d, reason::kAudienceNotAllowed);
    int64_t ttl = request.requested_ttl.value_or(agent->max_token_ttl);
    if (ttl <= 0 || ttl > agent->max_token_ttl) {
      Add(d, reason::kTtlExceedsMax);
    } else {
      // A token never outlives the registration nor a JIT grant it uses.
      ttl = std::min(ttl, agent->registration_expires_at - now);
      for (const JitGrantView* g : jit_used) ttl = std::min(ttl, g->expires_at - now);
      d.ttl = ttl;
    }
  }
  if (rate_limited) Add(d, reason::kRateLimited);

  d.allow = d.reasons.empty();
  if (!d.allow) {
    d.scopes.clear();
    d.jit_scopes.clear();
    d.jit_grant_ids.clear();
    d.ttl = 0;
  }
  return d;
}

}  // namespace agentroot::attestation
