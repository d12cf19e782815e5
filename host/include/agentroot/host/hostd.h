// Hostd: the host daemon's core (docs/hostd.md): enrollment with the
// verifier, agent identification and measurement, per-agent TPM keys, token
// acquisition and caching, DPoP proofs, and the local API on a Unix socket.
//
// Lifecycle: Create() opens the TPM, the state directory (0700), the
// measurement log (checked against the PCR: a log that does not explain the
// PCR's value is FAILED_PRECONDITION and hostd does not start) and the
// manifests. Start() starts the enrollment thread and the API server;
// Stop() (or the destructor) stops both.
//
// Enrollment (a background thread): EK certificate (+ intermediates), AK
// (created once, kept in <state_dir>/aks), POST /v1/enroll, TPM2_Activate-
// Credential, POST .../activate; the result goes to enrollment.json. While
// the verifier is unreachable it retries with exponential backoff (capped).
// While the host is pending it polls the verifier (a challenge: refused with
// host_not_approved until an operator approves the host). An AK the TPM no
// longer loads (TPM cleared, state directory from another TPM) is logged as
// an error, shown in status(), and the host enrolls again with a new AK:
// the verifier records that as an audited host.reenroll; agent keys are
// created and certified again.
//
// Requests (Token/Proof/Headers) return a Status whose message starts with a
// hostd problem code (docs/hostd.md): unknown_agent, measurement_refused,
// token_refused, host_pending, verifier_unavailable, tpm_unavailable,
// invalid_input. HostdProblemOf() extracts it.
//
// Tokens are cached per (agent, audience, scope) with the measurement they
// were attested for. A cached token is served while the caller's
// measurement is the same and it is within renew_at_fraction of its
// lifetime; after that the next caller renews it, and if the verifier cannot
// be reached the cached token is still served until (never after) exp. A
// refusal by the verifier (measurement not affirmed, token refused) drops
// every cached token of that agent. In session proof mode each cached token
// has its own session key (proof_signer.h), discarded when the token is
// replaced. Acquisition is single-flight per cache
// key; unrelated agents only share the TPM (extend + quote + PCR read run
// under one mutex so the log sent with a quote explains it).
//
// Thread safety: all public methods may be called from several threads.
#ifndef AGENTROOT_HOST_HOSTD_H_
#define AGENTROOT_HOST_HOSTD_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"
#include "agentroot/host/agent_measurer.h"
#include "agentroot/host/config.h"
#include "agentroot/hsm/tpm/tpm_device.h"

namespace agentroot::http {
class HttpServer;
}
namespace agentroot::hsm::tpm {
class TpmDevice;
class TpmAttestor;
class TpmKeyManager;
}  // namespace agentroot::hsm::tpm

namespace agentroot::host {

class MeasurementLog;
class ProofSigner;
class VerifierClient;

// hostd problem codes (docs/hostd.md).
namespace hostd_problem {
inline constexpr std::string_view kUnknownAgent = "unknown_agent";
inline constexpr std::string_view kMeasurementRefused = "measurement_refused";
inline constexpr std::string_view kTokenRefused = "token_refused";
inline constexpr std::string_view kHostPending = "host_pending";
inline constexpr std::string_view kVerifierUnavailable = "verifier_unavailable";
inline constexpr std::string_view kTpmUnavailable = "tpm_unavailable";
inline constexpr std::string_view kInvalidInput = "invalid_input";
}  // namespace hostd_problem

// The hostd problem code of a Status returned by Hostd ("internal" if none).
std::string_view HostdProblemOf(const common::Status& status);

// A caller that matched no manifest (a "shadow agent").
struct ShadowAgent {
  int64_t time = 0;
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string exe;
  std::string exe_sha256_hex;  // empty if it could not be hashed
};

struct HostdOptions {
  HostdConfig config;
  const common::Clock* clock = &common::Clock::System();
  // Where JSON log lines go (default: stderr).
  std::function<void(const std::string& line)> log_sink;
  // Called for every new shadow agent (after it is appended to
  // <state_dir>/shadow_agents.jsonl). Independently of it, hostd reports
  // each one to the verifier (POST /v1/hosts/{id}/shadow-agents, TPM-quoted)
  // from a background thread, retried every status_poll_seconds until the
  // verifier has it; then the line says "reported": true.
  std::function<void(const ShadowAgent&)> shadow_agent_hook;
};

struct TokenGrant {
  std::string access_token;
  int64_t expires_at = 0;
  std::string scope;
  std::string audience;
  std::string agent_id;
  std::string jkt;
  ProofMode proof_mode = ProofMode::kTpm;
  bool from_cache = false;
  // What signs proofs for this token: the agent's TPM key, or (session
  // mode) this token's session key, discarded with the token.
  std::shared_ptr<ProofSigner> proof_signer;
};

struct HostdStats {
  uint64_t acquisitions = 0;       // token acquisitions started
  uint64_t tokens_issued = 0;      // ... that returned a token
  uint64_t cache_hits = 0;
  uint64_t revoked_cached_tokens = 0;  // dropped because introspection said inactive
  uint64_t served_stale_on_outage = 0;  // cached tokens served past renewal because the verifier was down
  uint64_t quotes = 0;
  uint64_t agent_key_signatures = 0;  // signatures by agent keys in the TPM (tpm-mode proofs, session bindings)
  uint64_t shadow_agents_reported = 0;  // accepted by the verifier
};

class Hostd {
 public:
  static common::Result<std::unique_ptr<Hostd>> Create(HostdOptions options);
  ~Hostd();

  // Starts the enrollment thread and the API server on config.socket_path.
  common::Status Start();
  // Stops both; idempotent.
  void Stop();

  // GET /v1/status.
  common::Json Status() const;

  common::Result<TokenGrant> Token(const ProcessInfo& caller, std::string_view audience, std::string_view scope);
  // A DPoP proof by the caller's agent key (tpm mode) or by the session key
  // of `access_token` (session mode: the token is required and must be one
  // hostd holds for the caller's agent).
  common::Result<std::string> Proof(const ProcessInfo& caller, std::string_view method, std::string_view url,
                                    std::optional<std::string_view> access_token);

  // Wakes the enrollment thread (e.g. after an operator approved the host).
  void PollEnrollmentNow();
  // Blocks until the enrollment state is `state` or `timeout` passes.
  bool WaitForEnrollment(std::string_view state, std::chrono::milliseconds timeout);

  HostdStats stats() const;
  // The TPM device's counters (busy time, loads): for benchmarks.
  hsm::tpm::TpmDeviceStats tpm_stats() const;
  const HostdConfig& config() const { return options_.config; }
  std::string host_id() const;

 private:
  struct AgentState;
  struct CacheEntry;
  struct Enrollment {
    std::string state = "unenrolled";  // unenrolled | pending | approved | revoked | error
    std::string host_id;
    std::string ak_name_hex;
    std::string detail;
    bool ak_lost = false;
  };
  struct Evidence;

  explicit Hostd(HostdOptions options);

  void Log(std::string_view level, std::string_view message, common::Json fields = common::Json::object()) const;
  common::Result<AgentManifest> Identify(const ProcessInfo& caller);
  void ReportShadow(const ProcessInfo& caller);
  // The shadow-agent reporter thread: sends the unreported lines of
  // shadow_agents.jsonl to the verifier.
  void ShadowReportLoop();
  common::Status ReportPendingShadows();

  // Enrollment.
  void EnrollmentLoop();
  common::Status EnrollOnce();
  common::Status PollStatus();
  common::Status ProbeAk();
  common::Status SaveEnrollment(const Enrollment& e);
  void SetEnrollment(Enrollment e);
  Enrollment enrollment() const;
  common::Status RequireApproved() const;
  void NoteVerifier(const common::Status& status);

  // Agents.
  std::shared_ptr<AgentState> Agent(const AgentManifest& manifest);
  common::Result<std::shared_ptr<ProofSigner>> Signer(AgentState& agent);
  common::Status EnsureRegistered(AgentState& agent, const std::string& host_id);
  common::Result<Evidence> MeasureAndQuote(AgentState& agent, const ProcessInfo& caller,
                                           const AgentMeasurement& m, const std::string& nonce);
  common::Result<TokenGrant> Acquire(AgentState& agent, const ProcessInfo& caller, const AgentMeasurement& m,
                                     std::string_view audience, std::string_view scope);
  void DropAgentTokens(const std::string& agent_id);
  void DropHostTokens();  // the host was revoked: no cached token is served
  // Session signers by SHA-256 of their token (session proof mode).
  void TrackSession(const TokenGrant* old_grant, const TokenGrant* new_grant);
  common::Result<std::shared_ptr<ProofSigner>> SessionSigner(const std::string& agent_id,
                                                            std::optional<std::string_view> access_token);
  std::string AgentId(std::string_view name) const;

  HostdOptions options_;
  const common::Clock& clock_;
  std::shared_ptr<hsm::tpm::TpmDevice> device_;
  std::unique_ptr<hsm::tpm::TpmAttestor> attestor_;
  std::unique_ptr<hsm::tpm::TpmKeyManager> keys_;
  std::unique_ptr<VerifierClient> verifier_;
  std::unique_ptr<AgentMeasurer> measurer_;
  std::vector<std::string> manifest_errors_;

  // TPM attestation section: log append + fsync, extend, quote, PCR read.
  mutable std::mutex tpm_mu_;
  std::unique_ptr<MeasurementLog> log_;

  mutable std::mutex mu_;  // everything below
  Enrollment enrollment_;
  std::string verifier_state_ = "unknown";
  std::string tpm_state_ = "ok";
  std::map<std::string, std::shared_ptr<AgentState>> agents_;
  std::map<std::tuple<std::string, std::string, std::string>, std::shared_ptr<CacheEntry>> cache_;
  std::map<std::string, uint64_t> agent_generation_;
  // Measurements the verifier affirmed, per agent: fingerprint -> the latest
  // exp of a live token attested for it. Proofs are signed only for a caller
  // whose current measurement is here (THREATS.md #6).
  std::map<std::string, std::map<std::string, int64_t>> attested_;
  std::map<std::pair<int32_t, uint64_t>, bool> shadows_seen_;
  struct Session {
    std::string agent_id;
    int64_t expires_at = 0;
    std::shared_ptr<ProofSigner> signer;
  };
  std::map<std::string, Session> sessions_;  // key: hex SHA-256 of the access token
  std::atomic<uint64_t> agent_key_signatures_{0};
  HostdStats stats_;
  std::condition_variable enrollment_cv_;
  bool poll_now_ = false;
  bool stopping_ = false;
  std::thread enrollment_thread_;
  std::mutex shadow_file_mu_;  // shadow_agents.jsonl
  std::condition_variable shadow_cv_;  // with mu_
  bool shadow_pending_ = false;
  std::thread shadow_thread_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_HOSTD_H_
