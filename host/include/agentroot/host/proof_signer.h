// ProofSigner: what signs an agent's DPoP proofs, one per agent, chosen by
// its manifest's proof_mode (docs/hostd.md "Proof modes").
//
//   tpm      TpmProofSigner: every proof is signed inside the TPM by the
//            agent's key; the token's cnf.jkt is that key's thumbprint.
//   session  (not built yet: needs the verifier to accept a session binding)
//            an ephemeral key in hostd's memory, bound to the TPM key by a
//            TPM-signed binding that the token request carries. It slots in
//            as another ProofSigner whose TokenRequestParameters() adds
//            agentroot_session_binding and whose jkt() is the session key's.
//
// Thread safety: implementations are safe to call from several threads.
#ifndef AGENTROOT_HOST_PROOF_SIGNER_H_
#define AGENTROOT_HOST_PROOF_SIGNER_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agentroot/common/status.h"
#include "agentroot/hsm/key_manager.h"
#include "agentroot/host/agent_measurer.h"

namespace agentroot::host {

class ProofSigner {
 public:
  virtual ~ProofSigner() = default;
  virtual ProofMode mode() const = 0;
  // RFC 7638 thumbprint of the key proofs are signed with (the token's cnf.jkt).
  virtual const std::string& jkt() const = 0;
  // A DPoP proof (RFC 9449) for (method, url) at `iat`; `access_token` adds
  // ath, `nonce` the server's DPoP nonce.
  virtual common::Result<std::string> Proof(std::string_view method, std::string_view url, int64_t iat,
                                            std::optional<std::string_view> access_token = {},
                                            std::optional<std::string_view> nonce = {}) const = 0;
};

// Proofs signed inside the TPM by the agent's key.
class TpmProofSigner final : public ProofSigner {
 public:
  explicit TpmProofSigner(std::shared_ptr<hsm::Key> key);
  ProofMode mode() const override { return ProofMode::kTpm; }
  const std::string& jkt() const override { return jkt_; }
  common::Result<std::string> Proof(std::string_view method, std::string_view url, int64_t iat,
                                    std::optional<std::string_view> access_token,
                                    std::optional<std::string_view> nonce) const override;

 private:
  std::shared_ptr<hsm::Key> key_;
  std::string jkt_;
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_PROOF_SIGNER_H_
