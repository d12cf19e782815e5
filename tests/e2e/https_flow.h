// The steps of the verifier's HTTPS flow as a host (a swtpm machine) drives
// them, shared by the e2e suites that talk to a verifier over HTTPS: in
// process (verifier_https_test) or the agentroot-verifier binary
// (verifier_crash_test).
//
// Each step returns the verifier's response (an HTTP error status is a
// Response, not an error) or the error of the TPM or the transport, so callers
// assert what they expect, and threads can use the steps (no gtest macros).
//
// Thread safety: the functions may be called concurrently with different
// clients (an HttpClient serializes its calls); the TPM objects are
// thread-safe.
#ifndef AGENTROOT_TESTS_E2E_HTTPS_FLOW_H_
#define AGENTROOT_TESTS_E2E_HTTPS_FLOW_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "agentroot/attestation/measurement.h"
#include "agentroot/common/json.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/key_manager.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/http/client.h"
#include "agentroot/simulators/tpm_fleet.h"

namespace agentroot::e2e {

std::string ReadTextFile(const std::filesystem::path& path);

// The response body as JSON; a discarded value when it is not JSON.
common::Json ParseBody(const http::Response& response);

// One fleet machine's TPM with an attestor and a key manager keeping their
// state in `state_dir`.
struct TpmMachine {
  std::shared_ptr<hsm::tpm::TpmDevice> device;
  std::unique_ptr<hsm::tpm::TpmAttestor> attestor;
  std::unique_ptr<hsm::tpm::TpmKeyManager> keys;

  static common::Result<TpmMachine> Open(const std::string& tcti, const std::filesystem::path& state_dir);
};

struct Enrollment {
  http::Response challenge;   // POST /v1/enroll
  http::Response activation;  // POST /v1/enroll/{host}/activate (not sent when the challenge failed)
  std::string host_id;        // empty when the challenge failed
};

// Creates the AK `ak_id`, asks for the credential challenge with the RSA EK
// (certificate + the fleet's intermediate), recovers the secret in the TPM
// and activates.
common::Result<Enrollment> EnrollHost(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor,
                                      const simulators::FleetInfo& fleet, std::string_view host_group,
                                      std::string_view ak_id = "ak");

// The POST /v1/agents body: agent `name` on `host_group`, one scope and one
// audience, `owner` as its only owner, registered for a day.
common::Json AgentRegistration(std::string_view name, std::string_view host_group, std::string_view scope,
                               std::string_view audience, std::string_view owner, int64_t max_token_ttl = 300);

// POST /v1/agents/{name}/manifests with an executable digest and no files.
common::Result<http::Response> AddManifest(http::HttpClient& owner, std::string_view name,
                                           std::string_view exe_sha256_hex);

// POST /v1/agents/{name}/manifests/{version}/review.
common::Result<http::Response> ReviewManifest(http::HttpClient& reviewer, std::string_view name, int64_t version,
                                              bool approve);

// POST /v1/hosts/{host}/challenges for `purpose` ("attest", "certify"):
// the nonce; UNAVAILABLE (with the status and body) when it is not a 201.
common::Result<std::string> Challenge(http::HttpClient& client, std::string_view host_id, std::string_view purpose);

// A certify challenge, TPM2_Certify of `key` under the AK, and
// POST /v1/hosts/{host}/agent-keys.
common::Result<http::Response> RegisterAgentKey(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor,
                                                std::string_view host_id, std::string_view agent_id,
                                                const hsm::Key& key, std::string_view ak_id = "ak");

// The measurement hostd would log for `agent_id` (sequence 1, /opt/agents/<name>).
attestation::MeasurementEvent AgentEvent(std::string_view agent_id, std::string_view exe_sha256_hex);

struct AttestCall {
  std::string nonce;
  std::string body;  // the JSON body of POST /v1/attest
};

// An attest challenge, a quote over PCR 0 and `measurement_pcr` (SHA-256)
// binding the nonce, the agent key and `event`, and the /v1/attest body
// (with `event` as the whole measurement log).
common::Result<AttestCall> PrepareAttest(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor,
                                         std::string_view host_id, std::string_view agent_id,
                                         const hsm::Key& key, const attestation::MeasurementEvent& event,
                                         uint32_t measurement_pcr, std::string_view ak_id = "ak");

// POST /oauth/token: token exchange of `ear` for `scope` at `audience`, with
// `dpop_proof` as the DPoP header.
http::ClientRequest TokenRequest(std::string_view dpop_proof, std::string_view ear, std::string_view scope,
                                 std::string_view audience);

// A fresh DPoP proof (iat now) for POST `token_endpoint`.
common::Result<std::string> TokenProof(const common::Signer& key, std::string_view token_endpoint);

}  // namespace agentroot::e2e

#endif  // AGENTROOT_TESTS_E2E_HTTPS_FLOW_H_
