#include "agentroot/common/log.h"

#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include "agentroot/common/clock.h"

namespace agentroot::common {

void LogJson(std::string_view level, std::string_view message, Json fields) {
  static std::mutex mu;
  if (!fields.is_object()) fields = Json::object();
  fields["ts"] = Clock::System().NowUnixSeconds();
  fields["level"] = level;
  fields["msg"] = message;
  const std::string line = fields.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mu);
  std::cerr << line << std::flush;
}

Result<std::string> ReadConfiguredFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(std::string(what) + ": cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace agentroot::common
