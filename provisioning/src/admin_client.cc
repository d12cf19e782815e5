#include "agentroot/provisioning/admin_client.h"

#include <utility>

#include "agentroot/common/secret_bytes.h"
#include "agentroot/http/client.h"
#include "agentroot/provisioning/cli_support.h"
#include "agentroot/provisioning/operator_ca.h"

namespace agentroot::provisioning {
namespace {

using common::InvalidArgumentError;
using common::Json;
using common::Result;
using common::Status;

// The audit export can be large; answers are bounded all the same.
constexpr std::size_t kMaxResponseBytes = std::size_t{512} << 20;

Result<Json> ParseBody(const http::Response& response) {
  common::JsonLimits limits;
  limits.max_bytes = kMaxResponseBytes;
  auto json = common::ParseJsonStrict(response.body, limits);
  if (!json.ok()) return common::InternalError("the verifier's answer is not JSON: " + json.status().message());
  return json;
}

}  // namespace

std::string PathSegment(std::string_view text) { return http::FormUrlEncode(text); }

HttpAdminApi::HttpAdminApi(std::unique_ptr<http::HttpClient> client, std::string verifier)
    : client_(std::move(client)), verifier_(std::move(verifier)) {}

HttpAdminApi::~HttpAdminApi() = default;

Result<std::unique_ptr<HttpAdminApi>> HttpAdminApi::Create(const CliSettings& settings, int64_t now) {
  if (settings.verifier.empty()) {
    return InvalidArgumentError("no verifier URL: give --verifier or set verifier in the config file");
  }
  if (settings.verifier.rfind("https://", 0) != 0) {
    return InvalidArgumentError("the verifier URL must start with https:// (got " + OneLine(settings.verifier) + ")");
  }
  if (settings.ca.empty()) return InvalidArgumentError("no verifier CA: give --ca or set ca in the config file");
  if (settings.certificate.empty() || settings.private_key.empty()) {
    return InvalidArgumentError(
        "no operator credential: give --cert and --key or set certificate and private_key in the config file");
  }
  http::ClientOptions options;
  // The URL is scheme://host[:port] for the client; a trailing slash is dropped.
  options.base_url = settings.verifier;
  while (options.base_url.size() > 8 && options.base_url.back() == '/') options.base_url.pop_back();
  AR_ASSIGN_OR_RETURN(options.ca_pem, ReadLocalFile(settings.ca, "verifier CA"));
  AR_ASSIGN_OR_RETURN(options.client_certificate_chain_pem, ReadLocalFile(settings.certificate, "operator certificate"));
  AR_RETURN_IF_ERROR(CheckOperatorCertificate(settings.certificate, options.client_certificate_chain_pem, now));
  {
    AR_ASSIGN_OR_RETURN(std::string key, ReadLocalFile(settings.private_key, "operator key"));
    options.client_private_key_pem = common::SecretBytes(common::AsBytes(key));
    common::SecureWipe(key.data(), key.size());
  }
  options.max_response_body_bytes = kMaxResponseBytes;
  options.request_timeout = std::chrono::seconds(120);
  auto client = http::HttpClient::Create(std::move(options));
  if (!client.ok()) {
    // Bad URL, CA or key: local input.
    return InvalidArgumentError("cannot set up the connection to " + OneLine(settings.verifier) + ": " +
                                client.status().message());
  }
  return std::unique_ptr<HttpAdminApi>(new HttpAdminApi(std::move(*client), settings.verifier));
}

Result<http::Response> HttpAdminApi::Send(std::string_view method, std::string_view target, std::string body) {
  http::ClientRequest request;
  request.method = std::string(method);
  request.target = std::string(target);
  request.headers.emplace("Accept", "application/json, application/problem+json, application/jsonl");
  if (method == "POST") {
    request.headers.emplace("Content-Type", "application/json");
    request.body = std::move(body);
  }
  auto response = client_->Send(request);
  if (!response.ok()) {
    const Status& s = response.status();
    if (s.code() == common::StatusCode::kInvalidArgument) return s;
    // Refused, reset, TLS handshake, timeout: the verifier is not usable.
    return common::UnavailableError("cannot reach " + verifier_ + ": " + s.message());
  }
  AR_RETURN_IF_ERROR(StatusForHttp(response->status, response->body));
  return response;
}

Result<Json> HttpAdminApi::Get(std::string_view target) {
  AR_ASSIGN_OR_RETURN(http::Response response, Send("GET", target, ""));
  return ParseBody(response);
}

Result<Json> HttpAdminApi::Post(std::string_view target, const Json& body) {
  AR_ASSIGN_OR_RETURN(http::Response response, Send("POST", target, body.dump()));
  if (response.body.empty()) return Json::object();
  return ParseBody(response);
}

Result<RawResponse> HttpAdminApi::GetRaw(std::string_view target) {
  AR_ASSIGN_OR_RETURN(http::Response response, Send("GET", target, ""));
  return RawResponse{std::move(response.headers), std::move(response.body)};
}

}  // namespace agentroot::provisioning
