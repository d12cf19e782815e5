#include "agentroot/attestation/verifier_service.h"

#include <functional>
#include <map>

#include "agentroot/common/signer.h"
#include "verifier_service_internal.h"

namespace agentroot::attestation {

using common::Bytes;
using common::Json;
using common::Status;
using common::StatusCode;
using http::Request;
using http::Response;

namespace service_internal {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted: return 409;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

// "<code>: detail" -> ("<code>", "detail"); internal errors never leak text.
Response Problem(const Status& status) {
  std::string_view message = status.message();
  std::string code = "error";
  std::string detail(message);
  if (std::size_t colon = message.find(": "); colon != std::string_view::npos && colon < 48 &&
                                              message.substr(0, colon).find(' ') == std::string_view::npos) {
    code = std::string(message.substr(0, colon));
    detail = std::string(message.substr(colon + 2));
  }
  int http_status = HttpStatusFor(status.code());
  if (http_status == 500) detail = "internal error";
  Response r = http::ProblemResponse(http_status, "urn:agentroot:problem:" + code, code, detail);
  if (auto retry = RetryAfterOf(status)) r.headers.emplace("Retry-After", std::to_string(*retry));
  return r;
}

Response OAuthErrorResponse(const Status& status) {
  std::string_view error = OAuthErrorOf(status);
  std::string_view message = status.message();
  std::string detail(message.size() > error.size() + 2 ? message.substr(error.size() + 2) : message);
  const std::optional<int64_t> retry = RetryAfterOf(status);
  int code = status.code() == StatusCode::kUnavailable ? 503
             : status.code() == StatusCode::kInternal  ? 500
             : retry                                   ? 429
                                                       : 400;
  if (code == 500) detail = "internal error";
  Response r = http::JsonResponse(code, Json{{"error", std::string(error)}, {"error_description", detail}});
  r.headers.emplace("Cache-Control", "no-store");
  if (retry) r.headers.emplace("Retry-After", std::to_string(*retry));
  return r;
}

common::Result<Json> Body(const Request& request) {
  auto json = common::ParseJsonStrict(request.body, common::JsonLimits{256 * 1024, 16});
  if (!json.ok() || !json->is_object()) {
    return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "body must be a JSON object");
  }
  return json;
}

common::Result<std::string> Str(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) {
    return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, std::string("missing string \"") + name + "\"");
  }
  return it->get<std::string>();
}

common::Result<Bytes> B64(const Json& body, const char* name) {
  AR_ASSIGN_OR_RETURN(std::string text, Str(body, name));
  auto bytes = common::Base64UrlDecode(text);
  if (!bytes.ok()) {
    return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, std::string("\"") + name + "\" is not base64url");
  }
  return bytes;
}

// application/x-www-form-urlencoded (RFC 6749 §B), duplicate names refused.
common::Result<std::map<std::string, std::string>> Form(std::string_view body) {
  std::map<std::string, std::string> out;
  auto decode = [](std::string_view s) -> common::Result<std::string> {
    std::string r;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        r += ' ';
      } else if (s[i] == '%') {
        if (i + 2 >= s.size()) return common::InvalidArgumentError("bad percent-encoding");
        auto hex = common::HexDecode(s.substr(i + 1, 2));
        if (!hex.ok()) return common::InvalidArgumentError("bad percent-encoding");
        r += static_cast<char>((*hex)[0]);
        i += 2;
      } else {
        r += s[i];
      }
    }
    return r;
  };
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find('&', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view pair = body.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    AR_ASSIGN_OR_RETURN(std::string name, decode(pair.substr(0, eq)));
    AR_ASSIGN_OR_RETURN(std::string value, decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1)));
    if (!out.emplace(name, value).second) return common::InvalidArgumentError("parameter \"" + name + "\" repeated");
  }
  return out;
}

// The operator behind a request's TLS client certificate.
common::Result<std::string> OperatorOf(VerifierCore& core, const Request& request) {
  if (!request.peer.tls || request.peer.tls->client_certificate_der.empty() ||
      !request.peer.tls->client_certificate_verified) {
    return OAuthError(StatusCode::kUnauthenticated, problem::kForbidden, "an operator client certificate is required");
  }
  std::string fingerprint = common::HexEncode(common::Sha256(request.peer.tls->client_certificate_der));
  AR_ASSIGN_OR_RETURN(auto op, core.Authenticate(fingerprint));
  return op.id;
}

http::HttpServer::Handler Wrap(JsonHandler handler, int ok_status) {
  return [handler = std::move(handler), ok_status](const Request& request) -> Response {
    auto result = handler(request);
    if (!result.ok()) return Problem(result.status());
    return http::JsonResponse(ok_status, *result);
  };
}

}  // namespace service_internal

using namespace service_internal;  // NOLINT(google-build-using-namespace): this file's own helpers

std::vector<std::pair<std::string, std::string>> VerifierService::Routes() {
  std::vector<std::pair<std::string, std::string>> routes = {{"GET", "/.well-known/oauth-authorization-server"},
          {"GET", "/.well-known/jwks.json"},
          {"GET", "/v1/openapi.json"},
          {"POST", "/v1/enroll"},
          {"POST", "/v1/enroll/{host_id}/activate"},
          {"POST", "/v1/hosts/{host_id}/challenges"},
          {"POST", "/v1/hosts/{host_id}/agent-keys"},
          {"POST", "/v1/attest"},
          {"GET", "/v1/hosts/{host_id}/status"},
          {"POST", "/v1/hosts/{host_id}/shadow-agents"},
          {"GET", "/v1/shadow-agents"},
          {"POST", "/oauth/token"},
          {"POST", "/oauth/introspect"},
          {"POST", "/oauth/revoke"}};
  for (auto& route : AdminRoutes()) routes.push_back(std::move(route));
  return routes;
}

Status VerifierService::Register(http::HttpServer& server) {
  VerifierCore& core = *core_;

  AR_RETURN_IF_ERROR(server.Handle("GET", "/.well-known/oauth-authorization-server",
                                   [&core](const Request&) { return http::JsonResponse(200, core.Metadata()); }));
  AR_RETURN_IF_ERROR(server.Handle("GET", "/.well-known/jwks.json",
                                   [&core](const Request&) { return http::JsonResponse(200, core.Jwks()); }));
  AR_RETURN_IF_ERROR(server.Handle("GET", "/v1/openapi.json", [](const Request&) {
    Response r;
    r.headers.emplace("Content-Type", "application/json");
    r.body = std::string(OpenApiDocument());
    return r;
  }));

  // Enrollment.
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/enroll", Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    EnrollRequest r;
    AR_ASSIGN_OR_RETURN(r.ek_certificate, B64(body, "ek_certificate"));
    AR_ASSIGN_OR_RETURN(r.ek_public, B64(body, "ek_public"));
    AR_ASSIGN_OR_RETURN(r.ak_public, B64(body, "ak_public"));
    AR_ASSIGN_OR_RETURN(r.host_group, Str(body, "host_group"));
    if (body.contains("ek_intermediates_pem")) {
      AR_ASSIGN_OR_RETURN(r.ek_intermediates_pem, Str(body, "ek_intermediates_pem"));
    }
    AR_ASSIGN_OR_RETURN(EnrollChallenge c, core.Enroll(r));
    return Json{{"host_id", c.host_id}, {"activation_id", c.activation_id},
                {"credential_blob", common::Base64UrlEncode(c.credential_blob)},
                {"encrypted_secret", common::Base64UrlEncode(c.encrypted_secret)}, {"expires_at", c.expires_at}};
  })));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/enroll/{host_id}/activate",
                                   Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_ASSIGN_OR_RETURN(std::string activation_id, Str(body, "activation_id"));
    AR_ASSIGN_OR_RETURN(Bytes secret, B64(body, "secret"));
    common::SecretBytes held(secret);
    common::SecureWipe(secret.data(), secret.size());
    AR_ASSIGN_OR_RETURN(ActivationResult a, core.Activate(req.PathParam("host_id"), activation_id, held.Reveal()));
    return Json{{"host_id", a.host_id}, {"status", std::string(store::HostStatusName(a.status))},
                {"reenrolled", a.reenrolled}};
  })));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/hosts/{host_id}/challenges",
                                   Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_ASSIGN_OR_RETURN(std::string purpose, Str(body, "purpose"));
    AR_ASSIGN_OR_RETURN(store::Nonce n, core.Challenge(req.PathParam("host_id"), purpose));
    return Json{{"nonce", n.value}, {"purpose", n.purpose}, {"expires_at", n.expires_at}};
  }, 201)));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/hosts/{host_id}/agent-keys",
                                   Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_ASSIGN_OR_RETURN(std::string agent, Str(body, "agent_id"));
    AR_ASSIGN_OR_RETURN(std::string nonce, Str(body, "nonce"));
    AR_ASSIGN_OR_RETURN(Bytes key, B64(body, "key_public"));
    AR_ASSIGN_OR_RETURN(Bytes attest, B64(body, "certify_attest"));
    AR_ASSIGN_OR_RETURN(Bytes sig, B64(body, "certify_signature"));
    AR_ASSIGN_OR_RETURN(store::AgentKey k, core.RegisterAgentKey(req.PathParam("host_id"), agent, nonce, key, attest, sig));
    return Json{{"thumbprint", k.thumbprint}, {"agent_id", k.agent_id}, {"host_id", k.host_id}};
  }, 201)));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/attest", Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AttestRequest r;
    AR_ASSIGN_OR_RETURN(r.host_id, Str(body, "host_id"));
    AR_ASSIGN_OR_RETURN(r.agent_id, Str(body, "agent_id"));
    AR_ASSIGN_OR_RETURN(r.nonce, Str(body, "nonce"));
    AR_ASSIGN_OR_RETURN(r.agent_key_public, B64(body, "agent_key_public"));
    AR_ASSIGN_OR_RETURN(r.quote_attest, B64(body, "quote_attest"));
    AR_ASSIGN_OR_RETURN(r.quote_signature, B64(body, "quote_signature"));
    AR_ASSIGN_OR_RETURN(r.measurement_log, Str(body, "measurement_log"));
    auto pcrs = body.find("pcr_values");
    if (pcrs == body.end() || !pcrs->is_object() || pcrs->size() > 24) {
      return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "pcr_values must map PCR index to hex");
    }
    for (auto it = pcrs->begin(); it != pcrs->end(); ++it) {
      if (!it.value().is_string() || it.key().empty() || it.key().size() > 2 ||
          !std::all_of(it.key().begin(), it.key().end(), ::isdigit)) {
        return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "bad pcr_values entry");
      }
      auto value = common::HexDecode(it.value().get<std::string>());
      if (!value.ok() || value->size() != 32) {
        return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "PCR values are 32-byte hex");
      }
      r.pcr_values[static_cast<uint32_t>(std::stoul(it.key()))] = std::move(value).value();
    }
    AR_ASSIGN_OR_RETURN(AttestOutcome out, core.Attest(r));
    return Json{{"ear", out.ear}, {"status", std::string(EarStatusName(out.result.status))},
                {"reasons", out.reasons}, {"expires_at", out.result.exp}};
  })));

  // A host's own status (hostd polls it while pending).
  AR_RETURN_IF_ERROR(server.Handle("GET", "/v1/hosts/{host_id}/status",
                                   Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(store::HostStatus status, core.HostStatusOf(req.PathParam("host_id")));
    return Json{{"host_id", std::string(req.PathParam("host_id"))},
                {"status", std::string(store::HostStatusName(status))}};
  })));
  // Shadow agents: reported by hosts (TPM-quoted), listed for operators.
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/hosts/{host_id}/shadow-agents",
                                   Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_ASSIGN_OR_RETURN(std::string nonce, Str(body, "nonce"));
    AR_ASSIGN_OR_RETURN(Bytes attest, B64(body, "quote_attest"));
    AR_ASSIGN_OR_RETURN(Bytes sig, B64(body, "quote_signature"));
    auto report = body.find("report");
    if (report == body.end()) return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "missing \"report\"");
    auto parsed = ShadowReportFromJson(*report);
    if (!parsed.ok()) return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, parsed.status().message());
    AR_RETURN_IF_ERROR(core.ReportShadowAgent(req.PathParam("host_id"), nonce, *parsed, attest, sig));
    return Json{{"recorded", true}};
  }, 201)));
  AR_RETURN_IF_ERROR(server.Handle("GET", "/v1/shadow-agents", Wrap([&core](const Request& req) -> common::Result<Json> {
    AR_ASSIGN_OR_RETURN(std::string op, OperatorOf(core, req));
    std::size_t limit = 100;
    auto query = http::ParseQuery(req.query);
    if (!query.ok()) return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "bad query");
    if (auto it = query->find("limit"); it != query->end()) {
      const std::string& v = it->second;
      if (v.empty() || v.size() > 3 || !std::all_of(v.begin(), v.end(), ::isdigit) || std::stoul(v) < 1 ||
          std::stoul(v) > 500) {
        return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, "limit must be 1-500");
      }
      limit = std::stoul(v);
    }
    AR_ASSIGN_OR_RETURN(Json list, core.ListShadowAgents(op, limit));
    return Json{{"shadow_agents", std::move(list)}};
  })));

  // Governance (operators, mutual TLS): verifier_service_admin.cc.
  AR_RETURN_IF_ERROR(RegisterAdminRoutes(server, core));

  // OAuth.
  AR_RETURN_IF_ERROR(server.Handle("POST", "/oauth/token", [&core](const Request& req) -> Response {
    auto form = Form(req.body);
    if (!form.ok()) return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidRequest, form.status().message()));
    auto get = [&](const char* name) { auto it = form->find(name); return it == form->end() ? std::string() : it->second; };
    if (get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange") {
      return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kUnsupportedGrantType, "use token exchange"));
    }
    if (get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" || get("subject_token").empty()) {
      return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidRequest,
                                           "subject_token (the attestation result, a JWT) is required"));
    }
    std::vector<std::string> proofs;
    for (auto [it, end] = req.headers.equal_range("DPoP"); it != end; ++it) proofs.push_back(it->second);
    if (proofs.size() != 1) {
      return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidDpopProof,
                                           "exactly one DPoP header is required"));
    }
    TokenExchange exchange;
    exchange.subject_token = get("subject_token");
    exchange.dpop_proof = proofs.front();
    exchange.scope = get("scope");
    exchange.audience = get("audience");
    if (std::string ttl = get("requested_ttl"); !ttl.empty()) {
      if (ttl.size() > 9 || !std::all_of(ttl.begin(), ttl.end(), ::isdigit)) {
        return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidRequest, "bad requested_ttl"));
      }
      exchange.requested_ttl = std::stoll(ttl);
    }
    if (form->count("agentroot_session_binding") != 0) exchange.session_binding = get("agentroot_session_binding");
    auto issued = core.Token(exchange);
    if (!issued.ok()) {
      Response r = OAuthErrorResponse(issued.status());
      if (OAuthErrorOf(issued.status()) == oauth_error::kUseDpopNonce) {
        auto nonce = core.IssueDpopNonce();
        if (!nonce.ok()) return OAuthErrorResponse(nonce.status());
        r.headers.emplace("DPoP-Nonce", *nonce);
      }
      return r;
    }
    Response r = http::JsonResponse(200, Json{{"access_token", issued->access_token}, {"token_type", "DPoP"},
                                              {"expires_in", issued->expires_in}, {"scope", issued->scope},
                                              {"issued_token_type", "urn:ietf:params:oauth:token-type:access_token"}});
    r.headers.emplace("Cache-Control", "no-store");
    if (core.config().require_dpop_nonce) {
      // The nonce for the client's next request (RFC 9449 §8.2).
      if (auto nonce = core.IssueDpopNonce(); nonce.ok()) r.headers.emplace("DPoP-Nonce", *nonce);
    }
    return r;
  }));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/oauth/introspect", [&core](const Request& req) -> Response {
    auto form = Form(req.body);
    if (!form.ok() || form->count("token") == 0) {
      return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidRequest, "token is required"));
    }
    return http::JsonResponse(200, core.Introspect(form->at("token")));
  }));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/oauth/revoke", [&core](const Request& req) -> Response {
    auto form = Form(req.body);
    if (!form.ok() || form->count("token") == 0) {
      return OAuthErrorResponse(OAuthError(StatusCode::kInvalidArgument, oauth_error::kInvalidRequest, "token is required"));
    }
    // Whoever holds a token may revoke it (RFC 7009); the audit records it.
    Status revoked = core.Revoke(form->at("token"), "token-holder");
    if (!revoked.ok()) return OAuthErrorResponse(revoked);
    return http::JsonResponse(200, Json::object());
  }));
  return Status::Ok();
}

}  // namespace agentroot::attestation
