// What the executables share for their operational output: structured logs
// as JSON lines on stderr, and reading the files their configuration names.
//
// Log lines carry {"ts","level","msg"} plus the caller's fields. Never put
// key material, PINs or whole tokens in them (make test scans every test log
// for those, THREATS.md #20).
//
// Thread safety: LogJson may be called from several threads; each line is
// written whole.
#ifndef AGENTROOT_COMMON_LOG_H_
#define AGENTROOT_COMMON_LOG_H_

#include <string>
#include <string_view>

#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

// One JSON line on stderr. `fields` must be an object (or null).
void LogJson(std::string_view level, std::string_view message, Json fields = Json::object());

// The whole file. NOT_FOUND "<what>: cannot read <path>" when it cannot be
// opened, e.g. ReadConfiguredFile("/etc/x.pem", "server.tls_certificate").
Result<std::string> ReadConfiguredFile(const std::string& path, std::string_view what);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_LOG_H_
