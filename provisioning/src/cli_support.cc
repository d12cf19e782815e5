#include "agentroot/provisioning/cli_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <cstdio>
#include <ctime>
#include <limits>

#include "agentroot/common/bytes.h"
#include "agentroot/http/http.h"

namespace agentroot::provisioning {
namespace {

using common::InvalidArgumentError;
using common::Result;
using common::Status;
using common::StatusCode;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ParseDigits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  out = value;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// "YYYY-MM-DD" at the start of `text`; days since the epoch.
bool ParseDate(std::string_view text, int64_t& days) {
  int y = 0, m = 0, d = 0;
  if (text.size() < 10 || text[4] != '-' || text[7] != '-' || !ParseDigits(text, 0, 4, y) ||
      !ParseDigits(text, 5, 2, m) || !ParseDigits(text, 8, 2, d)) {
    return false;
  }
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > DaysInMonth(y, m)) return false;
  days = DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
  return true;
}

std::string ProblemText(const common::Json& body, std::string_view key) {
  auto it = body.find(std::string(key));
  if (it == body.end() || !it->is_string()) return "";
  return OneLine(it->get<std::string>());
}

}  // namespace

std::string_view ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  ok\n"
         "  1  internal or unexpected error\n"
         "  2  usage error or bad local input (flags, manifest file, unreadable file)\n"
         "  3  not found (404)\n"
         "  4  refused: authentication or permission (401/403), operator certificate\n"
         "     expired or not yet valid\n"
         "  5  conflict or wrong state (409)\n"
         "  6  verifier unreachable, TLS failure, rate limited (429) or server error (5xx)\n"
         "  7  audit verification failed\n"
         "  8  inventory findings with --fail-on-findings\n";
}

int ExitCodeForStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return kExitUsage;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied:
      return kExitRefused;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
      return kExitConflict;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kResourceExhausted:
      return kExitUnavailable;
    case StatusCode::kDataLoss:
      return kExitAuditFailed;
    default:
      return kExitInternal;
  }
}

Status StatusForHttp(int http_status, std::string_view body) {
  if (http_status >= 200 && http_status < 300) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  if (http_status == 400) code = StatusCode::kInvalidArgument;
  else if (http_status == 401) code = StatusCode::kUnauthenticated;
  else if (http_status == 403) code = StatusCode::kPermissionDenied;
  else if (http_status == 404) code = StatusCode::kNotFound;
  else if (http_status == 409) code = StatusCode::kFailedPrecondition;
  else if (http_status == 429) code = StatusCode::kResourceExhausted;
  else if (http_status >= 500 && http_status < 600) code = StatusCode::kUnavailable;

  std::string title, detail;
  auto parsed = common::ParseJsonStrict(body);
  if (parsed.ok() && parsed->is_object()) {
    title = ProblemText(*parsed, "title");
    detail = ProblemText(*parsed, "detail");
    if (title.empty()) title = ProblemText(*parsed, "error");  // OAuth errors
    if (detail.empty()) detail = ProblemText(*parsed, "error_description");
  }
  if (title.empty()) title = std::string(http::ReasonPhrase(http_status));
  std::string message = std::to_string(http_status) + " " + title;
  if (!detail.empty()) message += ": " + detail;
  return Status(code, std::move(message));
}

Result<int64_t> ParseDuration(std::string_view text) {
  if (text.size() < 2) return InvalidArgumentError("bad duration '" + OneLine(text) + "' (use 90s, 30m, 2h or 7d)");
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: break;
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (unit == 0 || ec != std::errc() || end != digits.data() + digits.size() || value <= 0 ||
      digits.front() == '+' || value > 100LL * 366 * 86400 / unit) {
    return InvalidArgumentError("bad duration '" + OneLine(text) + "' (use 90s, 30m, 2h or 7d)");
  }
  return value * unit;
}

Result<int64_t> ParseTime(std::string_view text) {
  auto bad = [&] {
    return InvalidArgumentError("bad time '" + OneLine(text) +
                                "' (use YYYY-MM-DD, RFC 3339 like 2025-03-01T12:00:00Z, or Unix seconds)");
  };
  if (text.empty()) return bad();
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return bad();
    return value;
  }
  int64_t days = 0;
  if (!ParseDate(text, days)) return bad();
  if (text.size() == 10) return days * 86400;
  // RFC 3339 date-time: T HH:MM:SS [.frac] (Z | +HH:MM | -HH:MM)
  int hh = 0, mm = 0, ss = 0;
  if (text.size() < 20 || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || text[13] != ':' ||
      text[16] != ':' || !ParseDigits(text, 11, 2, hh) || !ParseDigits(text, 14, 2, mm) ||
      !ParseDigits(text, 17, 2, ss) || hh > 23 || mm > 59 || ss > 60) {
    return bad();
  }
  std::size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return bad();
  }
  int64_t offset = 0;
  std::string_view zone = text.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else {
    int oh = 0, om = 0;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' ||
        !ParseDigits(zone, 1, 2, oh) || !ParseDigits(zone, 4, 2, om) || oh > 23 || om > 59) {
      return bad();
    }
    offset = (zone[0] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  return days * 86400 + hh * 3600 + mm * 60 + std::min(ss, 59) - offset;
}

std::string FormatTime(int64_t unix_seconds, std::string_view zero) {
  if (unix_seconds == 0) return std::string(zero);
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
  return buf;
}

Result<attestation::store::AuditAnchor> ParseAnchor(std::string_view text) {
  auto bad = [&] { return InvalidArgumentError("bad anchor '" + OneLine(text) + "' (use SEQ:HASH, HASH 64 hex digits)"); };
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view seq_text = text.substr(0, colon);
  std::string_view hash_text = text.substr(colon + 1);
  attestation::store::AuditAnchor anchor;
  auto [end, ec] = std::from_chars(seq_text.data(), seq_text.data() + seq_text.size(), anchor.seq);
  if (ec != std::errc() || end != seq_text.data() + seq_text.size() || anchor.seq < 0) return bad();
  auto hash = common::HexDecode(hash_text);
  if (!hash.ok() || hash->size() != attestation::store::kAuditHashSize) return bad();
  anchor.hash = std::move(*hash);
  return anchor;
}

std::string FormatAnchor(const attestation::store::AuditAnchor& anchor) {
  return std::to_string(anchor.seq) + ":" + common::HexEncode(anchor.hash);
}

Result<std::string> ReadLocalFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError("cannot read " + std::string(what) + " " + path + ": " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return InvalidArgumentError("cannot read " + std::string(what) + " " + path);
  return buf.str();
}

Status WriteNewFile(const std::string& path, std::string_view content, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) return common::AlreadyExistsError(path + " exists; refusing to overwrite it");
    return InvalidArgumentError("cannot create " + path + ": " + std::strerror(err));
  }
  // The umask may have narrowed the mode; a key file must be exactly 0600.
  bool ok = ::fchmod(fd, static_cast<mode_t>(mode)) == 0;
  std::size_t done = 0;
  while (ok && done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  const int err = errno;
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    ::unlink(path.c_str());
    return InvalidArgumentError("cannot write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

}  // namespace agentroot::provisioning
