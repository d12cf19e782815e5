// The shared KeyManager conformance suite, instantiated for the TPM backend
// on one swtpm machine (one per test process; under ctest every test runs in
// its own process). Each `open` is a new TpmDevice + TpmKeyManager on the
// same state directory: a daemon restart.
#include <gtest/gtest.h>

#include <memory>

#include "agentroot/hsm/testing/key_manager_conformance.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "tpm_test_util.h"

namespace agentroot::hsm::testing {
namespace {

class TpmFleetEnvironment : public ::testing::Environment {
 public:
  static TpmFleetEnvironment* Get() {
    static TpmFleetEnvironment* env = static_cast<TpmFleetEnvironment*>(
        ::testing::AddGlobalTestEnvironment(new TpmFleetEnvironment()));
    return env;
  }

  // The machine, started on first use.
  common::Result<const simulators::MachineInfo*> Machine() {
    if (fleet_ == nullptr) {
      AR_ASSIGN_OR_RETURN(fleet_, simulators::testing::ScopedFleet::Create(1));
    }
    return &fleet_->info().machines[0];
  }
  std::filesystem::path StateDir() const { return fleet_->dir() / "tpm-state"; }

  void TearDown() override { fleet_.reset(); }

 private:
  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
};

[[maybe_unused]] TpmFleetEnvironment* const kEnvironment = TpmFleetEnvironment::Get();

KeyManagerFactory TpmFactory() {
  KeyManagerFactory f;
  f.name = "Tpm";
  f.supports_pcr_binding = true;
  f.open = []() -> Result<std::unique_ptr<KeyManager>> {
    TpmFleetEnvironment* env = TpmFleetEnvironment::Get();
    AR_ASSIGN_OR_RETURN(const simulators::MachineInfo* machine, env->Machine());
    AR_ASSIGN_OR_RETURN(auto device, tpm::testing::OpenDevice(machine->tcti));
    AR_ASSIGN_OR_RETURN(auto manager, tpm::TpmKeyManager::Create(device, env->StateDir()));
    return std::unique_ptr<KeyManager>(std::move(manager));
  };
  f.native_public_to_jwk = [](common::ByteView native) { return tpm::testing::TpmPublicToJwk(native); };
  return f;
}

INSTANTIATE_TEST_SUITE_P(Tpm, KeyManagerConformanceTest, ::testing::Values(TpmFactory()),
                         KeyManagerFactoryName);

}  // namespace
}  // namespace agentroot::hsm::testing
