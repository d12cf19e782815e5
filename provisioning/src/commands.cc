#include "agentroot/provisioning/commands.h"

#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/signer.h"
#include "agentroot/provisioning/cli_support.h"
#include "agentroot/provisioning/operator_ca.h"

namespace agentroot::provisioning {
namespace {

using attestation::store::AuditAnchor;
using common::InvalidArgumentError;
using common::Json;
using common::Result;
using common::Status;

Status RequireNonEmpty(const std::string& value, const char* what) {
  if (value.empty()) return InvalidArgumentError(std::string(what) + " must not be empty");
  return Status::Ok();
}

Status CheckRoles(const std::vector<std::string>& roles) {
  static const std::set<std::string, std::less<>> kRoles = {"infra", "owner", "reviewer", "auditor"};
  if (roles.empty()) return InvalidArgumentError("give at least one --role (infra, owner, reviewer, auditor)");
  for (const auto& r : roles) {
    if (!kRoles.contains(r)) {
      return InvalidArgumentError("unknown role '" + OneLine(r) + "' (infra, owner, reviewer, auditor)");
    }
  }
  return Status::Ok();
}

// An operator certificate file: one PEM certificate (validated locally).
Result<std::string> ReadCertificateFile(const std::string& file) {
  AR_ASSIGN_OR_RETURN(std::string pem, ReadLocalFile(file, "certificate"));
  auto info = InspectCertificate(pem);
  if (!info.ok()) return InvalidArgumentError(file + ": " + info.status().message());
  return pem;
}

Json StringArray(const std::vector<std::string>& values) {
  Json out = Json::array();
  for (const auto& v : values) out.push_back(v);
  return out;
}

Status CheckList(const std::vector<std::string>& values, const char* flag) {
  for (const auto& v : values) {
    if (v.empty()) return InvalidArgumentError(std::string(flag) + " values must not be empty");
  }
  return Status::Ok();
}

// ---- rendering helpers --------------------------------------------------

std::string Str(const Json& j) {
  if (j.is_null()) return "";
  if (j.is_string()) return OneLine(j.get<std::string>());
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  if (j.is_number()) return j.dump();
  if (j.is_array()) {
    std::string out;
    for (const auto& e : j) {
      if (!out.empty()) out += ",";
      out += Str(e);
    }
    return out;
  }
  return OneLine(j.dump());
}

const Json& Member(const Json& object, std::string_view key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(std::string(key));
  return it == object.end() ? kNull : *it;
}

std::string Text(const Json& object, std::string_view key) { return Str(Member(object, key)); }

int64_t Int(const Json& object, std::string_view key) {
  const Json& j = Member(object, key);
  return j.is_number_integer() ? j.get<int64_t>() : 0;
}

std::string Time(const Json& object, std::string_view key, std::string_view zero = "-") {
  return FormatTime(Int(object, key), zero);
}

std::string Short(const std::string& hex) { return hex.size() > 16 ? hex.substr(0, 16) + "…" : hex; }

std::string Where(const Json& agent) {
  std::string host = Text(agent, "host_id");
  if (!host.empty()) return "host " + host;
  std::string group = Text(agent, "host_group");
  return group.empty() ? "-" : "group " + group;
}

std::string Review(const Json& review) {
  if (!review.is_object()) return "-";
  std::string state = Text(review, "state");
  const int64_t latest = Int(review, "latest_version");
  const int64_t approved = Int(review, "approved_version");
  if (latest == 0) return state.empty() ? "-" : state;
  std::string out = state + " v" + std::to_string(latest);
  if (approved != 0 && approved != latest) out += " (v" + std::to_string(approved) + " approved)";
  return out;
}

const Json& Array(const Json& json, std::string_view key) {
  static const Json kEmpty = Json::array();
  const Json& j = Member(json, key);
  return j.is_array() ? j : kEmpty;
}

bool IsTimeKey(std::string_view key) {
  return key.size() > 3 && (key.substr(key.size() - 3) == "_at");
}

}  // namespace

// ---- operators ----------------------------------------------------------

Result<Json> OperatorCaInit(const OperatorCaInitArgs& args) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.dir, "--dir"));
  AR_ASSIGN_OR_RETURN(CaInitResult r, InitOperatorCa(args.dir, args.name, args.days));
  return Json{{"certificate", r.certificate_path},
              {"private_key", r.key_path},
              {"subject", r.certificate.subject},
              {"not_after", r.certificate.not_after},
              {"certificate_sha256", r.certificate.sha256_hex}};
}

Result<Json> OperatorIssue(const OperatorIssueArgs& args) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.ca_dir, "--ca-dir"));
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.out_dir, "--out"));
  AR_ASSIGN_OR_RETURN(IssueResult r, IssueOperatorCertificate(args.ca_dir, args.id, args.name, args.days, args.out_dir));
  return Json{{"id", args.id},
              {"certificate", r.certificate_path},
              {"private_key", r.key_path},
              {"subject", r.certificate.subject},
              {"serial", r.certificate.serial_hex},
              {"not_after", r.certificate.not_after},
              {"certificate_sha256", r.certificate.sha256_hex}};
}

Result<Json> OperatorAdd(AdminApi& api, const OperatorAddArgs& args) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.id, "ID"));
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.name, "--name"));
  AR_RETURN_IF_ERROR(CheckRoles(args.roles));
  AR_ASSIGN_OR_RETURN(std::string pem, ReadCertificateFile(args.cert_file));
  return api.Post("/v1/operators", Json{{"id", args.id},
                                        {"display_name", args.name},
                                        {"roles", StringArray(args.roles)},
                                        {"certificate_pem", pem}});
}

Result<Json> OperatorList(AdminApi& api) { return api.Get("/v1/operators"); }
Result<Json> OperatorWhoami(AdminApi& api) { return api.Get("/v1/whoami"); }

Result<Json> OperatorSetCert(AdminApi& api, const std::string& id, const std::string& cert_file) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(id, "ID"));
  AR_ASSIGN_OR_RETURN(std::string pem, ReadCertificateFile(cert_file));
  return api.Post("/v1/operators/" + PathSegment(id) + "/certificate", Json{{"certificate_pem", pem}});
}

Result<Json> OperatorSetRoles(AdminApi& api, const std::string& id, const std::vector<std::string>& roles) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(id, "ID"));
  AR_RETURN_IF_ERROR(CheckRoles(roles));
  return api.Post("/v1/operators/" + PathSegment(id) + "/roles", Json{{"roles", StringArray(roles)}});
}

Result<Json> OperatorAction(AdminApi& api, const std::string& id, const std::string& action) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(id, "ID"));
  std::string suffix;
  if (action == "revoke-cert") suffix = "/certificate/revoke";
  else if (action == "disable" || action == "enable") suffix = "/" + action;
  else return common::InternalError("unknown operator action " + action);
  return api.Post("/v1/operators/" + PathSegment(id) + suffix, Json::object());
}

// ---- trust anchors ------------------------------------------------------

Result<Json> TrustList(AdminApi& api) { return api.Get("/v1/trust-anchors"); }

Result<Json> TrustAddCa(AdminApi& api, const std::string& file, const std::string& description) {
  AR_ASSIGN_OR_RETURN(std::string pem, ReadLocalFile(file, "CA certificate"));
  auto certs = attestation::ParsePemCertificates(pem);
  if (!certs.ok()) return InvalidArgumentError(file + ": " + certs.status().message());
  if (certs->size() != 1) {
    return InvalidArgumentError(file + " holds " + std::to_string(certs->size()) +
                                " certificates; add one CA certificate at a time");
  }
  if (X509_check_ca(certs->front().get()) < 1) {
    return InvalidArgumentError(file + " is not a CA certificate (no basicConstraints CA:TRUE)");
  }
  Json body{{"kind", "manufacturer_ca"}, {"certificate_pem", pem}};
  if (!description.empty()) body["description"] = description;
  return api.Post("/v1/trust-anchors", body);
}

Result<std::string> EkPublicSha256(const std::string& file) {
  AR_ASSIGN_OR_RETURN(std::string bytes, ReadLocalFile(file, "EK public"));
  auto parsed = attestation::TpmPublic::Parse(common::AsBytes(bytes));
  if (!parsed.ok()) {
    return InvalidArgumentError(file + " is not a marshalled TPM2B_PUBLIC (tpm2_createek -u / tpm2_readpublic -o): " +
                                parsed.status().message());
  }
  return common::HexEncode(common::Sha256(common::AsBytes(bytes)));
}

Result<Json> TrustPinEk(AdminApi& api, const TrustPinEkArgs& args) {
  if (args.ek_public_file.empty() == args.sha256.empty()) {
    return InvalidArgumentError("give exactly one of --ek-public FILE and --sha256 HEX");
  }
  std::string sha256;
  if (!args.ek_public_file.empty()) {
    AR_ASSIGN_OR_RETURN(sha256, EkPublicSha256(args.ek_public_file));
  } else {
    auto bytes = common::HexDecode(args.sha256);
    if (!bytes.ok() || bytes->size() != 32) return InvalidArgumentError("--sha256 must be 64 hex digits");
    sha256 = common::HexEncode(*bytes);  // lower case
  }
  Json body{{"kind", "ek_pin"}, {"ek_sha256", sha256}};
  if (!args.group.empty()) body["host_group"] = args.group;
  if (!args.description.empty()) body["description"] = args.description;
  return api.Post("/v1/trust-anchors", body);
}

Result<Json> TrustAutoApprove(AdminApi& api, const std::string& group, const std::string& description) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(group, "GROUP"));
  Json body{{"kind", "auto_approve"}, {"host_group", group}};
  if (!description.empty()) body["description"] = description;
  return api.Post("/v1/trust-anchors", body);
}

Result<Json> TrustRemove(AdminApi& api, const std::string& id) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(id, "ID"));
  return api.Post("/v1/trust-anchors/" + PathSegment(id) + "/remove", Json::object());
}

// ---- hosts --------------------------------------------------------------

Result<Json> HostsList(AdminApi& api, const std::string& status) {
  if (status.empty()) return api.Get("/v1/hosts");
  if (status != "pending" && status != "approved" && status != "revoked") {
    return InvalidArgumentError("--status must be pending, approved or revoked");
  }
  return api.Get("/v1/hosts?status=" + status);
}

Result<Json> HostAction(AdminApi& api, const std::string& host_id, const std::string& action) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(host_id, "HOST_ID"));
  if (action != "approve" && action != "revoke") return common::InternalError("unknown host action " + action);
  return api.Post("/v1/hosts/" + PathSegment(host_id) + "/" + action, Json::object());
}

// ---- agents -------------------------------------------------------------

Result<Json> LoadManifestFile(const std::string& file) {
  AR_ASSIGN_OR_RETURN(std::string text, ReadLocalFile(file, "manifest"));
  auto json = common::ParseJsonStrict(text);
  if (!json.ok()) return InvalidArgumentError("manifest " + file + ": " + json.status().message());
  if (!json->is_object()) return InvalidArgumentError("manifest " + file + ": not a JSON object");
  auto digests = attestation::ParseManifestDigests(*json);
  if (!digests.ok()) return InvalidArgumentError("manifest " + file + ": " + digests.status().message());
  return json;
}

namespace {

// The optional fields shared by register and update, added to `body`.
Status AddAgentFields(const AgentArgs& args, int64_t now, Json& body) {
  if (args.host && args.group) return InvalidArgumentError("give --host or --group, not both");
  if (args.expires && args.expires_in) return InvalidArgumentError("give --expires or --expires-in, not both");
  AR_RETURN_IF_ERROR(CheckList(args.owners, "--owner"));
  AR_RETURN_IF_ERROR(CheckList(args.scopes, "--scope"));
  AR_RETURN_IF_ERROR(CheckList(args.audiences, "--audience"));
  if (!args.owners.empty()) body["owners"] = StringArray(args.owners);
  if (args.host) {
    if (args.host->empty()) return InvalidArgumentError("--host must not be empty");
    body["host_id"] = *args.host;
  }
  if (args.group) {
    if (args.group->empty()) return InvalidArgumentError("--group must not be empty");
    body["host_group"] = *args.group;
  }
  if (!args.scopes.empty()) body["scopes"] = StringArray(args.scopes);
  if (!args.audiences.empty()) body["audiences"] = StringArray(args.audiences);
  if (args.max_ttl) {
    AR_ASSIGN_OR_RETURN(int64_t ttl, ParseDuration(*args.max_ttl));
    body["max_token_ttl"] = ttl;
  }
  std::optional<int64_t> expires_at;
  if (args.expires) {
    AR_ASSIGN_OR_RETURN(expires_at, ParseTime(*args.expires));
  }
  if (args.expires_in) {
    AR_ASSIGN_OR_RETURN(int64_t d, ParseDuration(*args.expires_in));
    expires_at = now + d;
  }
  if (expires_at) {
    if (*expires_at <= now) {
      return InvalidArgumentError("the registration would end in the past (" + FormatTime(*expires_at) + " UTC)");
    }
    body["expires_at"] = *expires_at;
  }
  return Status::Ok();
}

}  // namespace

Result<Json> AgentRegisterBody(const AgentArgs& args, int64_t now) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.name, "NAME"));
  if (args.owners.empty()) return InvalidArgumentError("give at least one --owner");
  if (!args.host && !args.group) return InvalidArgumentError("give --host HOST_ID or --group GROUP");
  if (args.scopes.empty()) return InvalidArgumentError("give at least one --scope");
  if (args.audiences.empty()) return InvalidArgumentError("give at least one --audience");
  if (!args.expires && !args.expires_in) return InvalidArgumentError("give --expires YYYY-MM-DD or --expires-in DURATION");
  Json body{{"name", args.name}};
  AR_RETURN_IF_ERROR(AddAgentFields(args, now, body));
  if (args.manifest_file) {
    AR_ASSIGN_OR_RETURN(body["manifest"], LoadManifestFile(*args.manifest_file));
  }
  return body;
}

Result<Json> AgentRegister(AdminApi& api, const AgentArgs& args, int64_t now) {
  AR_ASSIGN_OR_RETURN(Json body, AgentRegisterBody(args, now));
  return api.Post("/v1/agents", body);
}

Result<Json> AgentUpdate(AdminApi& api, const AgentArgs& args, int64_t now) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.name, "NAME"));
  Json body = Json::object();
  AR_RETURN_IF_ERROR(AddAgentFields(args, now, body));
  std::optional<Json> manifest;
  if (args.manifest_file) {
    AR_ASSIGN_OR_RETURN(manifest, LoadManifestFile(*args.manifest_file));
  }
  if (body.empty() && !manifest) {
    return InvalidArgumentError("nothing to update: give --owner, --host, --group, --scope, --audience, --max-ttl, "
                                "--expires, --expires-in or --manifest");
  }
  const std::string base = "/v1/agents/" + PathSegment(args.name);
  std::optional<Json> agent;
  if (!body.empty()) {
    AR_ASSIGN_OR_RETURN(agent, api.Post(base + "/update", body));
  }
  if (!manifest) return *agent;
  auto version = api.Post(base + "/manifests", *manifest);
  if (!version.ok()) {
    if (agent) return version.status().WithContext("the fields were updated, the new manifest was not");
    return version.status();
  }
  if (!agent) return *version;
  return Json{{"agent", *agent}, {"manifest", *version}};
}

Result<Json> AgentsList(AdminApi& api) { return api.Get("/v1/agents"); }

Result<Json> AgentShow(AdminApi& api, const std::string& name) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(name, "NAME"));
  return api.Get("/v1/agents/" + PathSegment(name));
}

Result<Json> AgentAction(AdminApi& api, const std::string& name, const std::string& action,
                         const std::string& reason) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(name, "NAME"));
  if (action != "suspend" && action != "resume" && action != "retire") {
    return common::InternalError("unknown agent action " + action);
  }
  Json body = Json::object();
  if (!reason.empty()) body["reason"] = reason;
  return api.Post("/v1/agents/" + PathSegment(name) + "/" + action, body);
}

// ---- reviews ------------------------------------------------------------

Result<Json> ReviewsList(AdminApi& api) { return api.Get("/v1/reviews"); }

Result<Json> ReviewDecide(AdminApi& api, const std::string& name, int64_t version, bool approve,
                          const std::string& comment) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(name, "NAME"));
  if (version < 1) return InvalidArgumentError("VERSION must be a positive integer");
  if (!approve && comment.empty()) return InvalidArgumentError("a rejection needs --comment");
  return api.Post("/v1/agents/" + PathSegment(name) + "/manifests/" + std::to_string(version) + "/review",
                  Json{{"approve", approve}, {"comment", comment}});
}

// ---- JIT ----------------------------------------------------------------

Result<Json> JitRequest(AdminApi& api, const JitRequestArgs& args) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.name, "NAME"));
  if (args.scopes.empty()) return InvalidArgumentError("give at least one --scope");
  AR_RETURN_IF_ERROR(CheckList(args.scopes, "--scope"));
  AR_RETURN_IF_ERROR(RequireNonEmpty(args.reason, "--reason"));
  AR_ASSIGN_OR_RETURN(int64_t seconds, ParseDuration(args.duration));
  return api.Post("/v1/agents/" + PathSegment(args.name) + "/jit-grants",
                  Json{{"scopes", StringArray(args.scopes)}, {"duration_seconds", seconds}, {"reason", args.reason}});
}

Result<Json> JitList(AdminApi& api, const std::string& agent) {
  if (agent.empty()) return api.Get("/v1/jit-grants");
  return api.Get("/v1/jit-grants?agent=" + PathSegment(agent));
}

Result<Json> JitAction(AdminApi& api, const std::string& id, const std::string& action, const std::string& comment) {
  AR_RETURN_IF_ERROR(RequireNonEmpty(id, "ID"));
  if (action != "approve" && action != "reject" && action != "revoke") {
    return common::InternalError("unknown jit action " + action);
  }
  Json body = Json::object();
  if (!comment.empty() && action != "revoke") body["comment"] = comment;
  return api.Post("/v1/jit-grants/" + PathSegment(id) + "/" + action, body);
}

// ---- revocation ---------------------------------------------------------

Result<Json> Revoke(AdminApi& api, const RevokeArgs& args) {
  const int targets = (args.agent ? 1 : 0) + (args.host ? 1 : 0) + (args.jti ? 1 : 0);
  if (targets != 1) return InvalidArgumentError("give exactly one of --agent NAME, --host HOST_ID and --jti JTI");
  if (args.host) {
    AR_RETURN_IF_ERROR(RequireNonEmpty(*args.host, "--host"));
    return api.Post("/v1/revocations", Json{{"host_id", *args.host}});
  }
  if (args.jti) {
    AR_RETURN_IF_ERROR(RequireNonEmpty(*args.jti, "--jti"));
    return api.Post("/v1/revocations", Json{{"jti", *args.jti}});
  }
  AR_RETURN_IF_ERROR(RequireNonEmpty(*args.agent, "--agent"));
  // The full agent id carries the trust domain: ask the verifier.
  AR_ASSIGN_OR_RETURN(Json agent, AgentShow(api, *args.agent));
  std::string id = Text(agent, "id");
  if (id.empty()) return common::InternalError("the verifier's agent has no id");
  return api.Post("/v1/revocations", Json{{"agent_id", id}});
}

// ---- audit --------------------------------------------------------------

Result<Json> AuditExport(AdminApi& api, const AuditExportArgs& args, std::string* stdout_text) {
  std::string query;
  if (args.from) {
    AR_ASSIGN_OR_RETURN(int64_t from, ParseTime(*args.from));
    query += "from=" + std::to_string(from);
  }
  if (args.to) {
    AR_ASSIGN_OR_RETURN(int64_t to, ParseTime(*args.to));
    query += (query.empty() ? "" : "&") + std::string("to=") + std::to_string(to);
  }
  const bool to_file = !args.out.empty() && args.out != "-";
  if (to_file) {
    // Refuse before asking: the export is never written over an old one.
    if (access(args.out.c_str(), F_OK) == 0) {
      return common::AlreadyExistsError(args.out + " exists; refusing to overwrite it");
    }
  }
  AR_ASSIGN_OR_RETURN(RawResponse raw, api.GetRaw(query.empty() ? "/v1/audit" : "/v1/audit?" + query));
  auto seq_header = http::FindHeader(raw.headers, "X-Audit-Anchor-Seq");
  auto hash_header = http::FindHeader(raw.headers, "X-Audit-Anchor-Hash");
  std::string anchor;
  if (seq_header && hash_header) {
    auto parsed = ParseAnchor(std::string(*seq_header) + ":" + std::string(*hash_header));
    if (parsed.ok()) anchor = FormatAnchor(*parsed);
  }
  int64_t records = static_cast<int64_t>(std::count(raw.body.begin(), raw.body.end(), '\n'));
  if (!raw.body.empty() && raw.body.back() != '\n') ++records;
  if (to_file) {
    AR_RETURN_IF_ERROR(WriteNewFile(args.out, raw.body, 0644));
  } else if (stdout_text != nullptr) {
    *stdout_text += raw.body;
  }
  return Json{{"anchor", anchor},
              {"records", records},
              {"bytes", static_cast<int64_t>(raw.body.size())},
              {"out", to_file ? args.out : "-"}};
}

Result<Json> AuditVerify(const std::string& file, const std::optional<std::string>& anchor_text) {
  AR_ASSIGN_OR_RETURN(std::string jsonl, ReadLocalFile(file, "audit export"));
  AuditAnchor anchor;
  bool at_first_record = false;
  if (anchor_text) {
    AR_ASSIGN_OR_RETURN(anchor, ParseAnchor(*anchor_text));
  } else {
    const std::size_t end = jsonl.find('\n');
    std::string_view first = std::string_view(jsonl).substr(0, end);
    if (!first.empty()) {
      auto entry = attestation::store::ParseAuditJsonLine(first);
      if (entry.ok()) {
        anchor.seq = entry->seq - 1;
        anchor.hash = entry->prev_hash;
        at_first_record = true;
      }
      // A first line that does not parse is reported by the verification.
    }
  }
  const attestation::store::AuditChainReport report = attestation::store::VerifyAuditChain(jsonl, anchor);
  if (!report.status.ok()) {
    std::string where = "line " + std::to_string(report.first_bad_line);
    if (report.first_bad_seq >= 0) where += " (seq " + std::to_string(report.first_bad_seq) + ")";
    return common::DataLossError(file + ": first bad record at " + where + ": " + OneLine(report.status.message()) +
                                 "; " + std::to_string(report.records_verified) + " records before it verified");
  }
  return Json{{"file", file},
              {"records", report.records_verified},
              {"anchor", FormatAnchor(anchor)},
              {"anchored_at_first_record", at_first_record},
              {"head", FormatAnchor(report.head)}};
}

// ---- inventory ----------------------------------------------------------

Result<Json> Inventory(AdminApi& api, const InventoryArgs& args) {
  std::string query;
  auto add = [&](const char* key, const std::optional<int>& value) -> Status {
    if (!value) return Status::Ok();
    if (*value < 1 || *value > 3650) return InvalidArgumentError(std::string("--") + key + " must be 1..3650");
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" + std::to_string(*value);
    return Status::Ok();
  };
  AR_RETURN_IF_ERROR(add("expiring_days", args.expiring_days));
  AR_RETURN_IF_ERROR(add("unused_days", args.unused_days));
  AR_RETURN_IF_ERROR(add("usage_days", args.usage_days));
  return api.Get("/v1/inventory" + query);
}

// ---- renderers ----------------------------------------------------------

std::vector<Table> RenderOperators(const Json& json) {
  Table t{"", {"id", "name", "roles", "status", "certificate sha256", "created"}, {}, false, "no operators"};
  for (const auto& o : Array(json, "operators")) {
    std::string fp = Text(o, "certificate_sha256");
    t.rows.push_back({Text(o, "id"), Text(o, "display_name"), Text(o, "roles"), Text(o, "status"),
                      fp.empty() ? "(cleared)" : Short(fp), Time(o, "created_at")});
  }
  return {t};
}

std::vector<Table> RenderTrustAnchors(const Json& json) {
  Table t{"", {"id", "kind", "group", "what", "description", "source", "created by", "created"}, {}, false,
          "no trust anchors"};
  for (const auto& a : Array(json, "trust_anchors")) {
    std::string kind = Text(a, "kind");
    std::string what;
    if (kind == "manufacturer_ca") what = Text(a, "subject") + " (until " + Time(a, "not_after") + ")";
    else if (kind == "ek_pin") what = "EK " + Short(Text(a, "ek_sha256"));
    else what = "auto-approve";
    t.rows.push_back({Text(a, "id"), kind, Text(a, "host_group"), what, Text(a, "description"), Text(a, "source"),
                      Text(a, "created_by"), Time(a, "created_at")});
  }
  return {t};
}

std::vector<Table> RenderHosts(const Json& json) {
  Table t{"", {"id", "group", "status", "ek sha256", "ek issuer", "enrolled", "approved by", "last attested"}, {},
          false, "no hosts"};
  for (const auto& h : Array(json, "hosts")) {
    std::string issuer = Text(h, "ek_certificate_issuer");
    t.rows.push_back({Text(h, "id"), Text(h, "host_group"), Text(h, "status"), Short(Text(h, "ek_sha256")),
                      issuer.empty() ? "(pinned EK)" : issuer, Time(h, "enrolled_at"), Text(h, "approved_by"),
                      Time(h, "last_attested_at", "never")});
  }
  return {t};
}

std::vector<Table> RenderAgents(const Json& json) {
  Table t{"", {"name", "status", "owners", "where", "scopes", "audiences", "max ttl", "expires", "review"}, {}, false,
          "no agents"};
  for (const auto& a : Array(json, "agents")) {
    t.rows.push_back({Text(a, "name"), Text(a, "status"), Text(a, "owners"), Where(a), Text(a, "scopes"),
                      Text(a, "audiences"), Text(a, "max_token_ttl") + (Int(a, "max_token_ttl") ? "s" : ""),
                      Time(a, "expires_at", "never"), Review(Member(a, "review"))});
  }
  return {t};
}

std::vector<Table> RenderAgentDetail(const Json& a) {
  Table head{"", {"id", "name", "status", "owners", "where", "scopes", "audiences", "max token ttl", "expires",
                  "review", "created", "updated"},
             {}, true, ""};
  head.rows.push_back({Text(a, "id"), Text(a, "name"), Text(a, "status"), Text(a, "owners"), Where(a),
                       Text(a, "scopes"), Text(a, "audiences"), Text(a, "max_token_ttl") + "s",
                       Time(a, "expires_at", "never"), Review(Member(a, "review")), Time(a, "created_at"),
                       Time(a, "updated_at")});
  Table manifests{"Manifest versions", {"version", "status", "reviewer", "reviewed", "comment", "submitted",
                                        "exe sha256"},
                  {}, false, "none"};
  for (const auto& m : Array(a, "manifests")) {
    manifests.rows.push_back({Text(m, "version"), Text(m, "status"), Text(m, "reviewer"), Time(m, "reviewed_at"),
                              Text(m, "comment"), Time(m, "created_at"),
                              Short(Text(Member(m, "content"), "exe_sha256"))});
  }
  std::vector<Table> out = {head, manifests};
  std::vector<Table> grants = RenderJitGrants(Json{{"jit_grants", Array(a, "jit_grants")}});
  grants.front().title = "JIT grants";
  grants.front().empty_text = "none";
  out.push_back(grants.front());
  return out;
}

std::vector<Table> RenderReviews(const Json& json) {
  Table t{"", {"agent", "version", "submitted", "owners", "exe sha256", "files"}, {}, false,
          "nothing waiting for review"};
  for (const auto& r : Array(json, "reviews")) {
    const Json& content = Member(r, "content");
    const Json& files = Member(content, "files");
    t.rows.push_back({Text(r, "agent_name"), Text(r, "version"), Time(r, "created_at"), Text(r, "owners"),
                      Short(Text(content, "exe_sha256")), std::to_string(files.is_object() ? files.size() : 0)});
  }
  return {t};
}

std::vector<Table> RenderJitGrants(const Json& json) {
  Table t{"", {"id", "agent", "scopes", "state", "duration", "requested by", "requested", "decided by", "expires",
               "reason"},
          {}, false, "no JIT grants"};
  auto row = [&](const Json& g) {
    t.rows.push_back({Text(g, "id"), Text(g, "agent_id"), Text(g, "scopes"), Text(g, "state"),
                      Text(g, "duration_seconds") + "s", Text(g, "requested_by"), Time(g, "requested_at"),
                      Text(g, "decided_by"), Time(g, "expires_at"), Text(g, "reason")});
  };
  if (json.is_object() && json.contains("jit_grants")) {
    for (const auto& g : Array(json, "jit_grants")) row(g);
  } else {
    row(json);
  }
  return {t};
}

std::vector<Table> RenderInventory(const Json& json) {
  Table agents{"", {"name", "status", "owners", "where", "scopes", "audiences", "jit in force", "access ends",
                    "last attested", "last token", "review", "findings"},
               {}, false, "no agents"};
  for (const auto& a : Array(json, "agents")) {
    std::string owners;
    for (const auto& o : Array(a, "owners")) {
      if (!owners.empty()) owners += ",";
      owners += Text(o, "id");
      if (Member(o, "active").is_boolean() && !Member(o, "active").get<bool>()) owners += "(inactive)";
    }
    std::string jit;
    for (const auto& g : Array(a, "jit_grants_in_force")) {
      if (!jit.empty()) jit += "; ";
      jit += Text(g, "scopes") + " until " + Time(g, "expires_at");
    }
    agents.rows.push_back({Text(a, "name"), Text(a, "status"), owners.empty() ? "-" : owners, Where(a),
                           Text(a, "scopes"), Text(a, "audiences"), jit.empty() ? "-" : jit,
                           Time(a, "expires_at", "never"), Time(a, "last_attested_at", "never"),
                           Time(a, "last_token_at", "never"), Review(Member(a, "review")),
                           Text(a, "findings").empty() ? "-" : Text(a, "findings")});
  }
  Table findings{"Findings", {"code", "subject", "detail"}, {}, false, "no findings"};
  for (const auto& f : Array(json, "findings")) {
    findings.rows.push_back({Text(f, "code"), Text(f, "subject"), Text(f, "detail")});
  }
  std::vector<Table> out = {agents, findings};
  const Json& shadows = Array(json, "shadow_agents");
  if (!shadows.empty()) {
    Table shadow{"Shadow agents", {"host", "executable", "exe sha256", "uid", "reports", "first seen", "last seen"},
                 {}, false, ""};
    for (const auto& s : shadows) {
      shadow.rows.push_back({Text(s, "host_id"), Text(s, "exe_path"), Short(Text(s, "exe_sha256")), Text(s, "uid"),
                             Text(s, "reports"), Time(s, "first_seen"), Time(s, "last_seen")});
    }
    out.push_back(shadow);
  }
  return out;
}

std::vector<Table> RenderObject(const Json& json) {
  Table t{"", {}, {}, true, ""};
  if (!json.is_object()) {
    t.headers = {"value"};
    t.rows.push_back({Str(json)});
    return {t};
  }
  std::vector<std::string> row;
  for (const auto& [key, value] : json.items()) {
    t.headers.push_back(key);
    if (IsTimeKey(key) && value.is_number_integer()) {
      row.push_back(FormatTime(value.get<int64_t>()));
    } else if (key == "not_after" && value.is_number_integer()) {
      row.push_back(FormatTime(value.get<int64_t>()) + " UTC");
    } else {
      row.push_back(Str(value));
    }
  }
  t.rows.push_back(std::move(row));
  return {t};
}

}  // namespace agentroot::provisioning
