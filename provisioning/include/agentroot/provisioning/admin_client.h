// The client side of the verifier's admin API (prompts: admin-api contract,
// docs/cli.md): HTTPS with the operator's client certificate.
//
// AdminApi is the seam the CLI's commands talk through, so they can be
// exercised against a real verifier (HttpAdminApi) or a recording fake.
// Every non-2xx answer becomes a Status via StatusForHttp (its problem
// detail in the message); transport failures (refused, reset, TLS handshake,
// timeout) are UNAVAILABLE, so the CLI exits 6 for them.
//
// Thread safety: HttpAdminApi is as thread-safe as http::HttpClient
// (serialized calls).
#ifndef AGENTROOT_PROVISIONING_ADMIN_CLIENT_H_
#define AGENTROOT_PROVISIONING_ADMIN_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/json.h"
#include "agentroot/common/status.h"
#include "agentroot/http/http.h"
#include "agentroot/provisioning/cli_config.h"

namespace agentroot::http {
class HttpClient;
}

namespace agentroot::provisioning {

struct RawResponse {
  http::Headers headers;
  std::string body;
};

class AdminApi {
 public:
  virtual ~AdminApi() = default;
  // `target` is origin-form ("/v1/hosts?status=pending"). The answer's body
  // parsed strictly as JSON.
  virtual common::Result<common::Json> Get(std::string_view target) = 0;
  virtual common::Result<common::Json> Post(std::string_view target, const common::Json& body) = 0;
  // A GET whose body is not JSON (the audit export).
  virtual common::Result<RawResponse> GetRaw(std::string_view target) = 0;
};

class HttpAdminApi final : public AdminApi {
 public:
  // Checks the settings before connecting: `verifier` is an https:// URL,
  // `ca`, `certificate` and `private_key` are set and readable
  // (INVALID_ARGUMENT otherwise), and the operator certificate is valid at
  // `now` (UNAUTHENTICATED "operator certificate FILE expired at ...").
  // Connects lazily, at the first request.
  static common::Result<std::unique_ptr<HttpAdminApi>> Create(const CliSettings& settings, int64_t now);
  ~HttpAdminApi() override;

  common::Result<common::Json> Get(std::string_view target) override;
  common::Result<common::Json> Post(std::string_view target, const common::Json& body) override;
  common::Result<RawResponse> GetRaw(std::string_view target) override;

 private:
  HttpAdminApi(std::unique_ptr<http::HttpClient> client, std::string verifier);
  common::Result<http::Response> Send(std::string_view method, std::string_view target, std::string body);

  std::unique_ptr<http::HttpClient> client_;
  std::string verifier_;
};

// Percent-encodes one path segment or query value (every byte but
// ALPHA / DIGIT / - . _ ~).
std::string PathSegment(std::string_view text);

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_ADMIN_CLIENT_H_
