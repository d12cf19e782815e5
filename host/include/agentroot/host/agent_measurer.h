// Local agent manifests, caller identification and measurement
// (docs/hostd.md "Who the caller is", "Local agent manifests").
//
// A caller is identified only by what the kernel says about it: the pid, uid
// and gid of SO_PEERCRED, the executable behind /proc/<pid>/exe, and the
// process start time (field 22 of /proc/<pid>/stat, which tells a reused pid
// apart). It matches a manifest when its executable path equals the
// manifest's `exe` (symlinks resolved) and, when the manifest names a uid,
// its uid equals it. Nothing the client sends takes part.
//
// Measuring hashes (SHA-256) the file the process is running — opened
// through /proc/<pid>/exe, so a binary replaced on disk after the start is
// still the one measured — and each manifest file in order. The result is
// cached per (pid, start time) and reused while the executable's and the
// files' (device, inode, size, mtime) are unchanged; a changed file is
// hashed again. The start time is checked again after hashing, so a pid that
// exits and is reused meanwhile is refused instead of measured as the wrong
// process.
//
// Thread safety: AgentMeasurer is safe to call from several threads; the
// cache has its own mutex, hashing runs outside it.
#ifndef AGENTROOT_HOST_AGENT_MEASURER_H_
#define AGENTROOT_HOST_AGENT_MEASURER_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/attestation/measurement.h"
#include "agentroot/common/status.h"

namespace agentroot::host {

enum class ProofMode { kTpm, kSession };
std::string_view ProofModeName(ProofMode mode);

struct AgentManifest {
  std::string name;                  // [A-Za-z0-9._-]{1,64}
  std::filesystem::path exe;         // absolute
  std::optional<uint32_t> uid;       // only this uid may act as the agent
  std::vector<std::string> files;    // absolute paths, measured in this order
  ProofMode proof_mode = ProofMode::kTpm;
  std::filesystem::path source;      // the manifest file
};

// One manifest from TOML text (`source` names it in errors).
common::Result<AgentManifest> ParseAgentManifest(std::string_view toml_text, const std::filesystem::path& source);

struct ManifestSet {
  std::vector<AgentManifest> manifests;
  std::vector<std::string> errors;  // files that were skipped, and why
};
// Every *.toml in `dir`, sorted by file name. A bad file, a second manifest
// with the same name, or the same (exe, uid) as an earlier one is skipped and
// reported in `errors`. NOT_FOUND when `dir` cannot be read.
common::Result<ManifestSet> LoadAgentManifests(const std::filesystem::path& dir);

// What the kernel says about a peer.
struct ProcessInfo {
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::filesystem::path exe;   // /proc/<pid>/exe, " (deleted)" removed
  uint64_t start_time = 0;     // clock ticks since boot
};

// Reads /proc/<pid>/exe and /proc/<pid>/stat under `proc_root`. NOT_FOUND
// when the process is gone, PERMISSION_DENIED when it cannot be inspected.
common::Result<ProcessInfo> InspectProcess(int32_t pid, uint32_t uid, uint32_t gid,
                                           const std::filesystem::path& proc_root = "/proc");

// The measured part of one caller: what goes into a MeasurementEvent.
struct AgentMeasurement {
  std::string exe_sha256_hex;
  std::vector<attestation::MeasuredFile> files;
  // SHA-256 hex over the above, to compare two measurements cheaply.
  std::string Fingerprint() const;
};

struct MeasurerStats {
  uint64_t measurements = 0;  // Measure() calls that succeeded
  uint64_t cache_hits = 0;    // ... answered without hashing
  uint64_t files_hashed = 0;  // executables and files hashed
};

class AgentMeasurer {
 public:
  explicit AgentMeasurer(std::vector<AgentManifest> manifests, std::filesystem::path proc_root = "/proc");

  // The manifest `process` matches; NOT_FOUND (with the executable and uid in
  // the message) when none does.
  common::Result<AgentManifest> Match(const ProcessInfo& process) const;

  // Hashes the process's executable and the manifest's files (or reuses the
  // cached result, see above). NOT_FOUND for a missing file, ABORTED when the
  // process changed while it was measured.
  common::Result<AgentMeasurement> Measure(const ProcessInfo& process, const AgentManifest& manifest);

  // Drops cache entries of processes that no longer exist.
  void Prune();

  MeasurerStats stats() const;
  const std::vector<AgentManifest>& manifests() const { return manifests_; }

 private:
  struct FileStamp {
    uint64_t dev = 0, ino = 0;
    int64_t size = 0, mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  struct Entry {
    std::string manifest_name;
    std::vector<FileStamp> stamps;  // exe first, then the files
    AgentMeasurement measurement;
  };
  common::Result<std::vector<FileStamp>> Stamps(const ProcessInfo& process, const AgentManifest& manifest) const;

  std::vector<AgentManifest> manifests_;
  std::filesystem::path proc_root_;
  mutable std::mutex mu_;
  std::map<std::pair<int32_t, uint64_t>, Entry> cache_;
  MeasurerStats stats_;
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_AGENT_MEASURER_H_
