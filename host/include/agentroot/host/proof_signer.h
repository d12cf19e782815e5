// ProofSigner: what signs an agent's DPoP proofs, one per agent, chosen by
// its manifest's proof_mode (docs/hostd.md "Proof modes").
//
//   tpm      TpmProofSigner: every proof is signed inside the TPM by the
//            agent's key; the token's cnf.jkt is that key's thumbprint.
//   session  SessionProofSigner: an ephemeral P-256 key in hostd's memory
//            (never written anywhere), bound to the TPM key by a session
//            binding (attestation/session_binding.h) signed in the TPM; the
//            token request carries the binding (agentroot_session_binding)
//            and the token's cnf.jkt is the session key's. One per token:
//            discarded with it.
//
// Thread safety: implementations are safe to call from several threads.
#ifndef AGENTROOT_HOST_PROOF_SIGNER_H_
#define AGENTROOT_HOST_PROOF_SIGNER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agentroot/common/signer.h"
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

// Proofs signed inside the TPM by the agent's key. `tpm_signatures`, when
// given, counts the signatures (it must outlive the signer).
class TpmProofSigner final : public ProofSigner {
 public:
  explicit TpmProofSigner(std::shared_ptr<hsm::Key> key, std::atomic<uint64_t>* tpm_signatures = nullptr);
  ProofMode mode() const override { return ProofMode::kTpm; }
  const std::string& jkt() const override { return jkt_; }
  common::Result<std::string> Proof(std::string_view method, std::string_view url, int64_t iat,
                                    std::optional<std::string_view> access_token,
                                    std::optional<std::string_view> nonce) const override;

 private:
  std::shared_ptr<hsm::Key> key_;
  std::string jkt_;
  std::atomic<uint64_t>* tpm_signatures_;
};

// Proofs signed in software by an ephemeral session key, bound to the
// agent's TPM key by a session binding.
class SessionProofSigner final : public ProofSigner {
 public:
  // Generates the session key and signs its binding (iss `agent_id`, iat
  // `issued_at`, exp issued_at + `lifetime`, at most 3600 s) with `tpm_key`:
  // one TPM signature, counted in `*tpm_signatures` when given.
  static common::Result<std::unique_ptr<SessionProofSigner>> Create(const hsm::Key& tpm_key,
                                                                    std::string_view agent_id, int64_t issued_at,
                                                                    int64_t lifetime,
                                                                    std::atomic<uint64_t>* tpm_signatures = nullptr);
  ProofMode mode() const override { return ProofMode::kSession; }
  const std::string& jkt() const override { return jkt_; }
  // The binding JWT the token request carries.
  const std::string& binding() const { return binding_; }
  int64_t expires_at() const { return expires_at_; }
  common::Result<std::string> Proof(std::string_view method, std::string_view url, int64_t iat,
                                    std::optional<std::string_view> access_token,
                                    std::optional<std::string_view> nonce) const override;

 private:
  SessionProofSigner(std::unique_ptr<common::Signer> session_key, std::string binding, int64_t expires_at)
      : session_key_(std::move(session_key)), jkt_(session_key_->public_jwk().Thumbprint()),
        binding_(std::move(binding)), expires_at_(expires_at) {}

  std::unique_ptr<common::Signer> session_key_;
  std::string jkt_;
  std::string binding_;
  int64_t expires_at_;
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_PROOF_SIGNER_H_
