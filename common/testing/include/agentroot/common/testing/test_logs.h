// Keeping the logs of a test's helper processes for `make test`'s secret scan
// (THREATS.md #20): fixtures delete their directories, so before they do they
// copy their logs to $AGENTROOT_TEST_LOG_DIR (set by `make test`), where
// scripts/scan-test-logs.py reads them after the run.
#ifndef AGENTROOT_COMMON_TESTING_TEST_LOGS_H_
#define AGENTROOT_COMMON_TESTING_TEST_LOGS_H_

#include <filesystem>
#include <string_view>

namespace agentroot::common::testing {

// When $AGENTROOT_TEST_LOG_DIR is set, copies `log` there as
// "<name>-<pid>-<n>.log"; otherwise, or when `log` does not exist, nothing.
// Best effort: a failed copy is not an error of the test.
void KeepLogForScan(const std::filesystem::path& log, std::string_view name);

// KeepLogForScan for every regular file named "*.log" under `dir`.
void KeepLogsUnder(const std::filesystem::path& dir, std::string_view name);

}  // namespace agentroot::common::testing

#endif  // AGENTROOT_COMMON_TESTING_TEST_LOGS_H_
