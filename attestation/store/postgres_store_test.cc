// The shared store suite on PostgreSQL 15: one private server per test
// process (ScopedPostgresServer, started before the first test and stopped
// after the last), a fresh database per test.
#include <memory>
#include <string>

#include "testing/postgres_server.h"
#include "testing/store_test_suite.h"

namespace agentroot::attestation::store::testing {
namespace {

class PostgresEnvironment final : public ::testing::Environment {
 public:
  void SetUp() override {
    auto server = ScopedPostgresServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }
  void TearDown() override { server_.reset(); }

  static ScopedPostgresServer* server() { return server_.get(); }

 private:
  static inline std::unique_ptr<ScopedPostgresServer> server_;
};

// Registered at static initialization; gtest owns it.
[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

class PostgresTestDatabase final : public TestDatabase {
 public:
  static common::Result<std::unique_ptr<TestDatabase>> Create() {
    ScopedPostgresServer* server = PostgresEnvironment::server();
    if (server == nullptr) return common::UnavailableError("PostgreSQL test server not running");
    AR_ASSIGN_OR_RETURN(std::string uri, server->CreateDatabase());
    return std::unique_ptr<TestDatabase>(new PostgresTestDatabase(std::move(uri)));
  }
  const std::string& uri() const override { return uri_; }

 private:
  explicit PostgresTestDatabase(std::string uri) : uri_(std::move(uri)) {}
  std::string uri_;
};

INSTANTIATE_TEST_SUITE_P(Store, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"Postgres", &PostgresTestDatabase::Create}),
                         BackendName);

}  // namespace
}  // namespace agentroot::attestation::store::testing
