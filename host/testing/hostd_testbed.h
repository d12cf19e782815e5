// HostdTestbed: hostd against real parts, for tests and benchmarks: one
// swtpm machine, the verifier in process over real HTTPS on loopback (SQLite
// store), hostd's API on a real Unix socket, and the calling process as the
// agent (its /proc/self/exe is named by the manifest "crm-bot"). Verifier,
// store and hostd share one FakeClock. Operators: alice (owner), bob
// (reviewer), carol (infra), dave (auditor).
//
// Every process it starts (swtpm through ScopedFleet, the HTTPS server,
// hostd) is stopped by Stop() or the destructor.
#ifndef AGENTROOT_HOST_TESTING_HOSTD_TESTBED_H_
#define AGENTROOT_HOST_TESTING_HOSTD_TESTBED_H_

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/verifier_service.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/signer.h"
#include "agentroot/host/hostd.h"
#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/simulators/testing/scoped_fleet.h"

namespace agentroot::host::testing {

inline constexpr char kTestbedAgent[] = "spiffe://example.org/agent/crm-bot";
inline constexpr char kTestbedCrm[] = "https://crm.example";
inline constexpr char kTestbedErp[] = "https://erp.example";
inline constexpr char kTestbedGroup[] = "crm-hosts";

class HostdTestbed {
 public:
  struct Options {
    int64_t token_rate_per_minute = 120;
    int64_t challenge_rate_per_minute = 60;
  };
  HostdTestbed() = default;
  virtual ~HostdTestbed() { Stop(); }

  // The fleet, the verifier (started), the agent's files and manifest
  // ("tpm" proof mode) and config_ (hostd not started).
  common::Status Init(const Options& options);
  common::Status Init() { return Init(Options{}); }
  common::Status StartVerifier(uint16_t port);
  common::Status StartHostd();
  // Start hostd, wait for pending, approve, wait for approved, register the agent.
  common::Status StartApproved();
  common::Status RegisterAgent();
  void WriteManifest(const std::string& proof_mode);
  void Stop();

  std::unique_ptr<http::HttpClient> Socket();
  ProcessInfo Self();
  std::unique_ptr<attestation::AccessTokenValidator> Validator(std::string audience);
  std::string Log();

  static std::string Sha256File(const std::filesystem::path& p);
  static void WriteFile(const std::filesystem::path& p, const std::string& text);

  common::FakeClock clock_{common::Clock::System().NowUnixSeconds()};
  std::unique_ptr<simulators::testing::ScopedFleet> fleet_;
  simulators::MachineInfo machine_;
  std::filesystem::path dir_, exe_, agent_config_;
  std::unique_ptr<http::testing::TestPki> pki_;
  std::shared_ptr<attestation::store::Store> store_;
  std::shared_ptr<common::OpenSslSigner> issuer_;
  std::shared_ptr<attestation::VerifierCore> core_;
  std::unique_ptr<attestation::VerifierService> service_;
  std::unique_ptr<http::HttpServer> server_;
  std::string base_;
  HostdConfig config_;
  std::unique_ptr<Hostd> hostd_;
  std::mutex log_mu_;
  std::string log_;
  std::vector<std::string> shadows_;
};

}  // namespace agentroot::host::testing

#endif  // AGENTROOT_HOST_TESTING_HOSTD_TESTBED_H_
