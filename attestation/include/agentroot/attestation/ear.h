// Attestation results in EAR form (draft-ietf-rats-ear), as signed JWTs.
//
// After appraising a host's evidence for one agent, the verifier states its
// verdict as an EAR: `eat_profile` tag:github.com,2023:veraison/ear, `iat`,
// `exp` (short: the result is a ticket for one token exchange), `eat_nonce`
// (the challenge answered), `ear.verifier-id`, and one submodule per
// appraised target with `ear.status` and an AR4SI trustworthiness vector.
// agentroot adds `iss` and binds the result to the agent key with
// `cnf.jkt` plus `agentroot.agent` / `agentroot.host`, so a result cannot be
// used with another key, agent or host.
//
// Trust vector values follow AR4SI: 0 no claim, 2 affirming, 32 warning,
// 96 contraindicated, plus the documented specific codes used here.
//
// Thread safety: pure functions.
#ifndef AGENTROOT_ATTESTATION_EAR_H_
#define AGENTROOT_ATTESTATION_EAR_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/jws.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

inline constexpr std::string_view kEarProfile = "tag:github.com,2023:veraison/ear";
inline constexpr std::string_view kEarSubmodule = "agent";

enum class EarStatus { kNone, kAffirming, kWarning, kContraindicated };
std::string_view EarStatusName(EarStatus status);

// AR4SI trustworthiness claims (each an int in [-128, 127]).
struct TrustVector {
  int instance_identity = 0;  // 2: EK chain + AK activation verified
  int configuration = 0;      // 2: PCRs match the host group's references
  int executables = 0;        // 2: agent measurement matches the approved manifest
  int file_system = 0;
  int hardware = 0;           // 2: key is TPM-resident (fixedTPM, certified by the AK)
  int runtime_opaque = 0;
  int storage_opaque = 0;     // 2: agent key non-exportable
  int sourced_data = 0;
};

// The worst tier present: any >= 96 contraindicated, any >= 32 warning, any
// 2..31 affirming, else none.
EarStatus DeriveStatus(const TrustVector& vector);

struct AttestationResult {
  std::string issuer;            // the verifier's URL
  std::string verifier_build;    // ear.verifier-id.build
  int64_t iat = 0;
  int64_t exp = 0;
  common::Bytes nonce;           // eat_nonce (base64url on the wire)
  TrustVector trust;
  EarStatus status = EarStatus::kNone;  // DeriveStatus(trust) when signing
  std::string policy_id;         // ear.appraisal-policy-id
  std::string agent_id;
  std::string host_id;
  std::string jkt;               // the agent key's RFC 7638 thumbprint
  int manifest_version = 0;
};

// Signs `result` (status recomputed from the trust vector) as a JWT with
// typ "ear+jwt".
common::Result<std::string> SignEar(const AttestationResult& result, const common::Signer& signer);

// Verifies signature, typ, profile, issuer, iat/exp (leeway 5 s) and
// returns the result. Structure errors are INVALID_ARGUMENT; signature,
// issuer and time failures UNAUTHENTICATED.
common::Result<AttestationResult> VerifyEar(std::string_view jwt,
                                            std::span<const common::VerificationKey> keys,
                                            std::string_view issuer, const common::Clock& clock);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_EAR_H_
