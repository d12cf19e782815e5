// The one storage test suite every Store backend must pass (SPIRE
// keymanagertest style): value-parameterized over a factory of fresh, empty
// databases. Each backend's test binary instantiates it:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(SqliteBackend()), BackendName);
//
// Thread safety: test fixture; one test at a time per process.
#ifndef AGENTROOT_ATTESTATION_STORE_TESTING_STORE_TEST_SUITE_H_
#define AGENTROOT_ATTESTATION_STORE_TESTING_STORE_TEST_SUITE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "agentroot/attestation/store/store.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::store::testing {

// A fresh, empty database; cleaned up (if needed) by its destructor.
class TestDatabase {
 public:
  virtual ~TestDatabase() = default;
  virtual const std::string& uri() const = 0;
};

struct StoreBackend {
  std::string name;
  std::function<common::Result<std::unique_ptr<TestDatabase>>()> create;
};

// gtest prints the parameter by its name.
inline void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

std::string BackendName(const ::testing::TestParamInfo<StoreBackend>& info);

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Another Store on the same database: a second "verifier process".
  std::unique_ptr<Store> OpenAnother();

  common::FakeClock clock_{1'700'000'000};
  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Store> store_;
};

}  // namespace agentroot::attestation::store::testing

#endif  // AGENTROOT_ATTESTATION_STORE_TESTING_STORE_TEST_SUITE_H_
