#include "agentroot/host/proof_signer.h"

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/session_binding.h"

namespace agentroot::host {

TpmProofSigner::TpmProofSigner(std::shared_ptr<hsm::Key> key, std::atomic<uint64_t>* tpm_signatures)
    : key_(std::move(key)), jkt_(key_->public_jwk().Thumbprint()), tpm_signatures_(tpm_signatures) {}

common::Result<std::string> TpmProofSigner::Proof(std::string_view method, std::string_view url, int64_t iat,
                                                  std::optional<std::string_view> access_token,
                                                  std::optional<std::string_view> nonce) const {
  if (tpm_signatures_ != nullptr) tpm_signatures_->fetch_add(1, std::memory_order_relaxed);
  return attestation::CreateDpopProof(*key_, method, url, iat, access_token, nonce);
}

common::Result<std::unique_ptr<SessionProofSigner>> SessionProofSigner::Create(
    const hsm::Key& tpm_key, std::string_view agent_id, int64_t issued_at, int64_t lifetime,
    std::atomic<uint64_t>* tpm_signatures) {
  AR_ASSIGN_OR_RETURN(std::unique_ptr<common::OpenSslSigner> session,
                      common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256));
  if (tpm_signatures != nullptr) tpm_signatures->fetch_add(1, std::memory_order_relaxed);
  AR_ASSIGN_OR_RETURN(std::string binding, attestation::CreateSessionBinding(tpm_key, agent_id, session->public_jwk(),
                                                                             issued_at, lifetime));
  return std::unique_ptr<SessionProofSigner>(
      new SessionProofSigner(std::move(session), std::move(binding), issued_at + lifetime));
}

common::Result<std::string> SessionProofSigner::Proof(std::string_view method, std::string_view url, int64_t iat,
                                                      std::optional<std::string_view> access_token,
                                                      std::optional<std::string_view> nonce) const {
  return attestation::CreateDpopProof(*session_key_, method, url, iat, access_token, nonce);
}

}  // namespace agentroot::host
