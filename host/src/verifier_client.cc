#include "agentroot/host/verifier_client.h"

#include <cctype>

#include "agentroot/attestation/dpop.h"
#include "agentroot/http/client.h"
#include "agentroot/http/http.h"

namespace agentroot::host {

using common::Bytes;
using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;

namespace {

std::string B64(common::ByteView b) { return common::Base64UrlEncode(b); }

Status Unavailable(std::string_view detail) {
  return attestation::OAuthError(StatusCode::kUnavailable, kVerifierUnavailable, detail);
}

StatusCode CodeForHttp(int status) {
  switch (status) {
    case 401: return StatusCode::kUnauthenticated;
    case 403: return StatusCode::kPermissionDenied;
    case 404: return StatusCode::kNotFound;
    case 409: return StatusCode::kFailedPrecondition;
    case 429: return StatusCode::kResourceExhausted;
    default: return StatusCode::kInvalidArgument;
  }
}

// A non-success answer as a Status: problem details ("urn:agentroot:problem:
// <code>") or OAuth errors; 5xx are the verifier being unavailable.
Status ErrorOf(const http::Response& r) {
  Json j = Json::parse(r.body, nullptr, false);
  std::string code = "error", detail;
  if (j.is_object()) {
    if (j.contains("error") && j["error"].is_string()) {
      code = j["error"].get<std::string>();
      detail = j.value("error_description", "");
    } else if (j.contains("type") && j["type"].is_string()) {
      std::string type = j["type"].get<std::string>();
      constexpr std::string_view kPrefix = "urn:agentroot:problem:";
      code = type.rfind(kPrefix, 0) == 0 ? type.substr(kPrefix.size()) : type;
      detail = j.value("detail", "");
    }
  }
  if (detail.size() > 300) detail.resize(300);
  if (r.status >= 500) return Unavailable("HTTP " + std::to_string(r.status) + " " + code + ": " + detail);
  return attestation::OAuthError(CodeForHttp(r.status), code, detail.empty() ? "HTTP " + std::to_string(r.status) : detail);
}

Result<std::string> Field(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) {
    return common::InternalError(std::string("verifier answer lacks \"") + name + "\"");
  }
  return j[name].get<std::string>();
}

Result<Bytes> Field64(const Json& j, const char* name) {
  AR_ASSIGN_OR_RETURN(std::string text, Field(j, name));
  auto bytes = common::Base64UrlDecode(text);
  if (!bytes.ok()) return common::InternalError(std::string("verifier answer: \"") + name + "\" is not base64url");
  return bytes;
}

}  // namespace

Result<std::unique_ptr<VerifierClient>> VerifierClient::Create(std::string base_url, std::string ca_pem,
                                                               int connections) {
  if (base_url.rfind("https://", 0) != 0) return common::InvalidArgumentError("verifier URL must be https://");
  if (ca_pem.empty()) return common::InvalidArgumentError("verifier CA is empty");
  if (connections < 1) return common::InvalidArgumentError("connections must be >= 1");
  auto client = std::unique_ptr<VerifierClient>(new VerifierClient(std::move(base_url), std::move(ca_pem), connections));
  // Validate the options (URL, PEM) once, now.
  http::ClientOptions options;
  options.base_url = client->base_url_;
  options.ca_pem = client->ca_pem_;
  AR_ASSIGN_OR_RETURN(auto first, http::HttpClient::Create(std::move(options)));
  client->idle_.push_back(std::move(first));
  client->opened_ = 1;
  return client;
}

VerifierClient::VerifierClient(std::string base_url, std::string ca_pem, int connections)
    : base_url_(std::move(base_url)), ca_pem_(std::move(ca_pem)), max_idle_(static_cast<std::size_t>(connections)) {}

VerifierClient::~VerifierClient() = default;

std::size_t VerifierClient::connections_opened() const {
  std::lock_guard<std::mutex> lock(mu_);
  return opened_;
}

Result<http::Response> VerifierClient::Send(const http::ClientRequest& request) {
  std::unique_ptr<http::HttpClient> client;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      client = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!client) {
    http::ClientOptions options;
    options.base_url = base_url_;
    options.ca_pem = ca_pem_;
    options.connect_timeout = std::chrono::seconds(5);
    options.request_timeout = std::chrono::seconds(15);
    auto created = http::HttpClient::Create(std::move(options));
    if (!created.ok()) return Unavailable(created.status().message());
    client = std::move(created).value();
    std::lock_guard<std::mutex> lock(mu_);
    ++opened_;
  }
  auto response = client->Send(request);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(client));
  }
  if (!response.ok()) {
    return Unavailable(request.method + " " + request.target + ": " + std::string(response.status().message()));
  }
  return response;
}

Result<Json> VerifierClient::PostJson(const std::string& target, const Json& body, int expected_status) {
  http::ClientRequest r;
  r.method = "POST";
  r.target = target;
  r.headers.emplace("Content-Type", "application/json");
  r.body = body.dump();
  AR_ASSIGN_OR_RETURN(http::Response response, Send(r));
  if (response.status != expected_status) return ErrorOf(response);
  Json j = Json::parse(response.body, nullptr, false);
  if (!j.is_object()) return common::InternalError("verifier answer to " + target + " is not a JSON object");
  return j;
}

Result<VerifierMetadata> VerifierClient::Metadata() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (metadata_) return *metadata_;
  }
  http::ClientRequest r;
  r.target = "/.well-known/oauth-authorization-server";
  AR_ASSIGN_OR_RETURN(http::Response response, Send(r));
  if (response.status != 200) return ErrorOf(response);
  Json j = Json::parse(response.body, nullptr, false);
  if (!j.is_object()) return common::InternalError("verifier metadata is not a JSON object");
  VerifierMetadata m;
  AR_ASSIGN_OR_RETURN(m.issuer, Field(j, "issuer"));
  AR_ASSIGN_OR_RETURN(m.token_endpoint, Field(j, "token_endpoint"));
  if (m.token_endpoint.rfind("https://", 0) != 0) return common::InternalError("token_endpoint is not https");
  std::lock_guard<std::mutex> lock(mu_);
  metadata_ = m;
  return m;
}

Result<EnrollAnswer> VerifierClient::Enroll(common::ByteView ek_certificate, common::ByteView ek_public,
                                            common::ByteView ak_public, std::string_view ek_intermediates_pem,
                                            std::string_view host_group) {
  Json body = {{"ek_certificate", B64(ek_certificate)},
               {"ek_public", B64(ek_public)},
               {"ak_public", B64(ak_public)},
               {"host_group", std::string(host_group)}};
  if (!ek_intermediates_pem.empty()) body["ek_intermediates_pem"] = std::string(ek_intermediates_pem);
  AR_ASSIGN_OR_RETURN(Json j, PostJson("/v1/enroll", body, 200));
  EnrollAnswer a;
  AR_ASSIGN_OR_RETURN(a.host_id, Field(j, "host_id"));
  AR_ASSIGN_OR_RETURN(a.activation_id, Field(j, "activation_id"));
  AR_ASSIGN_OR_RETURN(a.credential_blob, Field64(j, "credential_blob"));
  AR_ASSIGN_OR_RETURN(a.encrypted_secret, Field64(j, "encrypted_secret"));
  a.expires_at = j.value("expires_at", int64_t{0});
  return a;
}

Result<ActivateAnswer> VerifierClient::Activate(std::string_view host_id, std::string_view activation_id,
                                                const common::SecretBytes& secret) {
  std::string encoded = B64(secret.Reveal());
  Json body = {{"activation_id", std::string(activation_id)}, {"secret", encoded}};
  common::SecureWipe(encoded.data(), encoded.size());
  auto j = PostJson("/v1/enroll/" + std::string(host_id) + "/activate", body, 200);
  std::string& held = body["secret"].get_ref<std::string&>();
  common::SecureWipe(held.data(), held.size());
  AR_RETURN_IF_ERROR(j.status());
  ActivateAnswer a;
  AR_ASSIGN_OR_RETURN(a.host_id, Field(*j, "host_id"));
  AR_ASSIGN_OR_RETURN(a.status, Field(*j, "status"));
  a.reenrolled = j->value("reenrolled", false);
  return a;
}

Result<std::string> VerifierClient::Challenge(std::string_view host_id, std::string_view purpose) {
  AR_ASSIGN_OR_RETURN(Json j, PostJson("/v1/hosts/" + std::string(host_id) + "/challenges",
                                       Json{{"purpose", std::string(purpose)}}, 201));
  return Field(j, "nonce");
}

Result<std::string> VerifierClient::RegisterAgentKey(std::string_view host_id, std::string_view agent_id,
                                                     std::string_view nonce, common::ByteView key_public,
                                                     common::ByteView certify_attest,
                                                     common::ByteView certify_signature) {
  AR_ASSIGN_OR_RETURN(Json j, PostJson("/v1/hosts/" + std::string(host_id) + "/agent-keys",
                                       Json{{"agent_id", std::string(agent_id)},
                                            {"nonce", std::string(nonce)},
                                            {"key_public", B64(key_public)},
                                            {"certify_attest", B64(certify_attest)},
                                            {"certify_signature", B64(certify_signature)}},
                                       201));
  return Field(j, "thumbprint");
}

Result<std::string> VerifierClient::HostStatus(std::string_view host_id) {
  http::ClientRequest r;
  r.target = "/v1/hosts/" + std::string(host_id) + "/status";
  AR_ASSIGN_OR_RETURN(http::Response response, Send(r));
  if (response.status != 200) return ErrorOf(response);
  Json j = Json::parse(response.body, nullptr, false);
  if (!j.is_object()) return common::InternalError("verifier answer to the host status is not a JSON object");
  return Field(j, "status");
}

common::Status VerifierClient::ReportShadowAgent(std::string_view host_id, std::string_view nonce, const Json& report,
                                                 common::ByteView quote_attest, common::ByteView quote_signature) {
  return PostJson("/v1/hosts/" + std::string(host_id) + "/shadow-agents",
                  Json{{"nonce", std::string(nonce)}, {"report", report}, {"quote_attest", B64(quote_attest)},
                       {"quote_signature", B64(quote_signature)}},
                  201)
      .status();
}

Result<bool> VerifierClient::Introspect(std::string_view token) {
  http::ClientRequest r;
  r.method = "POST";
  r.target = "/oauth/introspect";
  r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  r.body = "token=" + http::FormUrlEncode(token) + "&token_type_hint=access_token";
  AR_ASSIGN_OR_RETURN(http::Response response, Send(r));
  if (response.status != 200) return ErrorOf(response);
  Json j = Json::parse(response.body, nullptr, false);
  if (!j.is_object() || !j.contains("active") || !j["active"].is_boolean()) {
    return common::InternalError("verifier answer to introspection has no boolean \"active\"");
  }
  return j["active"].get<bool>();
}

Result<AttestAnswer> VerifierClient::Attest(const AttestEvidence& e) {
  Json pcrs = Json::object();
  for (const auto& [index, value] : e.pcr_values) pcrs[std::to_string(index)] = common::HexEncode(value);
  AR_ASSIGN_OR_RETURN(Json j, PostJson("/v1/attest",
                                       Json{{"host_id", e.host_id},
                                            {"agent_id", e.agent_id},
                                            {"nonce", e.nonce},
                                            {"agent_key_public", B64(e.agent_key_public)},
                                            {"quote_attest", B64(e.quote_attest)},
                                            {"quote_signature", B64(e.quote_signature)},
                                            {"pcr_values", pcrs},
                                            {"measurement_log", e.measurement_log}},
                                       200));
  AttestAnswer a;
  AR_ASSIGN_OR_RETURN(a.ear, Field(j, "ear"));
  AR_ASSIGN_OR_RETURN(a.status, Field(j, "status"));
  if (j.contains("reasons") && j["reasons"].is_array()) {
    for (const auto& r : j["reasons"]) {
      if (r.is_string()) a.reasons.push_back(r.get<std::string>());
    }
  }
  a.expires_at = j.value("expires_at", int64_t{0});
  return a;
}

Result<TokenAnswer> VerifierClient::ExchangeToken(const VerifierMetadata& metadata, std::string_view ear,
                                                  std::string_view scope, std::string_view audience,
                                                  std::string_view dpop_proof, const TokenRequestExtras& extras,
                                                  std::string* dpop_nonce) {
  // The request goes to this verifier, at the path of the advertised endpoint.
  std::size_t path = metadata.token_endpoint.find('/', 8);
  http::ClientRequest r;
  r.method = "POST";
  r.target = path == std::string::npos ? "/" : metadata.token_endpoint.substr(path);
  r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  r.headers.emplace("DPoP", std::string(dpop_proof));
  r.body = "grant_type=" + http::FormUrlEncode("urn:ietf:params:oauth:grant-type:token-exchange") +
           "&subject_token_type=" + http::FormUrlEncode("urn:ietf:params:oauth:token-type:jwt") +
           "&scope=" + http::FormUrlEncode(scope) + "&audience=" + http::FormUrlEncode(audience) +
           "&subject_token=" + http::FormUrlEncode(ear);
  if (extras.requested_ttl > 0) r.body += "&requested_ttl=" + std::to_string(extras.requested_ttl);
  if (!extras.session_binding.empty()) {
    r.body += "&agentroot_session_binding=" + http::FormUrlEncode(extras.session_binding);
  }
  AR_ASSIGN_OR_RETURN(http::Response response, Send(r));
  if (response.status != 200) {
    if (dpop_nonce != nullptr) {
      if (auto nonce = response.headers.find("DPoP-Nonce"); nonce != response.headers.end()) *dpop_nonce = nonce->second;
    }
    return ErrorOf(response);
  }
  Json j = Json::parse(response.body, nullptr, false);
  if (!j.is_object()) return common::InternalError("token answer is not a JSON object");
  TokenAnswer t;
  AR_ASSIGN_OR_RETURN(t.access_token, Field(j, "access_token"));
  if (j.value("token_type", "") != "DPoP") return common::InternalError("the verifier issued a token that is not DPoP");
  t.expires_in = j.value("expires_in", int64_t{0});
  t.scope = j.value("scope", std::string(scope));
  if (t.expires_in <= 0) return common::InternalError("token answer without expires_in");
  return t;
}

}  // namespace agentroot::host
