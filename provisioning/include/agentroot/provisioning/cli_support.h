// Building blocks of the `agentroot` operator CLI that scripts rely on: the
// exit codes, the mapping from HTTP answers and Status codes to them, and the
// parsing of durations, times and audit anchors given on the command line.
//
// Thread safety: pure functions.
#ifndef AGENTROOT_PROVISIONING_CLI_SUPPORT_H_
#define AGENTROOT_PROVISIONING_CLI_SUPPORT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::provisioning {

// The exit codes of `agentroot` (documented in --help, docs/cli.md and
// provisioning/README.md). Stable: scripts branch on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,       // internal or unexpected failure
  kExitUsage = 2,          // usage error or bad local input (flags, files)
  kExitNotFound = 3,       // 404
  kExitRefused = 4,        // 401/403, expired or not-yet-valid operator certificate
  kExitConflict = 5,       // 409: already exists, wrong state
  kExitUnavailable = 6,    // unreachable, TLS failure, 429, 5xx
  kExitAuditFailed = 7,    // audit verify: the chain does not verify
  kExitFindings = 8,       // inventory --fail-on-findings with findings
};

// The help text listing the exit codes (one per line).
std::string_view ExitCodeHelp();

// The exit code for a failed Status. The CLI keeps this mapping:
//   INVALID_ARGUMENT, OUT_OF_RANGE             -> 2
//   NOT_FOUND                                  -> 3
//   UNAUTHENTICATED, PERMISSION_DENIED         -> 4
//   ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED -> 5
//   UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED -> 6
//   DATA_LOSS                                  -> 7
//   anything else (INTERNAL, ...)              -> 1
// Local files that cannot be read are reported as INVALID_ARGUMENT (2), so a
// NOT_FOUND always means the verifier answered 404.
int ExitCodeForStatus(const common::Status& status);

// The Status for an HTTP answer from the verifier: OK for 2xx; otherwise a
// code per status (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403
// PERMISSION_DENIED, 404 NOT_FOUND, 409 FAILED_PRECONDITION, 429
// RESOURCE_EXHAUSTED, 5xx UNAVAILABLE, other INTERNAL) whose message is
// "<status> <title>: <detail>" from an RFC 9457 problem body (or the OAuth
// error / the reason phrase when the body is no problem). Control characters
// in the server's text are replaced so the error stays one line.
common::Status StatusForHttp(int http_status, std::string_view body);

// DURATION: a positive integer followed by s, m, h or d ("90s", "30m", "2h",
// "7d"), in seconds. INVALID_ARGUMENT otherwise or above 100 years.
common::Result<int64_t> ParseDuration(std::string_view text);

// TIME: "YYYY-MM-DD" (00:00:00 UTC of that day), RFC 3339
// ("2025-03-01T12:00:00Z", "2025-03-01T12:00:00+02:00", fractional seconds
// ignored) or Unix seconds ("1740830400"), in Unix seconds.
common::Result<int64_t> ParseTime(std::string_view text);

// UTC "YYYY-MM-DD HH:MM"; `zero` (e.g. "never", "-") for 0.
std::string FormatTime(int64_t unix_seconds, std::string_view zero = "-");

// "SEQ:HASH" (HASH 64 hex digits) as printed by `audit export` and
// `audit verify`.
common::Result<attestation::store::AuditAnchor> ParseAnchor(std::string_view text);
std::string FormatAnchor(const attestation::store::AuditAnchor& anchor);

// The whole of a local file the user named. INVALID_ARGUMENT "cannot read
// <what> <path>: <reason>" when it cannot be read (exit code 2), so it is
// never confused with the verifier's 404.
common::Result<std::string> ReadLocalFile(const std::string& path, std::string_view what);

// Creates `path` with O_CREAT|O_EXCL|O_NOFOLLOW and `mode` (0600 for keys)
// and writes `content`; ALREADY_EXISTS when something is there (nothing is
// ever overwritten), INVALID_ARGUMENT for other failures. A partly written
// file is removed.
common::Status WriteNewFile(const std::string& path, std::string_view content, unsigned mode);

// Replaces control characters (CR, LF, ...) by spaces: text from the server
// or from files that goes into a one-line message.
std::string OneLine(std::string_view text);

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_CLI_SUPPORT_H_
