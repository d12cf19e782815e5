#include "agentroot/host/proof_signer.h"

#include "agentroot/attestation/dpop.h"

namespace agentroot::host {

TpmProofSigner::TpmProofSigner(std::shared_ptr<hsm::Key> key)
    : key_(std::move(key)), jkt_(key_->public_jwk().Thumbprint()) {}

common::Result<std::string> TpmProofSigner::Proof(std::string_view method, std::string_view url, int64_t iat,
                                                  std::optional<std::string_view> access_token,
                                                  std::optional<std::string_view> nonce) const {
  return attestation::CreateDpopProof(*key_, method, url, iat, access_token, nonce);
}

}  // namespace agentroot::host
