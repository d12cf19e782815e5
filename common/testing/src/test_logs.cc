#include "agentroot/common/testing/test_logs.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace agentroot::common::testing {

void KeepLogForScan(const std::filesystem::path& log, std::string_view name) {
  static std::atomic<int> counter{0};
  const char* dir = std::getenv("AGENTROOT_TEST_LOG_DIR");
  if (dir == nullptr || *dir == '\0') return;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(log, ec)) return;
  std::filesystem::create_directories(dir, ec);
  const std::filesystem::path target =
      std::filesystem::path(dir) /
      (std::string(name) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".log");
  std::filesystem::copy_file(log, target, std::filesystem::copy_options::overwrite_existing, ec);
}

void KeepLogsUnder(const std::filesystem::path& dir, std::string_view name) {
  if (std::getenv("AGENTROOT_TEST_LOG_DIR") == nullptr) return;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".log") KeepLogForScan(it->path(), name);
  }
}

}  // namespace agentroot::common::testing
