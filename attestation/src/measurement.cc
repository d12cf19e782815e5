#include "agentroot/attestation/measurement.h"

#include <algorithm>
#include <set>

#include "agentroot/common/signer.h"

namespace agentroot::attestation {

using common::Bytes;
using common::Json;
using common::Result;
using common::Status;

namespace {

bool IsHexDigest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void AppendPrefixed(Bytes& out, common::ByteView part) {
  out.push_back(static_cast<uint8_t>(part.size() >> 8));
  out.push_back(static_cast<uint8_t>(part.size()));
  out.insert(out.end(), part.begin(), part.end());
}

}  // namespace

Json EventToJson(const MeasurementEvent& e) {
  Json files = Json::array();
  for (const MeasuredFile& f : e.files) files.push_back(Json{{"path", f.path}, {"sha256", f.sha256_hex}});
  // nlohmann::json objects keep keys sorted, so dump() is canonical.
  return Json{{"seq", e.sequence}, {"time", e.time},     {"agent", e.agent_id},     {"pid", e.pid},
              {"uid", e.uid},      {"exe", e.exe_path},  {"exe_sha256", e.exe_sha256_hex},
              {"files", files}};
}

Result<MeasurementEvent> EventFromJson(const Json& j) {
  if (!j.is_object()) return common::InvalidArgumentError("measurement: event is not an object");
  MeasurementEvent e;
  try {
    e.sequence = j.at("seq").get<uint64_t>();
    e.time = j.at("time").get<int64_t>();
    e.agent_id = j.at("agent").get<std::string>();
    e.pid = j.at("pid").get<uint32_t>();
    e.uid = j.at("uid").get<uint32_t>();
    e.exe_path = j.at("exe").get<std::string>();
    e.exe_sha256_hex = j.at("exe_sha256").get<std::string>();
    for (const Json& f : j.at("files")) {
      e.files.push_back({f.at("path").get<std::string>(), f.at("sha256").get<std::string>()});
    }
  } catch (const Json::exception& ex) {
    return common::InvalidArgumentError(std::string("measurement: malformed event (") + ex.what() + ")");
  }
  if (j.size() != 8) return common::InvalidArgumentError("measurement: unexpected members in event");
  if (!IsHexDigest(e.exe_sha256_hex)) return common::InvalidArgumentError("measurement: exe_sha256 is not a digest");
  for (const MeasuredFile& f : e.files) {
    if (!IsHexDigest(f.sha256_hex)) return common::InvalidArgumentError("measurement: file digest malformed");
  }
  return e;
}

Bytes EventDigest(const MeasurementEvent& event) {
  return common::Sha256(common::AsBytes(EventToJson(event).dump()));
}

Bytes ReplayLog(const std::vector<MeasurementEvent>& events, const Bytes& initial) {
  Bytes pcr = initial;
  for (const MeasurementEvent& e : events) {
    Bytes input = pcr;
    Bytes digest = EventDigest(e);
    input.insert(input.end(), digest.begin(), digest.end());
    pcr = common::Sha256(input);
  }
  return pcr;
}

std::string SerializeLog(const std::vector<MeasurementEvent>& events) {
  std::string out;
  for (const MeasurementEvent& e : events) {
    out += EventToJson(e).dump();
    out += '\n';
  }
  return out;
}

Result<std::vector<MeasurementEvent>> ParseLog(std::string_view jsonl) {
  std::vector<MeasurementEvent> out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < jsonl.size()) {
    std::size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    std::string_view line = jsonl.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    auto json = common::ParseJsonStrict(line, common::JsonLimits{64 * 1024, 4});
    if (!json.ok()) return json.status().WithContext("measurement log line " + std::to_string(line_no));
    auto event = EventFromJson(*json);
    if (!event.ok()) return event.status().WithContext("measurement log line " + std::to_string(line_no));
    if (event->sequence != out.size() + 1) {
      return common::InvalidArgumentError("measurement log line " + std::to_string(line_no) +
                                          ": sequence " + std::to_string(event->sequence) + ", expected " +
                                          std::to_string(out.size() + 1));
    }
    out.push_back(std::move(event).value());
  }
  return out;
}

Bytes QualifyingData(common::ByteView nonce, common::ByteView agent_key_name, common::ByteView event_digest) {
  static constexpr char kLabel[] = "agentroot/attest/v1";
  Bytes input(kLabel, kLabel + sizeof(kLabel));  // includes the NUL separator
  AppendPrefixed(input, nonce);
  AppendPrefixed(input, agent_key_name);
  AppendPrefixed(input, event_digest);
  return common::Sha256(input);
}

Json ShadowReportToJson(const ShadowReport& r) {
  return Json{{"time", r.time}, {"pid", r.pid}, {"uid", r.uid}, {"gid", r.gid}, {"exe_path", r.exe_path},
              {"exe_sha256", r.exe_sha256_hex}};
}

Result<ShadowReport> ShadowReportFromJson(const Json& j) {
  auto bad = [](const std::string& why) { return common::InvalidArgumentError("shadow report: " + why); };
  if (!j.is_object() || j.size() != 6) return bad("needs exactly time, pid, uid, gid, exe_path, exe_sha256");
  ShadowReport r;
  for (auto [name, out] : {std::pair{"time", &r.time}, std::pair{"pid", &r.pid}, std::pair{"uid", &r.uid},
                           std::pair{"gid", &r.gid}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > (int64_t{1} << 40)) {
      return bad(std::string(name) + " must be a non-negative integer");
    }
    *out = it->get<int64_t>();
  }
  auto path = j.find("exe_path");
  if (path == j.end() || !path->is_string() || path->get_ref<const std::string&>().size() > 4096) {
    return bad("exe_path must be a string of at most 4096 bytes");
  }
  r.exe_path = path->get<std::string>();
  auto hash = j.find("exe_sha256");
  if (hash == j.end() || !hash->is_string()) return bad("exe_sha256 must be a string");
  r.exe_sha256_hex = hash->get<std::string>();
  if (!r.exe_sha256_hex.empty()) {
    auto bytes = common::HexDecode(r.exe_sha256_hex);
    if (!bytes.ok() || bytes->size() != 32) return bad("exe_sha256 must be empty or 64 hex digits");
  }
  return r;
}

Bytes ShadowReportQualifyingData(common::ByteView nonce, const ShadowReport& report) {
  static constexpr std::string_view kLabel = "agentroot shadow report v1";
  Bytes input(kLabel.begin(), kLabel.end());
  input.insert(input.end(), nonce.begin(), nonce.end());
  Bytes digest = common::Sha256(common::AsBytes(ShadowReportToJson(report).dump()));
  input.insert(input.end(), digest.begin(), digest.end());
  return common::Sha256(input);
}

Bytes CertifyQualifyingData(common::ByteView nonce) {
  static constexpr char kLabel[] = "agentroot/certify/v1";
  Bytes input(kLabel, kLabel + sizeof(kLabel));
  AppendPrefixed(input, nonce);
  return common::Sha256(input);
}

Result<ManifestDigests> ParseManifestDigests(const Json& content) {
  auto is_digest = [](const Json& v) { return v.is_string() && IsHexDigest(v.get_ref<const std::string&>()); };
  if (!content.is_object()) return common::InvalidArgumentError("manifest: must be a JSON object");
  auto exe = content.find("exe_sha256");
  if (exe == content.end() || !is_digest(*exe)) {
    return common::InvalidArgumentError(
        "manifest: \"exe_sha256\" must be the executable's SHA-256 (64 lower-case hex digits)");
  }
  ManifestDigests out;
  out.exe_sha256_hex = exe->get<std::string>();
  if (auto files = content.find("files"); files != content.end()) {
    if (!files->is_object()) return common::InvalidArgumentError("manifest: \"files\" must map path -> SHA-256");
    for (auto it = files->begin(); it != files->end(); ++it) {
      if (it.key().empty() || it.key().front() != '/' || !is_digest(it.value())) {
        return common::InvalidArgumentError("manifest: \"files\" entry \"" + it.key() +
                                            "\" must map an absolute path to a SHA-256 (64 lower-case hex digits)");
      }
      out.files[it.key()] = it.value().get<std::string>();
    }
  }
  return out;
}

Status MatchManifest(const MeasurementEvent& event, const ManifestDigests& manifest) {
  if (event.exe_sha256_hex != manifest.exe_sha256_hex) {
    return common::PermissionDeniedError("measurement: executable " + event.exe_path +
                                         " does not match the approved manifest");
  }
  std::set<std::string> seen;
  for (const MeasuredFile& f : event.files) {
    auto it = manifest.files.find(f.path);
    if (it == manifest.files.end()) {
      return common::PermissionDeniedError("measurement: file " + f.path + " is not in the approved manifest");
    }
    if (it->second != f.sha256_hex) {
      return common::PermissionDeniedError("measurement: file " + f.path + " differs from the approved manifest");
    }
    seen.insert(f.path);
  }
  for (const auto& [path, digest] : manifest.files) {
    if (seen.count(path) == 0) {
      return common::PermissionDeniedError("measurement: manifest file " + path + " was not measured");
    }
  }
  return Status::Ok();
}

}  // namespace agentroot::attestation
