// Session bindings: how hostd's `session` proof mode (docs/hostd.md) ties an
// ephemeral DPoP key to the agent's TPM key.
//
// A session binding is a JWT (typ "agentroot-session+jwt") signed inside the
// TPM by the agent's key, the one the verifier registered from TPM2_Certify
// evidence. Its claims: iss = the agent id, jkt = the RFC 7638 thumbprint of
// the session key (a P-256 key that lives only in hostd's memory), tpm_jkt =
// the agent key's thumbprint, iat, exp (at most kMaxSessionBindingLifetime
// after iat). At the token endpoint the client presents the EAR (bound to
// tpm_jkt), the binding, and a DPoP proof signed by the session key; the
// token issued is bound to the session key (cnf.jkt = jkt) and expires no
// later than the binding.
//
// Thread safety: pure functions.
#ifndef AGENTROOT_ATTESTATION_SESSION_BINDING_H_
#define AGENTROOT_ATTESTATION_SESSION_BINDING_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

inline constexpr std::string_view kSessionBindingTyp = "agentroot-session+jwt";
inline constexpr int64_t kMaxSessionBindingLifetime = 3600;

struct SessionBinding {
  std::string agent_id;
  std::string session_jkt;
  std::string tpm_jkt;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
};

// Signs a binding of `session_key` with `tpm_key` (the agent's TPM key).
// INVALID_ARGUMENT for a lifetime outside (0, kMaxSessionBindingLifetime].
common::Result<std::string> CreateSessionBinding(const common::Signer& tpm_key, std::string_view agent_id,
                                                 const common::Jwk& session_key, int64_t issued_at,
                                                 int64_t lifetime);

// Verifies `binding`: signed by `tpm_key_jwk` (public JWK of the registered
// agent key; EC P-256 keys verify ES256 only, RSA keys RS256 or PS256), typ,
// iss = `agent_id`, tpm_jkt = that key's thumbprint, a well-formed jkt, iat
// and exp within 30 s of leeway, lifetime at most the maximum. Errors are
// UNAUTHENTICATED / INVALID_ARGUMENT with "invalid_grant: <why>" messages.
common::Result<SessionBinding> VerifySessionBinding(std::string_view binding, const common::Json& tpm_key_jwk,
                                                    std::string_view agent_id, const common::Clock& clock);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_SESSION_BINDING_H_
