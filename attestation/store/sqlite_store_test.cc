// The shared store suite on SQLite: a fresh database file in a temporary
// directory per test.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "testing/store_test_suite.h"

namespace agentroot::attestation::store::testing {
namespace {

class SqliteTestDatabase final : public TestDatabase {
 public:
  static common::Result<std::unique_ptr<TestDatabase>> Create() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/agentroot-sqlite-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return common::InternalError("mkdtemp failed");
    return std::unique_ptr<TestDatabase>(new SqliteTestDatabase(templ));
  }
  ~SqliteTestDatabase() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& uri() const override { return uri_; }

 private:
  explicit SqliteTestDatabase(std::string dir)
      : dir_(std::move(dir)), uri_("sqlite:" + dir_ + "/verifier.db") {}
  std::string dir_;
  std::string uri_;
};

INSTANTIATE_TEST_SUITE_P(Store, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"Sqlite", &SqliteTestDatabase::Create}),
                         BackendName);

}  // namespace
}  // namespace agentroot::attestation::store::testing
