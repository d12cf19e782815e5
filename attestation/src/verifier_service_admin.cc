// VerifierService: the operators' admin API (docs/cli.md, the OpenAPI
// document): operators, trust anchors, hosts, agents, reviews, just-in-time
// elevation, revocation, audit export and the inventory. Every route needs an
// operator client certificate (mutual TLS); VerifierCore authorizes and
// audits each call.
#include <algorithm>
#include <map>
#include <optional>

#include "agentroot/attestation/measurement.h"
#include "verifier_internal.h"
#include "verifier_service_internal.h"

namespace agentroot::attestation::service_internal {
namespace {

using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;
using http::Request;
using http::Response;

Status BadInput(std::string_view detail) {
  return OAuthError(StatusCode::kInvalidArgument, problem::kInvalidInput, detail);
}

// Optional typed members of a JSON body; a member of the wrong type is an
// error, never ignored.
Result<std::optional<std::vector<std::string>>> StrList(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return std::optional<std::vector<std::string>>();
  if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const Json& v) { return v.is_string(); })) {
    return BadInput(std::string("\"") + name + "\" must be an array of strings");
  }
  return std::optional<std::vector<std::string>>(it->get<std::vector<std::string>>());
}

Result<std::optional<int64_t>> Int(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return std::optional<int64_t>();
  if (!it->is_number_integer()) return BadInput(std::string("\"") + name + "\" must be an integer");
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::optional<std::string>> OptStr(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return std::optional<std::string>();
  if (!it->is_string()) return BadInput(std::string("\"") + name + "\" must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

// Refuses members the route does not know (a typo must not be ignored).
Status OnlyMembers(const Json& body, std::initializer_list<std::string_view> allowed) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      return BadInput("unknown member \"" + it.key() + "\"");
    }
  }
  return Status::Ok();
}

Result<int64_t> QueryInt(const std::multimap<std::string, std::string>& query, const char* name, int64_t fallback) {
  if (query.count(name) > 1) return BadInput(std::string(name) + " given twice");
  auto it = query.find(name);
  if (it == query.end()) return fallback;
  const std::string& v = it->second;
  if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), ::isdigit)) {
    return BadInput(std::string(name) + " must be a non-negative integer");
  }
  return std::stoll(v);
}

Result<std::vector<store::Role>> ParseRoles(const std::vector<std::string>& names) {
  std::vector<store::Role> roles;
  for (const std::string& r : names) {
    auto role = store::ParseRole(r);
    if (!role.ok()) return BadInput("unknown role \"" + r + "\" (infra, owner, reviewer, auditor)");
    if (std::find(roles.begin(), roles.end(), *role) == roles.end()) roles.push_back(*role);
  }
  return roles;
}

Json OperatorJson(const store::Operator& op) {
  Json roles = Json::array();
  for (store::Role r : op.roles) roles.push_back(std::string(store::RoleName(r)));
  return Json{{"id", op.id}, {"display_name", op.display_name}, {"roles", roles},
              {"status", op.status == store::OperatorStatus::kActive ? "active" : "disabled"},
              {"certificate_sha256", op.client_cert_fingerprint}, {"created_at", op.created_at}};
}

Json AgentJson(const store::Agent& a, const std::vector<store::Manifest>& manifests) {
  return Json{{"id", a.id}, {"name", a.name}, {"host_id", a.host_id}, {"host_group", a.host_group},
              {"scopes", a.allowed_scopes}, {"audiences", a.allowed_audiences},
              {"max_token_ttl", a.max_token_ttl_seconds}, {"expires_at", a.expires_at},
              {"status", std::string(store::AgentStatusName(a.status))}, {"owners", a.owners},
              {"created_at", a.created_at}, {"updated_at", a.updated_at},
              {"review", internal::ReviewSummary(manifests)}};
}

Json ManifestJson(const store::Manifest& m) {
  return Json{{"version", m.version}, {"status", std::string(store::ManifestStatusName(m.status))},
              {"reviewer", m.reviewer_id}, {"reviewed_at", m.reviewed_at}, {"comment", m.comment},
              {"created_at", m.created_at}, {"content", m.content}};
}

Json GrantJson(const VerifierCore& core, const store::JitGrant& g) {
  return Json{{"id", g.id}, {"agent_id", g.agent_id}, {"scopes", g.scopes}, {"reason", g.reason},
              {"duration_seconds", g.duration_seconds}, {"requested_by", g.requested_by},
              {"requested_at", g.requested_at}, {"status", std::string(store::JitStatusName(g.status))},
              {"state", core.JitState(g)}, {"decided_by", g.decided_by}, {"decided_at", g.decided_at},
              {"comment", g.comment}, {"expires_at", g.expires_at}};
}

Json HostJson(const HostInfo& h) {
  return Json{{"id", h.host.id}, {"host_group", h.host.host_group},
              {"status", std::string(store::HostStatusName(h.host.status))},
              {"ek_sha256", common::HexEncode(h.host.ek_public_sha256)},
              {"ek_certificate_subject", h.ek_certificate_subject}, {"ek_certificate_issuer", h.ek_certificate_issuer},
              {"enrolled_at", h.host.enrolled_at}, {"approved_by", h.host.approved_by},
              {"approved_at", h.host.approved_at}, {"revoked_at", h.host.revoked_at},
              {"last_attested_at", h.last_attested_at}};
}

Json AnchorJson(const TrustAnchorInfo& t) {
  Json j = {{"id", t.anchor.id}, {"kind", std::string(store::TrustAnchorKindName(t.anchor.kind))},
            {"host_group", t.anchor.host_group}, {"description", t.anchor.description},
            {"created_by", t.anchor.created_by}, {"created_at", t.anchor.created_at}, {"source", t.source}};
  if (t.anchor.kind == store::TrustAnchorKind::kManufacturerCa) {
    j["subject"] = t.subject;
    j["not_after"] = t.not_after;
  }
  if (t.anchor.kind == store::TrustAnchorKind::kEkPin) j["ek_sha256"] = t.anchor.value;
  return j;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> AdminRoutes() {
  return {{"GET", "/v1/whoami"},
          {"GET", "/v1/operators"},
          {"POST", "/v1/operators"},
          {"POST", "/v1/operators/{id}/certificate"},
          {"POST", "/v1/operators/{id}/certificate/revoke"},
          {"POST", "/v1/operators/{id}/disable"},
          {"POST", "/v1/operators/{id}/enable"},
          {"POST", "/v1/operators/{id}/roles"},
          {"GET", "/v1/trust-anchors"},
          {"POST", "/v1/trust-anchors"},
          {"POST", "/v1/trust-anchors/{id}/remove"},
          {"GET", "/v1/hosts"},
          {"POST", "/v1/hosts/{host_id}/approve"},
          {"POST", "/v1/hosts/{host_id}/revoke"},
          {"GET", "/v1/agents"},
          {"POST", "/v1/agents"},
          {"GET", "/v1/agents/{name}"},
          {"POST", "/v1/agents/{name}/update"},
          {"POST", "/v1/agents/{name}/suspend"},
          {"POST", "/v1/agents/{name}/resume"},
          {"POST", "/v1/agents/{name}/retire"},
          {"POST", "/v1/agents/{name}/manifests"},
          {"POST", "/v1/agents/{name}/manifests/{version}/review"},
          {"GET", "/v1/reviews"},
          {"POST", "/v1/agents/{name}/jit-grants"},
          {"GET", "/v1/jit-grants"},
          {"POST", "/v1/jit-grants/{id}/approve"},
          {"POST", "/v1/jit-grants/{id}/reject"},
          {"POST", "/v1/jit-grants/{id}/revoke"},
          {"POST", "/v1/revocations"},
          {"GET", "/v1/audit"},
          {"GET", "/v1/inventory"}};
}

Status RegisterAdminRoutes(http::HttpServer& server, VerifierCore& core) {
  auto agent_id = [&core](std::string_view name) { return core.AgentIdFor(name); };
  // A route for operators: the handler gets the authenticated operator id.
  auto admin = [&server, &core](const char* method, const char* path,
                                std::function<Result<Json>(const std::string&, const Request&)> handler,
                                int ok_status = 200) {
    return server.Handle(method, path, Wrap([&core, handler = std::move(handler)](const Request& req) -> Result<Json> {
      AR_ASSIGN_OR_RETURN(std::string op, OperatorOf(core, req));
      return handler(op, req);
    }, ok_status));
  };

  // ---- Operators.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/whoami", [&core](const std::string& op, const Request&) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(store::Operator me, core.Whoami(op));
    Json j = OperatorJson(me);
    j.erase("certificate_sha256");
    return j;
  }));
  AR_RETURN_IF_ERROR(admin("GET", "/v1/operators", [&core](const std::string& op, const Request&) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(auto operators, core.ListOperators(op));
    Json list = Json::array();
    for (const auto& o : operators) list.push_back(OperatorJson(o));
    return Json{{"operators", list}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators", [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"id", "display_name", "roles", "certificate_pem"}));
    store::Operator o;
    AR_ASSIGN_OR_RETURN(o.id, Str(body, "id"));
    AR_ASSIGN_OR_RETURN(o.display_name, Str(body, "display_name"));
    AR_ASSIGN_OR_RETURN(std::string pem, Str(body, "certificate_pem"));
    AR_ASSIGN_OR_RETURN(auto roles, StrList(body, "roles"));
    if (!roles || roles->empty()) return BadInput("\"roles\": at least one of infra, owner, reviewer, auditor");
    AR_ASSIGN_OR_RETURN(o.roles, ParseRoles(*roles));
    AR_ASSIGN_OR_RETURN(store::Operator added, core.AddOperator(op, o, pem));
    return Json{{"id", added.id}, {"certificate_sha256", added.client_cert_fingerprint}};
  }, 201));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators/{id}/certificate",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"certificate_pem"}));
    AR_ASSIGN_OR_RETURN(std::string pem, Str(body, "certificate_pem"));
    if (pem.empty()) return BadInput("certificate_pem is empty (to revoke, use .../certificate/revoke)");
    AR_ASSIGN_OR_RETURN(std::string fingerprint, core.SetOperatorCertificate(op, req.PathParam("id"), pem));
    return Json{{"id", std::string(req.PathParam("id"))}, {"certificate_sha256", fingerprint}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators/{id}/certificate/revoke",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_RETURN_IF_ERROR(core.SetOperatorCertificate(op, req.PathParam("id"), "").status());
    return Json{{"id", std::string(req.PathParam("id"))}, {"certificate_revoked", true}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators/{id}/disable",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(std::vector<std::string> suspended, core.DisableOperator(op, req.PathParam("id")));
    return Json{{"id", std::string(req.PathParam("id"))}, {"status", "disabled"}, {"suspended_agents", suspended}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators/{id}/enable",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_RETURN_IF_ERROR(core.EnableOperator(op, req.PathParam("id")));
    return Json{{"id", std::string(req.PathParam("id"))}, {"status", "active"}};
  }));

  AR_RETURN_IF_ERROR(admin("POST", "/v1/operators/{id}/roles",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"roles"}));
    AR_ASSIGN_OR_RETURN(auto names, StrList(body, "roles"));
    if (!names || names->empty()) return BadInput("\"roles\": at least one of infra, owner, reviewer, auditor");
    AR_ASSIGN_OR_RETURN(std::vector<store::Role> roles, ParseRoles(*names));
    AR_ASSIGN_OR_RETURN(store::Operator changed, core.SetOperatorRoles(op, req.PathParam("id"), std::move(roles)));
    return OperatorJson(changed);
  }));

  // ---- Trust anchors.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/trust-anchors", [&core](const std::string& op, const Request&) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(auto anchors, core.ListTrustAnchors(op));
    Json list = Json::array();
    for (const auto& a : anchors) list.push_back(AnchorJson(a));
    return Json{{"trust_anchors", list}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/trust-anchors", [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"kind", "certificate_pem", "ek_sha256", "host_group", "description"}));
    AR_ASSIGN_OR_RETURN(std::string kind, Str(body, "kind"));
    auto parsed = store::ParseTrustAnchorKind(kind);
    if (!parsed.ok()) return BadInput("kind: manufacturer_ca, ek_pin or auto_approve");
    store::TrustAnchor anchor;
    anchor.kind = *parsed;
    AR_ASSIGN_OR_RETURN(auto description, OptStr(body, "description"));
    AR_ASSIGN_OR_RETURN(auto group, OptStr(body, "host_group"));
    anchor.description = description.value_or("");
    anchor.host_group = group.value_or("");
    switch (anchor.kind) {
      case store::TrustAnchorKind::kManufacturerCa: {
        if (group) return BadInput("a manufacturer CA is not per host group");
        AR_ASSIGN_OR_RETURN(anchor.value, Str(body, "certificate_pem"));
        break;
      }
      case store::TrustAnchorKind::kEkPin: {
        AR_ASSIGN_OR_RETURN(anchor.value, Str(body, "ek_sha256"));
        break;
      }
      case store::TrustAnchorKind::kAutoApprove:
        if (!group) return BadInput("auto_approve needs \"host_group\"");
        break;
    }
    AR_ASSIGN_OR_RETURN(store::TrustAnchor added, core.AddTrustAnchor(op, anchor));
    return Json{{"id", added.id}, {"kind", kind}};
  }, 201));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/trust-anchors/{id}/remove",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_RETURN_IF_ERROR(core.RemoveTrustAnchor(op, req.PathParam("id")));
    return Json{{"id", std::string(req.PathParam("id"))}, {"removed", true}};
  }));

  // ---- Hosts.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/hosts", [&core](const std::string& op, const Request& req) -> Result<Json> {
    auto query = http::ParseQuery(req.query);
    if (!query.ok()) return BadInput("bad query");
    std::optional<store::HostStatus> status;
    if (auto it = query->find("status"); it != query->end()) {
      if (it->second == "pending") status = store::HostStatus::kPending;
      else if (it->second == "approved") status = store::HostStatus::kApproved;
      else if (it->second == "revoked") status = store::HostStatus::kRevoked;
      else return BadInput("status: pending, approved or revoked");
    }
    AR_ASSIGN_OR_RETURN(auto hosts, core.ListHosts(op, status));
    Json list = Json::array();
    for (const auto& h : hosts) list.push_back(HostJson(h));
    return Json{{"hosts", list}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/hosts/{host_id}/approve",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_RETURN_IF_ERROR(core.ApproveHost(op, req.PathParam("host_id")));
    return Json{{"host_id", std::string(req.PathParam("host_id"))}, {"status", "approved"}};
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/hosts/{host_id}/revoke",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_RETURN_IF_ERROR(core.RevokeHost(op, req.PathParam("host_id")));
    return Json{{"host_id", std::string(req.PathParam("host_id"))}, {"status", "revoked"}};
  }));

  // ---- Agents.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/agents", [&core](const std::string& op, const Request&) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(auto agents, core.ListAgents(op));
    AR_ASSIGN_OR_RETURN(auto manifests, core.ManifestsByAgent(op));
    Json list = Json::array();
    for (const auto& a : agents) list.push_back(AgentJson(a, manifests[a.id]));
    return Json{{"agents", list}};
  }));
  AR_RETURN_IF_ERROR(admin("GET", "/v1/agents/{name}", [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    const std::string id = agent_id(req.PathParam("name"));
    AR_ASSIGN_OR_RETURN(store::Agent a, core.GetAgent(op, id));
    AR_ASSIGN_OR_RETURN(auto manifests, core.ListManifests(op, id));
    AR_ASSIGN_OR_RETURN(auto grants, core.ListJit(op, id));
    Json j = AgentJson(a, manifests);
    j["manifests"] = Json::array();
    for (const auto& m : manifests) j["manifests"].push_back(ManifestJson(m));
    j["jit_grants"] = Json::array();
    for (const auto& g : grants) j["jit_grants"].push_back(GrantJson(core, g));
    return j;
  }));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/agents", [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"name", "owners", "host_id", "host_group", "scopes", "audiences",
                                          "max_token_ttl", "expires_at", "manifest"}));
    store::Agent a;
    AR_ASSIGN_OR_RETURN(a.name, Str(body, "name"));
    a.id = agent_id(a.name);
    AR_ASSIGN_OR_RETURN(auto host_id, OptStr(body, "host_id"));
    AR_ASSIGN_OR_RETURN(auto host_group, OptStr(body, "host_group"));
    AR_ASSIGN_OR_RETURN(auto scopes, StrList(body, "scopes"));
    AR_ASSIGN_OR_RETURN(auto audiences, StrList(body, "audiences"));
    AR_ASSIGN_OR_RETURN(auto owners, StrList(body, "owners"));
    AR_ASSIGN_OR_RETURN(auto ttl, Int(body, "max_token_ttl"));
    AR_ASSIGN_OR_RETURN(auto expires, Int(body, "expires_at"));
    if (!scopes || !audiences || !owners || !expires || host_id.has_value() == host_group.has_value()) {
      return BadInput("agent needs name, owners, scopes, audiences, expires_at and one of host_id, host_group");
    }
    a.host_id = host_id.value_or("");
    a.host_group = host_group.value_or("");
    a.allowed_scopes = *scopes;
    a.allowed_audiences = *audiences;
    a.owners = *owners;
    a.max_token_ttl_seconds = ttl.value_or(300);
    a.expires_at = *expires;
    // The manifest is checked before anything is written.
    auto manifest = body.find("manifest");
    if (manifest != body.end()) {
      if (auto digests = ParseManifestDigests(*manifest); !digests.ok()) return BadInput(digests.status().message());
    }
    AR_RETURN_IF_ERROR(core.CreateAgent(op, a));
    int64_t version = 0;
    if (manifest != body.end()) {
      AR_ASSIGN_OR_RETURN(version, core.AddManifest(op, a.id, *manifest));
    }
    return Json{{"id", a.id}, {"manifest_version", version}};
  }, 201));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/agents/{name}/update",
                           [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"owners", "host_id", "host_group", "scopes", "audiences", "max_token_ttl",
                                          "expires_at"}));
    AgentUpdate u;
    AR_ASSIGN_OR_RETURN(u.owners, StrList(body, "owners"));
    AR_ASSIGN_OR_RETURN(u.host_id, OptStr(body, "host_id"));
    AR_ASSIGN_OR_RETURN(u.host_group, OptStr(body, "host_group"));
    AR_ASSIGN_OR_RETURN(u.scopes, StrList(body, "scopes"));
    AR_ASSIGN_OR_RETURN(u.audiences, StrList(body, "audiences"));
    AR_ASSIGN_OR_RETURN(u.max_token_ttl, Int(body, "max_token_ttl"));
    AR_ASSIGN_OR_RETURN(u.expires_at, Int(body, "expires_at"));
    const std::string id = agent_id(req.PathParam("name"));
    AR_ASSIGN_OR_RETURN(store::Agent a, core.UpdateAgent(op, id, u));
    AR_ASSIGN_OR_RETURN(auto manifests, core.ListManifests(op, id));
    return AgentJson(a, manifests);
  }));
  for (auto [path, status] : {std::pair{"/v1/agents/{name}/suspend", store::AgentStatus::kSuspended},
                              std::pair{"/v1/agents/{name}/resume", store::AgentStatus::kActive},
                              std::pair{"/v1/agents/{name}/retire", store::AgentStatus::kRetired}}) {
    AR_RETURN_IF_ERROR(admin("POST", path, [&core, agent_id, status = status](const std::string& op,
                                                                               const Request& req) -> Result<Json> {
      AR_ASSIGN_OR_RETURN(Json body, Body(req));
      AR_RETURN_IF_ERROR(OnlyMembers(body, {"reason"}));
      AR_ASSIGN_OR_RETURN(auto reason, OptStr(body, "reason"));
      AR_ASSIGN_OR_RETURN(store::Agent a, core.SetAgentStatus(op, agent_id(req.PathParam("name")), status,
                                                              reason.value_or("")));
      return Json{{"id", a.id}, {"status", std::string(store::AgentStatusName(a.status))}};
    }));
  }
  AR_RETURN_IF_ERROR(admin("POST", "/v1/agents/{name}/manifests",
                           [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_ASSIGN_OR_RETURN(int64_t version, core.AddManifest(op, agent_id(req.PathParam("name")), body));
    return Json{{"version", version}, {"status", "pending"}};
  }, 201));
  AR_RETURN_IF_ERROR(admin("POST", "/v1/agents/{name}/manifests/{version}/review",
                           [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"approve", "comment"}));
    auto approve = body.find("approve");
    std::string_view version_text = req.PathParam("version");
    if (approve == body.end() || !approve->is_boolean() || version_text.empty() || version_text.size() > 9 ||
        !std::all_of(version_text.begin(), version_text.end(), ::isdigit)) {
      return BadInput("needs a numeric version and approve: bool");
    }
    AR_ASSIGN_OR_RETURN(auto comment, OptStr(body, "comment"));
    AR_RETURN_IF_ERROR(core.ReviewManifest(op, agent_id(req.PathParam("name")), std::stoll(std::string(version_text)),
                                           approve->get<bool>(), comment.value_or("")));
    return Json{{"status", approve->get<bool>() ? "approved" : "rejected"}};
  }));

  // ---- Reviews.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/reviews", [&core](const std::string& op, const Request&) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(auto pending, core.PendingReviews(op));
    AR_ASSIGN_OR_RETURN(auto agents, core.ListAgents(op));
    std::map<std::string, const store::Agent*> by_id;
    for (const auto& a : agents) by_id[a.id] = &a;
    Json list = Json::array();
    for (const auto& m : pending) {
      auto agent = by_id.find(m.agent_id);
      const bool known = agent != by_id.end();
      list.push_back(Json{{"agent_id", m.agent_id}, {"agent_name", known ? agent->second->name : ""},
                          {"version", m.version}, {"created_at", m.created_at},
                          {"owners", known ? Json(agent->second->owners) : Json::array()}, {"content", m.content}});
    }
    return Json{{"reviews", list}};
  }));

  // ---- Just-in-time elevation.
  AR_RETURN_IF_ERROR(admin("POST", "/v1/agents/{name}/jit-grants",
                           [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    AR_RETURN_IF_ERROR(OnlyMembers(body, {"scopes", "duration_seconds", "reason"}));
    AR_ASSIGN_OR_RETURN(auto scopes, StrList(body, "scopes"));
    AR_ASSIGN_OR_RETURN(auto duration, Int(body, "duration_seconds"));
    AR_ASSIGN_OR_RETURN(std::string reason, Str(body, "reason"));
    if (!scopes || !duration) return BadInput("needs scopes, duration_seconds and reason");
    AR_ASSIGN_OR_RETURN(store::JitGrant g,
                        core.RequestJit(op, agent_id(req.PathParam("name")), *scopes, *duration, reason));
    return GrantJson(core, g);
  }, 201));
  AR_RETURN_IF_ERROR(admin("GET", "/v1/jit-grants", [&core, agent_id](const std::string& op, const Request& req) -> Result<Json> {
    auto query = http::ParseQuery(req.query);
    if (!query.ok()) return BadInput("bad query");
    std::string agent;
    if (auto it = query->find("agent"); it != query->end()) agent = agent_id(it->second);
    AR_ASSIGN_OR_RETURN(auto grants, core.ListJit(op, agent));
    Json list = Json::array();
    for (const auto& g : grants) list.push_back(GrantJson(core, g));
    return Json{{"jit_grants", list}};
  }));
  for (auto [path, approve] : {std::pair{"/v1/jit-grants/{id}/approve", true},
                               std::pair{"/v1/jit-grants/{id}/reject", false}}) {
    AR_RETURN_IF_ERROR(admin("POST", path, [&core, approve = approve](const std::string& op,
                                                                     const Request& req) -> Result<Json> {
      AR_ASSIGN_OR_RETURN(Json body, Body(req));
      AR_RETURN_IF_ERROR(OnlyMembers(body, {"comment"}));
      AR_ASSIGN_OR_RETURN(auto comment, OptStr(body, "comment"));
      AR_ASSIGN_OR_RETURN(store::JitGrant g, core.DecideJit(op, req.PathParam("id"), approve, comment.value_or("")));
      return GrantJson(core, g);
    }));
  }
  AR_RETURN_IF_ERROR(admin("POST", "/v1/jit-grants/{id}/revoke",
                           [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(store::JitGrant g, core.RevokeJit(op, req.PathParam("id")));
    return GrantJson(core, g);
  }));

  // ---- Revocation.
  AR_RETURN_IF_ERROR(admin("POST", "/v1/revocations", [&core](const std::string& op, const Request& req) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(Json body, Body(req));
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (!it.value().is_string() || (it.key() != "jti" && it.key() != "agent_id" && it.key() != "host_id")) {
        return BadInput("body: one of jti, agent_id, host_id (strings)");
      }
    }
    AR_ASSIGN_OR_RETURN(int64_t revoked, core.RevokeByOperator(op, body.value("jti", ""), body.value("agent_id", ""),
                                                               body.value("host_id", "")));
    return Json{{"revoked", revoked}};
  }));

  // ---- Audit (JSON lines, not JSON).
  AR_RETURN_IF_ERROR(server.Handle("GET", "/v1/audit", [&core](const Request& req) -> Response {
    auto op = OperatorOf(core, req);
    if (!op.ok()) return Problem(op.status());
    auto query = http::ParseQuery(req.query);
    if (!query.ok()) return Problem(BadInput("bad query"));
    auto from = QueryInt(*query, "from", 0);
    auto to = QueryInt(*query, "to", INT64_MAX);
    if (!from.ok()) return Problem(from.status());
    if (!to.ok()) return Problem(to.status());
    auto exported = core.ExportAudit(*op, *from, *to);
    if (!exported.ok()) return Problem(exported.status());
    Response r;
    r.headers.emplace("Content-Type", "application/jsonl");
    r.headers.emplace("X-Audit-Anchor-Seq", std::to_string(exported->anchor.seq));
    r.headers.emplace("X-Audit-Anchor-Hash", common::HexEncode(exported->anchor.hash));
    r.body = exported->jsonl;
    return r;
  }));

  // ---- Inventory.
  AR_RETURN_IF_ERROR(admin("GET", "/v1/inventory", [&core](const std::string& op, const Request& req) -> Result<Json> {
    auto query = http::ParseQuery(req.query);
    if (!query.ok()) return BadInput("bad query");
    InventoryOptions options;
    AR_ASSIGN_OR_RETURN(options.expiring_days, QueryInt(*query, "expiring_days", options.expiring_days));
    AR_ASSIGN_OR_RETURN(options.unused_days, QueryInt(*query, "unused_days", options.unused_days));
    AR_ASSIGN_OR_RETURN(options.usage_days, QueryInt(*query, "usage_days", options.usage_days));
    return core.Inventory(op, options);
  }));
  return Status::Ok();
}

}  // namespace agentroot::attestation::service_internal
