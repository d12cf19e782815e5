#include "agentroot/simulators/resource_demo.h"

#include <algorithm>
#include <utility>

#include "agentroot/attestation/dpop.h"
#include "agentroot/http/http.h"

namespace agentroot::simulators {
namespace {

using common::Json;

constexpr std::size_t kReplayCapacity = 100000;
constexpr std::size_t kMaxContacts = 10000;
constexpr std::size_t kMaxFieldLength = 200;

// RFC 9449 §7.1: the algorithms a proof may use.
constexpr char kProofAlgs[] = "ES256 PS256 RS256";

Json SeedAccounts() {
  return Json::array({
      {{"id", "acc-001"}, {"name", "Northwind Traders"}, {"industry", "wholesale"}, {"owner", "sales-emea"}},
      {{"id", "acc-002"}, {"name", "Contoso Health"}, {"industry", "healthcare"}, {"owner", "sales-na"}},
      {{"id", "acc-003"}, {"name", "Fabrikam Energy"}, {"industry", "utilities"}, {"owner", "sales-apac"}},
  });
}

// A quoted-string parameter value (RFC 9110 §5.6.4) from free text.
std::string Quoted(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out.push_back(c);
  }
  return out;
}

// 401/403 as RFC 9449 §7.1 and RFC 6750 §3 describe, with a problem body.
http::Response Refusal(const common::Status& status, std::string_view required_scope) {
  const std::string_view error = attestation::OAuthErrorOf(status);
  const bool scope = error == attestation::oauth_error::kInsufficientScope;
  std::string detail = status.message();
  if (detail.compare(0, error.size(), error) == 0) {
    detail.erase(0, error.size());
    detail.erase(0, detail.find_first_not_of(": "));
  }
  http::Response response = http::ProblemResponse(scope ? 403 : 401,
                                                  "urn:agentroot:problem:resource:" + std::string(error),
                                                  scope ? "Forbidden" : "Unauthorized", detail);
  std::string challenge = "DPoP error=\"" + std::string(error) + "\", error_description=\"" + Quoted(detail) + "\"";
  if (scope) challenge += ", scope=\"" + std::string(required_scope) + "\"";
  challenge += ", algs=\"" + std::string(kProofAlgs) + "\"";
  response.headers.emplace("WWW-Authenticate", std::move(challenge));
  return response;
}

}  // namespace

common::Result<std::unique_ptr<ResourceDemo>> ResourceDemo::Create(ResourceDemoOptions options,
                                                                   const common::Clock& clock) {
  if (options.audience.empty() || options.issuer.empty() || options.public_url.empty()) {
    return common::InvalidArgumentError("resource demo: audience, issuer and public_url are required");
  }
  if (options.public_url.back() == '/') options.public_url.pop_back();
  if (options.jwks == nullptr) return common::InvalidArgumentError("resource demo: a JWKS cache is required");
  if (options.replay == nullptr) {
    options.replay = std::make_shared<attestation::InMemoryReplayCache>(kReplayCapacity, clock);
  }
  attestation::AccessTokenPolicy policy;
  policy.issuer = options.issuer;
  policy.audience = options.audience;
  policy.is_revoked = options.is_revoked;
  AR_ASSIGN_OR_RETURN(auto validator,
                      attestation::AccessTokenValidator::Create(policy, options.jwks, options.replay, &clock));
  return std::unique_ptr<ResourceDemo>(new ResourceDemo(std::move(options), std::move(validator)));
}

ResourceDemo::ResourceDemo(ResourceDemoOptions options,
                           std::unique_ptr<attestation::AccessTokenValidator> validator)
    : options_(std::move(options)), validator_(std::move(validator)), accounts_(SeedAccounts()) {
  contacts_ = {{"con-001", "Ana Ruiz", "ana.ruiz@northwind.example", "acc-001"},
               {"con-002", "Wei Chen", "wei.chen@contoso.example", "acc-002"}};
}

ResourceDemoCounters ResourceDemo::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

http::HttpServer::Handler ResourceDemo::Guard(std::string scope, Endpoint endpoint) {
  return [this, scope = std::move(scope), endpoint = std::move(endpoint)](const http::Request& request) {
    std::vector<std::string> proofs;
    auto [first, last] = request.headers.equal_range("DPoP");
    for (auto it = first; it != last; ++it) proofs.push_back(it->second);
    const std::string authorization(request.Header("Authorization").value_or(""));
    auto authorized = validator_->Validate(authorization, proofs, request.method,
                                           options_.public_url + request.path, scope);
    Json decision = {{"method", request.method}, {"path", request.path}, {"scope", scope},
                     {"allowed", authorized.ok()}};
    http::Response response;
    if (authorized.ok()) {
      decision["sub"] = authorized->subject;
      decision["jti"] = authorized->jti;
      decision["jkt"] = authorized->jkt;
      response = endpoint(request, *authorized);
    } else {
      decision["error"] = std::string(attestation::OAuthErrorOf(authorized.status()));
      decision["detail"] = authorized.status().message();
      response = Refusal(authorized.status(), scope);
    }
    decision["status"] = response.status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++(authorized.ok() ? counters_.allowed : counters_.refused);
    }
    if (options_.on_decision) options_.on_decision(decision);
    response.headers.emplace("Cache-Control", "no-store");
    return response;
  };
}

http::Response ResourceDemo::Accounts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return http::JsonResponse(200, {{"accounts", accounts_}});
}

http::Response ResourceDemo::Account(std::string_view id) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Json& account : accounts_) {
    if (account["id"] == id) return http::JsonResponse(200, account);
  }
  return http::ProblemResponse(404, http::kProblemNotFound, "Not Found", "no such account");
}

http::Response ResourceDemo::Contacts() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json list = Json::array();
  for (const Contact& c : contacts_) {
    list.push_back({{"id", c.id}, {"name", c.name}, {"email", c.email}, {"account_id", c.account_id}});
  }
  return http::JsonResponse(200, {{"contacts", list}});
}

http::Response ResourceDemo::AddContact(const http::Request& request, const attestation::AuthorizedRequest& who) {
  auto body = common::ParseJsonStrict(request.body);
  if (!body.ok() || !body->is_object()) {
    return http::ProblemResponse(400, http::kProblemBadRequest, "Bad Request", "the body must be a JSON object");
  }
  Contact contact;
  for (auto [field, out] : {std::pair{"name", &contact.name}, std::pair{"email", &contact.email},
                            std::pair{"account_id", &contact.account_id}}) {
    auto value = common::GetString(*body, field);
    if (!value.ok() || value->empty() || value->size() > kMaxFieldLength) {
      return http::ProblemResponse(400, http::kProblemBadRequest, "Bad Request",
                                   std::string(field) + " must be a string of 1 to 200 characters");
    }
    *out = *value;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (std::none_of(accounts_.begin(), accounts_.end(),
                   [&](const Json& a) { return a["id"] == contact.account_id; })) {
    return http::ProblemResponse(422, "urn:agentroot:problem:resource:unknown-account", "Unprocessable Content",
                                 "no such account");
  }
  if (contacts_.size() >= kMaxContacts) {
    return http::ProblemResponse(507, "urn:agentroot:problem:resource:full", "Insufficient Storage",
                                 "the demo keeps at most 10000 contacts");
  }
  contact.id = "con-" + std::to_string(contacts_.size() + 1);
  contacts_.push_back(contact);
  return http::JsonResponse(201, {{"id", contact.id}, {"name", contact.name}, {"email", contact.email},
                                  {"account_id", contact.account_id}, {"created_by", who.subject}});
}

http::Response ResourceDemo::Export() const {
  std::lock_guard<std::mutex> lock(mu_);
  Json contacts = Json::array();
  for (const Contact& c : contacts_) {
    contacts.push_back({{"id", c.id}, {"name", c.name}, {"email", c.email}, {"account_id", c.account_id}});
  }
  return http::JsonResponse(200, {{"accounts", accounts_}, {"contacts", contacts}});
}

common::Status ResourceDemo::Register(http::HttpServer& server) {
  AR_RETURN_IF_ERROR(server.Handle("GET", "/healthz", [](const http::Request&) {
    return http::JsonResponse(200, {{"status", "ok"}});
  }));
  AR_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/accounts", Guard("crm.read", [this](const auto&, const auto&) { return Accounts(); })));
  AR_RETURN_IF_ERROR(server.Handle("GET", "/v1/accounts/{id}", Guard("crm.read", [this](const auto& r, const auto&) {
                                     return Account(r.PathParam("id"));
                                   })));
  AR_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/contacts", Guard("crm.read", [this](const auto&, const auto&) { return Contacts(); })));
  AR_RETURN_IF_ERROR(server.Handle("POST", "/v1/contacts", Guard("crm.write", [this](const auto& r, const auto& who) {
                                     return AddContact(r, who);
                                   })));
  AR_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/export", Guard("crm.export", [this](const auto&, const auto&) { return Export(); })));
  return common::Status::Ok();
}

}  // namespace agentroot::simulators
