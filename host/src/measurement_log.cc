#include "agentroot/host/measurement_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agentroot/common/signer.h"

namespace agentroot::host {

namespace fs = std::filesystem;
using attestation::MeasurementEvent;
using common::Result;
using common::Status;

namespace {

Status Errno(const std::string& what, const fs::path& path) {
  return common::InternalError(what + " " + path.string() + ": " + std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

Status FsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : Errno("cannot fsync", dir);
}

}  // namespace

Result<std::unique_ptr<MeasurementLog>> MeasurementLog::Open(fs::path path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open the measurement log", path);
  auto log = std::unique_ptr<MeasurementLog>(new MeasurementLog(path, fd));
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  bool torn = !text.empty() && text.back() != '\n';
  if (torn) text.resize(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  auto events = attestation::ParseLog(text);
  if (!events.ok()) {
    return common::DataLossError("measurement log " + path.string() + ": " + std::string(events.status().message()));
  }
  log->events_ = std::move(events).value();
  for (std::size_t i = 0; i < log->events_.size(); ++i) {
    if (log->events_[i].sequence != i + 1) {
      return common::DataLossError("measurement log " + path.string() + ": sequence breaks at line " +
                                   std::to_string(i + 1));
    }
  }
  log->expected_ = attestation::ReplayLog(log->events_);
  if (torn) AR_RETURN_IF_ERROR(log->Rewrite());
  return log;
}

MeasurementLog::~MeasurementLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status MeasurementLog::Rewrite() {
  fs::path tmp = path_;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  Status written = WriteAll(fd, Serialize(), tmp);
  if (written.ok() && ::fsync(fd) != 0) written = Errno("cannot fsync", tmp);
  ::close(fd);
  AR_RETURN_IF_ERROR(written);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("cannot rename", tmp);
  AR_RETURN_IF_ERROR(FsyncDir(path_.parent_path().empty() ? fs::path(".") : path_.parent_path()));
  int reopened = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (reopened < 0) return Errno("cannot open", path_);
  ::close(fd_);
  fd_ = reopened;
  return Status::Ok();
}

Result<ReconcileOutcome> MeasurementLog::Reconcile(common::ByteView pcr_value, int64_t now) {
  common::Bytes pcr(pcr_value.begin(), pcr_value.end());
  if (pcr == expected_) return ReconcileOutcome::kConsistent;
  if (pcr == common::Bytes(32, 0)) {
    fs::path archived = path_.parent_path() / ("measurements." + std::to_string(now) + ".jsonl");
    for (int i = 1; fs::exists(archived); ++i) {
      archived = path_.parent_path() / ("measurements." + std::to_string(now) + "-" + std::to_string(i) + ".jsonl");
    }
    if (!events_.empty() && ::rename(path_.c_str(), archived.c_str()) != 0) return Errno("cannot archive", path_);
    events_.clear();
    expected_ = pcr;
    AR_RETURN_IF_ERROR(Rewrite());
    return ReconcileOutcome::kReset;
  }
  if (!events_.empty()) {
    std::vector<MeasurementEvent> shorter(events_.begin(), events_.end() - 1);
    if (attestation::ReplayLog(shorter) == pcr) {
      events_.pop_back();
      expected_ = pcr;
      AR_RETURN_IF_ERROR(Rewrite());
      return ReconcileOutcome::kDroppedUnextended;
    }
  }
  return common::FailedPreconditionError(
      "the measurement log " + path_.string() + " (" + std::to_string(events_.size()) +
      " events) does not replay to the PCR's value " + common::HexEncode(pcr) +
      ": something else extended the measurement PCR, or the log was edited");
}

Result<MeasurementEvent> MeasurementLog::Append(MeasurementEvent event) {
  event.sequence = events_.size() + 1;
  std::string line = attestation::SerializeLog({event});
  if (line.empty() || line.back() != '\n') line += '\n';
  AR_RETURN_IF_ERROR(WriteAll(fd_, line, path_));
  if (::fdatasync(fd_) != 0) return Errno("cannot fsync", path_);
  events_.push_back(event);
  expected_ = attestation::ReplayLog({event}, expected_);
  return event;
}

Status MeasurementLog::RemoveLast() {
  if (events_.empty()) return Status::Ok();
  events_.pop_back();
  expected_ = attestation::ReplayLog(events_);
  return Rewrite();
}

}  // namespace agentroot::host
