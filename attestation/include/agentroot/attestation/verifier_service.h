// The verifier's HTTPS API: binds VerifierCore to an http::HttpServer.
//
// JSON APIs under /v1; TPM structures travel as base64url of their
// marshalled bytes. OAuth endpoints at /oauth/token (RFC 8693 token
// exchange with DPoP, form-encoded), /oauth/introspect (RFC 7662),
// /oauth/revoke (RFC 7009); metadata at /.well-known/oauth-authorization-server
// (RFC 8414) and keys at /.well-known/jwks.json. Errors are RFC 9457 problem
// details with a stable type (urn:agentroot:problem:<code>), and OAuth
// endpoints answer OAuth errors ({"error", "error_description"}).
//
// Operators authenticate with TLS client certificates (the server requests
// one, optional at the TLS layer); the certificate's SHA-256 fingerprint names
// the operator, whose roles authorize each admin call. Hosts and agents are
// not authenticated by TLS: their evidence (nonces bound to the host, AK
// signatures, DPoP proofs) is their authentication.
//
// The OpenAPI 3 document is attestation/openapi/verifier.openapi.json,
// served at /v1/openapi.json; Routes() lists exactly what Register installs
// and a test holds the two equal.
//
// Thread safety: handlers run concurrently on the server's workers.
#ifndef AGENTROOT_ATTESTATION_VERIFIER_SERVICE_H_
#define AGENTROOT_ATTESTATION_VERIFIER_SERVICE_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentroot/attestation/verifier.h"
#include "agentroot/http/server.h"

namespace agentroot::attestation {

// The OpenAPI document (embedded at build time).
std::string_view OpenApiDocument();

class VerifierService {
 public:
  explicit VerifierService(std::shared_ptr<VerifierCore> core) : core_(std::move(core)) {}

  // Installs every route on `server` (before server.Start()).
  common::Status Register(http::HttpServer& server);

  // (method, path pattern) of every route Register installs.
  static std::vector<std::pair<std::string, std::string>> Routes();

 private:
  std::shared_ptr<VerifierCore> core_;
};

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_VERIFIER_SERVICE_H_
