// MeasurementLog: hostd's agent measurement log, persisted as JSON lines
// (docs/hostd.md "State directory"; format attestation::SerializeLog).
//
// Append() writes the event's line and fsyncs the file *before* the caller
// extends the PCR, so a crash can leave at most a logged event that was
// never extended (Reconcile() then drops it) but never an extend the log
// does not explain. Reconcile() compares the replayed log with the PCR:
//   equal                       -> carry on;
//   PCR at its reset value      -> the TPM restarted: the old log is kept as
//                                  measurements.<unix time>.jsonl and a new
//                                  one starts (sequence 1);
//   log minus its last event    -> the last append was not extended (crash
//     equal                        between fsync and extend): it is dropped;
//   anything else               -> FAILED_PRECONDITION: hostd must not serve.
//
// Thread safety: none; hostd serializes every use under the mutex that also
// covers the PCR extend and the quote.
#ifndef AGENTROOT_HOST_MEASUREMENT_LOG_H_
#define AGENTROOT_HOST_MEASUREMENT_LOG_H_

#include <filesystem>
#include <memory>
#include <vector>

#include "agentroot/attestation/measurement.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::host {

enum class ReconcileOutcome { kConsistent, kDroppedUnextended, kReset };

class MeasurementLog {
 public:
  // Opens (creating if needed, mode 0600) `path` and parses it. A last line
  // without its newline (a torn write) is dropped; any other bad line is
  // DATA_LOSS naming the line.
  static common::Result<std::unique_ptr<MeasurementLog>> Open(std::filesystem::path path);
  ~MeasurementLog();

  common::Result<ReconcileOutcome> Reconcile(common::ByteView pcr_value, int64_t now);

  // Assigns the next sequence number, writes and fsyncs. Returns the event
  // as logged.
  common::Result<attestation::MeasurementEvent> Append(attestation::MeasurementEvent event);
  // Removes the last event (its extend failed).
  common::Status RemoveLast();

  const std::vector<attestation::MeasurementEvent>& events() const { return events_; }
  // ReplayLog(events()).
  const common::Bytes& expected_pcr() const { return expected_; }
  std::string Serialize() const { return attestation::SerializeLog(events_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  MeasurementLog(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  common::Status Rewrite();

  std::filesystem::path path_;
  int fd_;
  std::vector<attestation::MeasurementEvent> events_;
  common::Bytes expected_ = common::Bytes(32, 0);
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_MEASUREMENT_LOG_H_
