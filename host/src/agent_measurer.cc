#include "agentroot/host/agent_measurer.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/signer.h"
#include "agentroot/hsm/key_manager.h"

namespace agentroot::host {

namespace fs = std::filesystem;
using common::Result;
using common::Status;

namespace {

// errno of a failed open/stat as a Status.
Status FileError(const std::string& what, const fs::path& path, int err) {
  std::string message = what + " " + path.string() + ": " + std::strerror(err);
  if (err == ENOENT || err == ESRCH) return common::NotFoundError(message);
  if (err == EACCES || err == EPERM) return common::PermissionDeniedError(message);
  return common::InternalError(message);
}

// SHA-256 of an open file descriptor, streamed.
Result<std::string> HashFd(int fd, const fs::path& path) {
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return common::InternalError("EVP sha256");
  std::vector<unsigned char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError("cannot read", path, errno);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return common::HexEncode(common::ByteView(md, len));
}

Result<std::string> HashFile(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return FileError("cannot open", path, errno);
  auto digest = HashFd(fd, path);
  ::close(fd);
  return digest;
}

Result<uint64_t> StartTime(const fs::path& proc_pid) {
  std::ifstream in(proc_pid / "stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return common::NotFoundError("process " + proc_pid.string() + " is gone");
  // The command name (field 2) may contain spaces and ')': parse after the last ')'.
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return common::InternalError("unexpected " + (proc_pid / "stat").string());
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  // Fields 3.. follow; the start time is field 22, the 20th from here.
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return common::InternalError("unexpected " + (proc_pid / "stat").string());
  }
  return std::stoull(field);
}

}  // namespace

std::string_view ProofModeName(ProofMode mode) { return mode == ProofMode::kTpm ? "tpm" : "session"; }

Result<AgentManifest> ParseAgentManifest(std::string_view toml_text, const fs::path& source) {
  toml::table t;
  try {
    t = toml::parse(toml_text, source.string());
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return common::InvalidArgumentError("manifest " + source.string() + ": " + std::string(e.description()) +
                                        " at " + where.str());
  }
  auto err = [&](const std::string& what) {
    return common::InvalidArgumentError("manifest " + source.string() + ": " + what);
  };
  static const std::set<std::string> kKnown = {"name", "exe", "uid", "files", "proof_mode"};
  for (const auto& [key, value] : t) {
    if (kKnown.count(std::string(key.str())) == 0) return err("unknown key " + std::string(key.str()));
  }
  AgentManifest m;
  m.source = source;
  auto name = t["name"].value<std::string>();
  if (!name || !hsm::ValidateKeyId(*name).ok()) return err("name must be 1-64 characters of [A-Za-z0-9._-]");
  m.name = *name;
  auto exe = t["exe"].value<std::string>();
  if (!exe || exe->empty() || (*exe)[0] != '/') return err("exe must be an absolute path");
  m.exe = fs::path(*exe).lexically_normal();
  if (auto uid = t["uid"]; uid) {
    auto v = uid.value<int64_t>();
    if (!v || *v < 0 || *v > 0xFFFFFFFELL) return err("uid must be a non-negative integer");
    m.uid = static_cast<uint32_t>(*v);
  }
  if (auto files = t["files"]; files) {
    auto* array = files.as_array();
    if (array == nullptr) return err("files must be an array of absolute paths");
    for (const auto& f : *array) {
      auto path = f.value<std::string>();
      if (!path || path->empty() || (*path)[0] != '/') return err("files must be an array of absolute paths");
      m.files.push_back(*path);
    }
    if (m.files.size() > 64) return err("at most 64 files");
  }
  std::string mode = t["proof_mode"].value_or(std::string("tpm"));
  if (mode == "tpm") {
    m.proof_mode = ProofMode::kTpm;
  } else if (mode == "session") {
    m.proof_mode = ProofMode::kSession;
  } else {
    return err("proof_mode must be \"tpm\" or \"session\"");
  }
  return m;
}

Result<ManifestSet> LoadAgentManifests(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".toml") paths.push_back(it->path());
  }
  if (ec) return common::NotFoundError("manifests directory " + dir.string() + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  ManifestSet set;
  std::set<std::string> names;
  std::set<std::pair<std::string, int64_t>> identities;
  for (const auto& path : paths) {
    std::ifstream in(path);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in) {
      set.errors.push_back("manifest " + path.string() + ": cannot read");
      continue;
    }
    auto m = ParseAgentManifest(buf.str(), path);
    if (!m.ok()) {
      set.errors.push_back(std::string(m.status().message()));
      continue;
    }
    if (!names.insert(m->name).second) {
      set.errors.push_back("manifest " + path.string() + ": agent " + m->name + " is already defined");
      continue;
    }
    if (!identities.insert({m->exe.string(), m->uid ? int64_t{*m->uid} : -1}).second) {
      set.errors.push_back("manifest " + path.string() + ": another manifest has the same exe and uid");
      continue;
    }
    set.manifests.push_back(std::move(*m));
  }
  return set;
}

Result<ProcessInfo> InspectProcess(int32_t pid, uint32_t uid, uint32_t gid, const fs::path& proc_root) {
  if (pid <= 0) return common::InvalidArgumentError("no peer pid");
  ProcessInfo p;
  p.pid = pid;
  p.uid = uid;
  p.gid = gid;
  fs::path proc_pid = proc_root / std::to_string(pid);
  AR_ASSIGN_OR_RETURN(p.start_time, StartTime(proc_pid));
  std::error_code ec;
  fs::path exe = fs::read_symlink(proc_pid / "exe", ec);
  if (ec) return FileError("cannot inspect", proc_pid / "exe", ec.value());
  std::string s = exe.string();
  constexpr std::string_view kDeleted = " (deleted)";
  if (s.size() > kDeleted.size() && s.compare(s.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
    s.resize(s.size() - kDeleted.size());
  }
  p.exe = s;
  return p;
}

std::string AgentMeasurement::Fingerprint() const {
  std::string text = exe_sha256_hex;
  for (const auto& f : files) text += "\n" + f.path + "\n" + f.sha256_hex;
  return common::HexEncode(common::Sha256(common::AsBytes(text)));
}

AgentMeasurer::AgentMeasurer(std::vector<AgentManifest> manifests, fs::path proc_root)
    : manifests_(std::move(manifests)), proc_root_(std::move(proc_root)) {}

Result<AgentManifest> AgentMeasurer::Match(const ProcessInfo& process) const {
  for (const auto& m : manifests_) {
    std::error_code ec;
    fs::path exe = fs::weakly_canonical(m.exe, ec);
    if (ec) exe = m.exe;
    if (exe != process.exe) continue;
    if (m.uid && *m.uid != process.uid) continue;
    return m;
  }
  return common::NotFoundError("no agent manifest matches executable " + process.exe.string() + " with uid " +
                               std::to_string(process.uid));
}

Result<std::vector<AgentMeasurer::FileStamp>> AgentMeasurer::Stamps(const ProcessInfo& process,
                                                                     const AgentManifest& manifest) const {
  std::vector<FileStamp> stamps;
  auto stamp = [&](const fs::path& path) -> Status {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return FileError("cannot stat", path, errno);
    stamps.push_back({static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec});
    return Status::Ok();
  };
  AR_RETURN_IF_ERROR(stamp(proc_root_ / std::to_string(process.pid) / "exe"));
  for (const auto& f : manifest.files) AR_RETURN_IF_ERROR(stamp(f));
  return stamps;
}

Result<AgentMeasurement> AgentMeasurer::Measure(const ProcessInfo& process, const AgentManifest& manifest) {
  AR_ASSIGN_OR_RETURN(std::vector<FileStamp> stamps, Stamps(process, manifest));
  const auto key = std::make_pair(process.pid, process.start_time);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.manifest_name == manifest.name && it->second.stamps == stamps) {
      ++stats_.measurements;
      ++stats_.cache_hits;
      return it->second.measurement;
    }
  }
  AgentMeasurement m;
  fs::path exe = proc_root_ / std::to_string(process.pid) / "exe";
  AR_ASSIGN_OR_RETURN(m.exe_sha256_hex, HashFile(exe));
  for (const auto& f : manifest.files) {
    AR_ASSIGN_OR_RETURN(std::string digest, HashFile(f));
    m.files.push_back({f, std::move(digest)});
  }
  // The same process, and files that did not change while they were hashed.
  auto again = StartTime(proc_root_ / std::to_string(process.pid));
  AR_ASSIGN_OR_RETURN(std::vector<FileStamp> after, Stamps(process, manifest));
  if (!again.ok() || *again != process.start_time || after != stamps) {
    return common::AbortedError("the process or its files changed while they were measured");
  }
  std::lock_guard<std::mutex> lock(mu_);
  cache_[key] = Entry{manifest.name, std::move(stamps), m};
  ++stats_.measurements;
  stats_.files_hashed += 1 + manifest.files.size();
  return m;
}

void AgentMeasurer::Prune() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    auto start = StartTime(proc_root_ / std::to_string(it->first.first));
    if (!start.ok() || *start != it->first.second) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

MeasurerStats AgentMeasurer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace agentroot::host
