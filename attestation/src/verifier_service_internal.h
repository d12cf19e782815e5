// Helpers shared by the files that implement VerifierService
// (verifier_service.cc, verifier_service_admin.cc). Private to the library.
#ifndef AGENTROOT_ATTESTATION_SRC_VERIFIER_SERVICE_INTERNAL_H_
#define AGENTROOT_ATTESTATION_SRC_VERIFIER_SERVICE_INTERNAL_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "agentroot/attestation/verifier.h"
#include "agentroot/http/server.h"

namespace agentroot::attestation::service_internal {

// An RFC 9457 problem response for a "<code>: detail" status.
http::Response Problem(const common::Status& status);
// The request body as a JSON object (strict, 256 KiB, depth 16).
common::Result<common::Json> Body(const http::Request& request);
// A string member of a JSON body; invalid_input when missing.
common::Result<std::string> Str(const common::Json& body, const char* name);
// The operator behind the request's verified TLS client certificate.
common::Result<std::string> OperatorOf(VerifierCore& core, const http::Request& request);

using JsonHandler = std::function<common::Result<common::Json>(const http::Request&)>;
// A JSON handler as a route handler: errors become problem responses.
http::HttpServer::Handler Wrap(JsonHandler handler, int ok_status = 200);

// The operators' admin API (verifier_service_admin.cc).
common::Status RegisterAdminRoutes(http::HttpServer& server, VerifierCore& core);
std::vector<std::pair<std::string, std::string>> AdminRoutes();

}  // namespace agentroot::attestation::service_internal

#endif  // AGENTROOT_ATTESTATION_SRC_VERIFIER_SERVICE_INTERNAL_H_
