#include "agentroot/host/client.h"

#include <cstdlib>
#include <utility>

#include "agentroot/common/json.h"
#include "agentroot/http/client.h"

namespace agentroot::host {
namespace {

using common::Json;
using common::Result;

constexpr std::string_view kProblemPrefix = "urn:agentroot:problem:hostd:";

Result<int64_t> GetInt(const Json& object, std::string_view member) {
  auto it = object.find(member);
  if (it == object.end() || !it->is_number_integer()) {
    return common::InternalError("bad_response: hostd's answer lacks the integer \"" + std::string(member) + "\"");
  }
  return it->get<int64_t>();
}

Result<std::string> GetText(const Json& object, std::string_view member) {
  auto value = common::GetString(object, member);
  if (!value.ok()) {
    return common::InternalError("bad_response: hostd's answer lacks the string \"" + std::string(member) + "\"");
  }
  return value;
}

// `member` when it is a string, else "".
std::string TextOr(const Json& object, std::string_view member) {
  auto it = object.find(member);
  return (it != object.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

// A non-2xx answer as a Status: "<problem code>: <detail>".
common::Status Refusal(const http::Response& response) {
  std::string code = "hostd_error";
  std::string detail;
  auto body = common::ParseJsonStrict(response.body);
  if (body.ok() && body->is_object()) {
    std::string type = TextOr(*body, "type");
    if (type.rfind(kProblemPrefix, 0) == 0) {
      code = type.substr(kProblemPrefix.size());
    } else if (response.status == 413) {
      code = "request_too_large";
    } else if (response.status == 400) {
      code = "invalid_input";
    }
    detail = TextOr(*body, "detail");
    if (detail.empty()) detail = TextOr(*body, "title");
  }
  if (detail.empty()) detail = "HTTP " + std::to_string(response.status);
  std::string message = code + ": " + detail;
  switch (response.status) {
    case 400:
      return common::InvalidArgumentError(std::move(message));
    case 403:
      return common::PermissionDeniedError(std::move(message));
    case 413:
      return common::ResourceExhaustedError(std::move(message));
    case 503:
      return common::UnavailableError(std::move(message));
    default:
      return common::InternalError(std::move(message));
  }
}

}  // namespace

std::string_view ProblemCodeOf(const common::Status& status) {
  std::string_view message = status.message();
  std::size_t colon = message.find(':');
  if (status.ok() || colon == std::string_view::npos) return {};
  std::string_view code = message.substr(0, colon);
  for (char c : code) {
    if (!(c == '_' || (c >= 'a' && c <= 'z'))) return {};
  }
  return code;
}

Result<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  std::string path = options.socket_path;
  if (path.empty()) {
    const char* env = std::getenv(kSocketEnv);
    path = (env != nullptr && *env != '\0') ? env : kDefaultSocketPath;
  }
  http::ClientOptions http_options;
  http_options.unix_socket_path = path;
  http_options.connect_timeout = std::chrono::milliseconds(5'000);
  http_options.request_timeout = options.timeout;
  http_options.max_response_body_bytes = 256 * 1024;
  AR_ASSIGN_OR_RETURN(auto http, http::HttpClient::Create(std::move(http_options)));
  return std::unique_ptr<Client>(new Client(std::move(path), std::move(http)));
}

Client::Client(std::string socket_path, std::unique_ptr<http::HttpClient> http)
    : socket_path_(std::move(socket_path)), http_(std::move(http)) {}

Client::~Client() = default;

int64_t Client::retry_after_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return retry_after_;
}

Result<std::string> Client::Call(std::string_view method, std::string_view target, std::string body) {
  http::ClientRequest request;
  request.method = std::string(method);
  request.target = std::string(target);
  if (!body.empty()) {
    request.headers.emplace("Content-Type", "application/json");
    request.body = std::move(body);
  }
  std::lock_guard<std::mutex> lock(mu_);
  retry_after_ = 0;
  auto response = http_->Send(request);
  if (!response.ok()) {
    return common::UnavailableError("hostd_unreachable: " + socket_path_ + ": " + response.status().message() +
                                    " (is agentroot-hostd running, and may this user open its socket?)");
  }
  if (response->status == 200) return std::move(response->body);
  if (auto retry = http::FindHeader(response->headers, "Retry-After")) {
    retry_after_ = std::strtoll(std::string(*retry).c_str(), nullptr, 10);
  }
  return Refusal(*response);
}

Result<AgentToken> Client::Token(std::string_view audience, std::string_view scope) {
  AR_ASSIGN_OR_RETURN(std::string body, Call("POST", "/v1/token", Json{{"audience", audience}, {"scope", scope}}.dump()));
  auto json = common::ParseJsonStrict(body);
  if (!json.ok() || !json->is_object()) return common::InternalError("bad_response: hostd's token answer is not a JSON object");
  AgentToken token;
  AR_ASSIGN_OR_RETURN(token.access_token, GetText(*json, "access_token"));
  AR_ASSIGN_OR_RETURN(token.token_type, GetText(*json, "token_type"));
  AR_ASSIGN_OR_RETURN(token.expires_at, GetInt(*json, "expires_at"));
  AR_ASSIGN_OR_RETURN(token.expires_in, GetInt(*json, "expires_in"));
  AR_ASSIGN_OR_RETURN(token.scope, GetText(*json, "scope"));
  AR_ASSIGN_OR_RETURN(token.audience, GetText(*json, "audience"));
  AR_ASSIGN_OR_RETURN(token.agent_id, GetText(*json, "agent_id"));
  AR_ASSIGN_OR_RETURN(token.jkt, GetText(*json, "jkt"));
  AR_ASSIGN_OR_RETURN(token.proof_mode, GetText(*json, "proof_mode"));
  if (token.token_type != "DPoP") return common::InternalError("bad_response: token_type is not DPoP");
  return token;
}

Result<std::string> Client::Proof(std::string_view method, std::string_view url,
                                  std::optional<std::string_view> access_token) {
  Json request = {{"method", method}, {"url", url}};
  if (access_token.has_value()) request["access_token"] = *access_token;
  AR_ASSIGN_OR_RETURN(std::string body, Call("POST", "/v1/proof", request.dump()));
  auto json = common::ParseJsonStrict(body);
  if (!json.ok() || !json->is_object()) return common::InternalError("bad_response: hostd's proof answer is not a JSON object");
  return GetText(*json, "dpop");
}

Result<RequestHeaders> Client::Headers(std::string_view audience, std::string_view scope, std::string_view method,
                                       std::string_view url) {
  AR_ASSIGN_OR_RETURN(std::string body,
                      Call("POST", "/v1/headers",
                           Json{{"audience", audience}, {"scope", scope}, {"method", method}, {"url", url}}.dump()));
  auto json = common::ParseJsonStrict(body);
  if (!json.ok() || !json->is_object()) {
    return common::InternalError("bad_response: hostd's headers answer is not a JSON object");
  }
  RequestHeaders headers;
  AR_ASSIGN_OR_RETURN(headers.authorization, GetText(*json, "authorization"));
  AR_ASSIGN_OR_RETURN(headers.dpop, GetText(*json, "dpop"));
  AR_ASSIGN_OR_RETURN(headers.expires_at, GetInt(*json, "expires_at"));
  if (headers.authorization.rfind("DPoP ", 0) != 0) {
    return common::InternalError("bad_response: the authorization value is not a DPoP credential");
  }
  return headers;
}

Result<HostStatus> Client::Status() {
  AR_ASSIGN_OR_RETURN(std::string body, Call("GET", "/v1/status", ""));
  auto json = common::ParseJsonStrict(body);
  if (!json.ok() || !json->is_object()) return common::InternalError("bad_response: hostd's status is not a JSON object");
  HostStatus status;
  status.host_id = TextOr(*json, "host_id");
  AR_ASSIGN_OR_RETURN(status.enrollment, GetText(*json, "enrollment"));
  status.detail = TextOr(*json, "detail");
  status.verifier = TextOr(*json, "verifier");
  status.tpm = TextOr(*json, "tpm");
  return status;
}

}  // namespace agentroot::host
