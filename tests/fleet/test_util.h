// Helpers shared by the fleet integration tests.
#ifndef AGENTROOT_TESTS_FLEET_TEST_UTIL_H_
#define AGENTROOT_TESTS_FLEET_TEST_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "agentroot/common/openssl.h"
#include "agentroot/common/status.h"

namespace agentroot::tests {

// True while `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);

// /proc/<pid>/cmdline with NULs turned into spaces ("" when gone).
std::string ProcessCmdline(pid_t pid);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

common::Result<common::X509Ptr> LoadPemCertificate(const std::filesystem::path& path);
common::Result<common::X509Ptr> ParseDerCertificate(const std::vector<uint8_t>& der);
std::vector<uint8_t> ToDer(X509* cert);

// Verifies `leaf` against the trust anchor `root` with `intermediate` as an
// untrusted chain certificate (X509_STORE, default purpose). UNAUTHENTICATED
// with OpenSSL's reason on failure.
common::Status VerifyChain(X509* leaf, X509* root, X509* intermediate);

// A fresh self-signed CA (P-256) named `cn`, for wrong-anchor tests.
common::X509Ptr MakeUnrelatedCa(const std::string& cn);

}  // namespace agentroot::tests

#endif  // AGENTROOT_TESTS_FLEET_TEST_UTIL_H_
