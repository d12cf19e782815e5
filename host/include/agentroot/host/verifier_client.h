// VerifierClient: the host-facing routes of agentroot-verifier
// (attestation/openapi/verifier.openapi.json), typed.
//
// Every call returns the verifier's answer or a Status whose message starts
// with the verifier's code, so callers can branch on it with
// attestation::OAuthErrorOf:
//   - transport failures (refused, reset, TLS, timeout) and HTTP 5xx:
//     UNAVAILABLE, "verifier_unavailable: ..." — retry later;
//   - problem details (4xx): the HTTP status mapped to a StatusCode (403
//     PERMISSION_DENIED, 404 NOT_FOUND, 401 UNAUTHENTICATED, 409
//     FAILED_PRECONDITION, else INVALID_ARGUMENT), message "<problem code>:
//     <detail>" (e.g. "host_not_approved: host is not approved");
//   - OAuth errors of the token endpoint: "<error>: <error_description>".
// Bodies of successful answers (EARs, tokens) never appear in a Status.
//
// Thread safety: all methods may be called from several threads. HTTPS
// connections (one HttpClient each) are pooled: a call takes an idle one or
// opens a new one, at most `connections` stay open; unrelated callers do not
// wait for each other.
#ifndef AGENTROOT_HOST_VERIFIER_CLIENT_H_
#define AGENTROOT_HOST_VERIFIER_CLIENT_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::http {
class HttpClient;
struct ClientRequest;
struct Response;
}  // namespace agentroot::http

namespace agentroot::host {

// The code of verifier_unavailable statuses.
inline constexpr std::string_view kVerifierUnavailable = "verifier_unavailable";

struct VerifierMetadata {
  std::string issuer;
  std::string token_endpoint;  // absolute URL: the DPoP htu of token requests
};

struct EnrollAnswer {
  std::string host_id;
  std::string activation_id;
  common::Bytes credential_blob;
  common::Bytes encrypted_secret;
  int64_t expires_at = 0;
};

struct ActivateAnswer {
  std::string host_id;
  std::string status;  // "pending", "approved", ...
  bool reenrolled = false;
};

struct AttestEvidence {
  std::string host_id;
  std::string agent_id;
  std::string nonce;
  common::Bytes agent_key_public;   // TPM2B_PUBLIC
  common::Bytes quote_attest;
  common::Bytes quote_signature;
  std::map<uint32_t, common::Bytes> pcr_values;  // SHA-256 bank
  std::string measurement_log;      // JSON lines
};

struct AttestAnswer {
  std::string ear;                  // a JWT; never logged
  std::string status;               // "affirming", "warning", "contraindicated", ...
  std::vector<std::string> reasons;
  int64_t expires_at = 0;
};

struct TokenAnswer {
  std::string access_token;         // never logged
  int64_t expires_in = 0;
  std::string scope;
};

struct TokenRequestExtras {
  int64_t requested_ttl = 0;    // 0: not sent
  std::string session_binding;  // empty: not sent (tpm proof mode)
};

class VerifierClient {
 public:
  // `base_url` "https://host:port", `ca_pem` the trust anchors of its TLS
  // certificate. INVALID_ARGUMENT for bad options.
  static common::Result<std::unique_ptr<VerifierClient>> Create(std::string base_url, std::string ca_pem,
                                                                int connections = 8);
  ~VerifierClient();

  const std::string& base_url() const { return base_url_; }

  // GET /.well-known/oauth-authorization-server (cached after the first
  // success).
  common::Result<VerifierMetadata> Metadata();

  // POST /v1/enroll.
  common::Result<EnrollAnswer> Enroll(common::ByteView ek_certificate, common::ByteView ek_public,
                                      common::ByteView ak_public, std::string_view ek_intermediates_pem,
                                      std::string_view host_group);
  // POST /v1/enroll/{host_id}/activate.
  common::Result<ActivateAnswer> Activate(std::string_view host_id, std::string_view activation_id,
                                          const common::SecretBytes& secret);
  // POST /v1/hosts/{host_id}/challenges; returns the nonce. `purpose` is
  // "attest", "certify" or "report". Refused with host_not_approved while
  // the host is pending or revoked, host_unknown when the verifier does not
  // know it.
  common::Result<std::string> Challenge(std::string_view host_id, std::string_view purpose);
  // POST /v1/hosts/{host_id}/agent-keys; returns the registered thumbprint.
  common::Result<std::string> RegisterAgentKey(std::string_view host_id, std::string_view agent_id,
                                               std::string_view nonce, common::ByteView key_public,
                                               common::ByteView certify_attest, common::ByteView certify_signature);
  // GET /v1/hosts/{host_id}/status: "pending", "approved" or "revoked";
  // host_unknown (NOT_FOUND) when the verifier does not know the host.
  common::Result<std::string> HostStatus(std::string_view host_id);
  // POST /v1/hosts/{host_id}/shadow-agents: `report` (a JSON object, sent as
  // is) with a TPM2_Quote over ShadowReportQualifyingData(nonce, report) by
  // the host's AK; `nonce` from Challenge(host, "report").
  common::Status ReportShadowAgent(std::string_view host_id, std::string_view nonce, const common::Json& report,
                                   common::ByteView quote_attest, common::ByteView quote_signature);
  // POST /oauth/introspect (RFC 7662): whether the verifier still considers
  // `token` active (not revoked, not expired).
  common::Result<bool> Introspect(std::string_view token);
  // POST /v1/attest.
  common::Result<AttestAnswer> Attest(const AttestEvidence& evidence);
  // POST <token_endpoint path> (RFC 8693 token exchange, subject_token = the
  // EAR) with `dpop_proof` in the DPoP header; `extras` adds requested_ttl
  // and agentroot_session_binding when set. When the verifier answers
  // use_dpop_nonce, `*dpop_nonce` receives its DPoP-Nonce (if given).
  common::Result<TokenAnswer> ExchangeToken(const VerifierMetadata& metadata, std::string_view ear,
                                            std::string_view scope, std::string_view audience,
                                            std::string_view dpop_proof, const TokenRequestExtras& extras = {},
                                            std::string* dpop_nonce = nullptr);

  // Connections opened so far (tests).
  std::size_t connections_opened() const;

 private:
  VerifierClient(std::string base_url, std::string ca_pem, int connections);

  // Sends on a pooled connection; transport errors -> verifier_unavailable.
  common::Result<http::Response> Send(const http::ClientRequest& request);
  common::Result<common::Json> PostJson(const std::string& target, const common::Json& body, int expected_status);

  std::string base_url_;
  std::string ca_pem_;
  std::size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<http::HttpClient>> idle_;
  std::size_t opened_ = 0;
  std::optional<VerifierMetadata> metadata_;
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_VERIFIER_CLIENT_H_
