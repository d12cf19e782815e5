#include "agentroot/attestation/store/audit_chain.h"

#include <cmath>
#include <string>
#include <utility>

#include "agentroot/common/signer.h"

namespace agentroot::attestation::store {
namespace {

using common::Bytes;
using common::Json;
using common::Result;
using common::Status;

constexpr int kMaxDetailsDepth = 16;
constexpr std::size_t kMaxDetailsBytes = 64 * 1024;

// Keys whose value is secret material by name.
bool IsSecretMemberName(std::string_view name) {
  return name == "access_token" || name == "refresh_token" || name == "id_token" ||
         name == "private_key" || name == "client_secret" || name == "password";
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// A JWS/JWT in compact form: "eyJ..." "." segment "." segment.
bool LooksLikeCompactJws(std::string_view s) {
  if (!s.starts_with("eyJ")) return false;
  int dots = 0;
  for (char c : s) {
    if (c == '.') {
      ++dots;
    } else if (!IsBase64UrlChar(c)) {
      return false;
    }
  }
  return dots == 2 || dots == 4;  // JWS or JWE
}

Status CheckValue(const Json& value, int depth) {
  if (depth > kMaxDetailsDepth) {
    return common::InvalidArgumentError("audit details nested deeper than 16");
  }
  switch (value.type()) {
    case Json::value_t::object:
      if (value.contains("kty") && value.contains("d")) {
        return common::InvalidArgumentError("audit details carry a private JWK; log its thumbprint");
      }
      for (const auto& [key, member] : value.items()) {
        if (IsSecretMemberName(key)) {
          return common::InvalidArgumentError("audit details carry secret member \"" + key + "\"");
        }
        AR_RETURN_IF_ERROR(CheckValue(member, depth + 1));
      }
      return Status();
    case Json::value_t::array:
      for (const Json& element : value) AR_RETURN_IF_ERROR(CheckValue(element, depth + 1));
      return Status();
    case Json::value_t::string:
      if (LooksLikeCompactJws(value.get_ref<const std::string&>())) {
        return common::InvalidArgumentError("audit record carries a whole JWT; log its jti");
      }
      return Status();
    case Json::value_t::number_float:
      if (!std::isfinite(value.get<double>())) {
        return common::InvalidArgumentError("audit details contain a non-finite number");
      }
      return Status();
    case Json::value_t::discarded:
      return common::InvalidArgumentError("audit details contain a discarded value");
    default:
      return Status();
  }
}

Result<std::string> Dump(const Json& json) {
  try {
    return json.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    return common::InvalidArgumentError(std::string("audit record is not valid UTF-8: ") + e.what());
  }
}

Json BodyJson(const AuditEntry& entry) {
  Json body = Json::object();
  body["seq"] = entry.seq;
  body["ts"] = entry.ts;
  body["actor"] = entry.record.actor;
  body["action"] = entry.record.action;
  body["subject"] = entry.record.subject;
  body["decision"] = std::string(AuditDecisionName(entry.record.decision));
  body["reasons"] = entry.record.reasons;
  body["details"] = entry.record.details.is_null() ? Json::object() : entry.record.details;
  body["prev_hash"] = common::HexEncode(entry.prev_hash);
  return body;
}

Result<Bytes> ParseHash(const Json& object, std::string_view member) {
  AR_ASSIGN_OR_RETURN(std::string hex, common::GetString(object, member));
  if (hex.size() != 2 * kAuditHashSize) {
    return common::InvalidArgumentError(std::string(member) + " is not 64 hex digits");
  }
  AR_ASSIGN_OR_RETURN(Bytes bytes, common::HexDecode(hex));
  if (common::HexEncode(bytes) != hex) {
    return common::InvalidArgumentError(std::string(member) + " is not lower-case hex");
  }
  return bytes;
}

Result<int64_t> GetInt(const Json& object, std::string_view member) {
  auto it = object.find(member);
  if (it == object.end() || !it->is_number_integer()) {
    return common::InvalidArgumentError("member \"" + std::string(member) + "\" missing or not an integer");
  }
  return it->get<int64_t>();
}

}  // namespace

std::string_view AuditDecisionName(AuditDecision decision) {
  switch (decision) {
    case AuditDecision::kAllow: return "allow";
    case AuditDecision::kDeny: return "deny";
    case AuditDecision::kInfo: return "info";
  }
  return "info";
}

Result<AuditDecision> ParseAuditDecision(std::string_view name) {
  if (name == "allow") return AuditDecision::kAllow;
  if (name == "deny") return AuditDecision::kDeny;
  if (name == "info") return AuditDecision::kInfo;
  return common::InvalidArgumentError("unknown audit decision \"" + std::string(name) + "\"");
}

Status ValidateAuditRecord(const AuditRecord& record) {
  if (record.actor.empty()) return common::InvalidArgumentError("audit record without actor");
  if (record.action.empty()) return common::InvalidArgumentError("audit record without action");
  if (!record.details.is_null() && !record.details.is_object()) {
    return common::InvalidArgumentError("audit details must be a JSON object");
  }
  AR_RETURN_IF_ERROR(CheckValue(record.details, 0));
  for (const std::string& reason : record.reasons) {
    if (LooksLikeCompactJws(reason)) {
      return common::InvalidArgumentError("audit record carries a whole JWT; log its jti");
    }
  }
  for (const std::string* s : {&record.actor, &record.action, &record.subject}) {
    if (LooksLikeCompactJws(*s)) {
      return common::InvalidArgumentError("audit record carries a whole JWT; log its jti");
    }
  }
  AR_ASSIGN_OR_RETURN(std::string details, Dump(record.details));
  if (details.size() > kMaxDetailsBytes) {
    return common::InvalidArgumentError("audit details larger than 64 KiB");
  }
  return Status();
}

Result<std::string> CanonicalAuditBody(const AuditEntry& entry) {
  AR_RETURN_IF_ERROR(ValidateAuditRecord(entry.record));
  if (entry.prev_hash.size() != kAuditHashSize) {
    return common::InvalidArgumentError("prev_hash must be 32 bytes");
  }
  return Dump(BodyJson(entry));
}

Bytes ComputeAuditHash(common::ByteView prev_hash, std::string_view body) {
  Bytes input(prev_hash.begin(), prev_hash.end());
  input.insert(input.end(), body.begin(), body.end());
  return common::Sha256(input);
}

Result<std::string> AuditEntryToJsonLine(const AuditEntry& entry) {
  AR_RETURN_IF_ERROR(ValidateAuditRecord(entry.record));
  Json line = BodyJson(entry);
  line["hash"] = common::HexEncode(entry.hash);
  return Dump(line);
}

Result<AuditEntry> ParseAuditJsonLine(std::string_view line) {
  AR_ASSIGN_OR_RETURN(Json json, common::ParseJsonStrict(line));
  if (!json.is_object()) return common::InvalidArgumentError("audit line is not a JSON object");
  static constexpr std::string_view kMembers[] = {"action", "actor",     "decision", "details",
                                                  "hash",   "prev_hash", "reasons",  "seq",
                                                  "subject", "ts"};
  if (json.size() != std::size(kMembers)) {
    return common::InvalidArgumentError("audit line has unexpected members");
  }
  for (std::string_view member : kMembers) {
    if (!json.contains(member)) {
      return common::InvalidArgumentError("audit line lacks \"" + std::string(member) + "\"");
    }
  }
  AuditEntry entry;
  AR_ASSIGN_OR_RETURN(entry.seq, GetInt(json, "seq"));
  AR_ASSIGN_OR_RETURN(entry.ts, GetInt(json, "ts"));
  AR_ASSIGN_OR_RETURN(entry.record.actor, common::GetString(json, "actor"));
  AR_ASSIGN_OR_RETURN(entry.record.action, common::GetString(json, "action"));
  AR_ASSIGN_OR_RETURN(entry.record.subject, common::GetString(json, "subject"));
  AR_ASSIGN_OR_RETURN(std::string decision, common::GetString(json, "decision"));
  AR_ASSIGN_OR_RETURN(entry.record.decision, ParseAuditDecision(decision));
  const Json& reasons = json["reasons"];
  if (!reasons.is_array()) return common::InvalidArgumentError("reasons is not an array");
  for (const Json& reason : reasons) {
    if (!reason.is_string()) return common::InvalidArgumentError("a reason is not a string");
    entry.record.reasons.push_back(reason.get<std::string>());
  }
  if (!json["details"].is_object()) return common::InvalidArgumentError("details is not an object");
  entry.record.details = json["details"];
  AR_ASSIGN_OR_RETURN(entry.prev_hash, ParseHash(json, "prev_hash"));
  AR_ASSIGN_OR_RETURN(entry.hash, ParseHash(json, "hash"));

  AR_ASSIGN_OR_RETURN(std::string body, CanonicalAuditBody(entry));
  if (!common::ConstantTimeEquals(ComputeAuditHash(entry.prev_hash, body), entry.hash)) {
    return common::DataLossError("hash does not match the record's content");
  }
  return entry;
}

AuditChainReport VerifyAuditChain(std::string_view jsonl, const AuditAnchor& anchor) {
  AuditChainReport report;
  report.head = anchor;
  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos < jsonl.size()) {
    std::size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    const std::string_view line = jsonl.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;

    auto fail = [&](int64_t seq, const std::string& why) {
      report.first_bad_line = line_number;
      report.first_bad_seq = seq;
      report.status = common::DataLossError(
          "audit chain broken at line " + std::to_string(line_number) +
          (seq >= 0 ? " (seq " + std::to_string(seq) + ")" : std::string()) + ": " + why);
      return report;
    };

    // The seq as written, for the report, even when the rest is bad.
    int64_t written_seq = -1;
    if (auto raw = common::ParseJsonStrict(line); raw.ok() && raw->is_object()) {
      auto it = raw->find("seq");
      if (it != raw->end() && it->is_number_integer()) written_seq = it->get<int64_t>();
    }
    auto entry = ParseAuditJsonLine(line);
    if (!entry.ok()) return fail(written_seq, entry.status().message());
    if (entry->seq != report.head.seq + 1) {
      return fail(entry->seq, "expected seq " + std::to_string(report.head.seq + 1) +
                                  " (a record is missing, reordered or inserted)");
    }
    if (!common::ConstantTimeEquals(entry->prev_hash, report.head.hash)) {
      return fail(entry->seq, "prev_hash does not match the previous record's hash");
    }
    report.head.seq = entry->seq;
    report.head.hash = entry->hash;
    ++report.records_verified;
  }
  return report;
}

}  // namespace agentroot::attestation::store
