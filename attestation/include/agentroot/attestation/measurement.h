// The agent measurement log and the binding of a quote to one request.
//
// hostd measures every agent process that asks it for a token (issue 5): the
// SHA-256 of its executable and of each file its manifest lists. It appends
// the event to the host's measurement log and extends it into a configurable
// PCR (default 15: not reset at runtime and not used by firmware). The event
// digest is SHA-256 of the event's canonical JSON (sorted keys, no spaces).
// The PCR value after the log is
//   PCR_0 = 0^32,  PCR_i = SHA-256(PCR_{i-1} || digest(event_i)).
// The verifier replays the log it is given, and accepts it only if the result
// equals the quoted value of that PCR. An edited, dropped, reordered or
// inserted entry changes the result (THREATS.md #5).
//
// A quote answers one challenge for one agent key and one measurement: its
// qualifying data is QualifyingData(nonce, agent key Name, event digest),
// so it cannot be replayed for another nonce, key or measurement (#2, #9).
//
// Thread safety: pure functions over values.
#ifndef AGENTROOT_ATTESTATION_MEASUREMENT_H_
#define AGENTROOT_ATTESTATION_MEASUREMENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

inline constexpr uint32_t kDefaultMeasurementPcr = 15;

struct MeasuredFile {
  std::string path;
  std::string sha256_hex;  // lower-case hex
  bool operator==(const MeasuredFile&) const = default;
};

struct MeasurementEvent {
  uint64_t sequence = 0;      // 1, 2, ... per host boot
  int64_t time = 0;           // Unix seconds, informational only
  std::string agent_id;       // the agent the caller claims to be ("" if unknown)
  uint32_t pid = 0;
  uint32_t uid = 0;
  std::string exe_path;
  std::string exe_sha256_hex;
  std::vector<MeasuredFile> files;  // in manifest order
  bool operator==(const MeasurementEvent&) const = default;
};

// Canonical JSON and its digest.
common::Json EventToJson(const MeasurementEvent& event);
common::Result<MeasurementEvent> EventFromJson(const common::Json& json);
common::Bytes EventDigest(const MeasurementEvent& event);

// The PCR value after extending each event's digest, starting from 32 zero
// bytes (or `initial`).
common::Bytes ReplayLog(const std::vector<MeasurementEvent>& events,
                        const common::Bytes& initial = common::Bytes(32, 0));

// JSON lines, one event per line; INVALID_ARGUMENT names the bad line.
std::string SerializeLog(const std::vector<MeasurementEvent>& events);
common::Result<std::vector<MeasurementEvent>> ParseLog(std::string_view jsonl);

// SHA-256("agentroot/attest/v1" || 0x00 || nonce || key_name || event_digest)
// with each variable-length part length-prefixed (u16, big-endian).
common::Bytes QualifyingData(common::ByteView nonce, common::ByteView agent_key_name,
                             common::ByteView event_digest);

// The same construction for key certification (TPM2_Certify of an agent key):
// SHA-256("agentroot/certify/v1" || 0x00 || nonce).
common::Bytes CertifyQualifyingData(common::ByteView nonce);

// A shadow agent as hostd reports it (POST /v1/hosts/{host_id}/shadow-agents):
// a process that asked for credentials and matched no agent manifest.
struct ShadowReport {
  int64_t time = 0;
  int64_t pid = 0;
  int64_t uid = 0;
  int64_t gid = 0;
  std::string exe_path;
  std::string exe_sha256_hex;  // may be empty: the executable could not be read
  bool operator==(const ShadowReport&) const = default;
};
// {time, pid, uid, gid, exe_path, exe_sha256}; FromJson refuses missing or
// mistyped members, members it does not know, and out-of-range values.
common::Json ShadowReportToJson(const ShadowReport& report);
common::Result<ShadowReport> ShadowReportFromJson(const common::Json& json);
// The qualifying data of the TPM2_Quote that signs a report:
// SHA-256("agentroot shadow report v1" || nonce || SHA-256(canonical JSON of
// the report)); canonical JSON = ShadowReportToJson, members sorted, no
// whitespace.
common::Bytes ShadowReportQualifyingData(common::ByteView nonce, const ShadowReport& report);

// What an approved manifest says an agent is.
struct ManifestDigests {
  std::string exe_sha256_hex;
  std::map<std::string, std::string> files;  // path -> sha256 hex
};

// A manifest's content (what `agentroot agents register --manifest FILE`
// sends and the verifier stores): a JSON object with "exe_sha256" (64 hex
// digits) and optionally "files" (path -> 64 hex digits); other members
// ("model_id", "allowed_tools", ...) are kept for reviewers and not
// appraised. INVALID_ARGUMENT naming what is wrong otherwise.
common::Result<ManifestDigests> ParseManifestDigests(const common::Json& content);

// OK when `event` is exactly what `manifest` describes: the executable's
// digest, and every manifest file measured with its digest and nothing else.
// PERMISSION_DENIED with the first mismatch otherwise.
common::Status MatchManifest(const MeasurementEvent& event, const ManifestDigests& manifest);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_MEASUREMENT_H_
