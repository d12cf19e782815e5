#include "agentroot/host/hostd.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/session_binding.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/signer.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/host/measurement_log.h"
#include "agentroot/host/proof_signer.h"
#include "agentroot/host/verifier_client.h"
#include "agentroot/http/server.h"

namespace agentroot::host {

namespace fs = std::filesystem;
namespace tpm = hsm::tpm;
using common::Bytes;
using common::Json;
using common::Result;
using common::StatusCode;
using Status_ = common::Status;

namespace {

constexpr char kAkId[] = "ak";

Status_ Problem(std::string_view code, std::string_view detail) {
  StatusCode sc = StatusCode::kPermissionDenied;
  if (code == hostd_problem::kHostPending || code == hostd_problem::kVerifierUnavailable ||
      code == hostd_problem::kTpmUnavailable) {
    sc = StatusCode::kUnavailable;
  } else if (code == hostd_problem::kInvalidInput) {
    sc = StatusCode::kInvalidArgument;
  }
  return attestation::OAuthError(sc, code, detail);
}

bool IsUnavailable(const Status_& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded;
}

// A TPM failure as tpm_unavailable, keeping the TSS text.
Status_ TpmProblem(std::string_view what, const Status_& s) {
  return Problem(hostd_problem::kTpmUnavailable, std::string(what) + ": " + std::string(s.message()));
}

// A verifier failure: unreachable -> verifier_unavailable; else `refusal`.
Status_ VerifierProblem(std::string_view refusal, const Status_& s) {
  if (IsUnavailable(s)) return Problem(hostd_problem::kVerifierUnavailable, s.message());
  return Problem(refusal, s.message());
}

Result<tpm::EkKind> EkKindOf(const std::string& name) {
  if (name == "rsa2048") return tpm::EkKind::kRsa2048;
  if (name == "p256") return tpm::EkKind::kEccP256;
  if (name == "p384") return tpm::EkKind::kEccP384;
  return common::InvalidArgumentError("unknown EK kind " + name);
}

Result<std::string> ReadText(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return common::NotFoundError("cannot read " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Atomic, durable small-file write (temp, fsync, rename), mode 0600.
Status_ WriteState(const fs::path& path, const std::string& content) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << content;
    out.flush();
    if (!out) return common::InternalError("cannot write " + tmp.string());
  }
  ::chmod(tmp.c_str(), 0600);
  FILE* f = std::fopen(tmp.c_str(), "r");
  if (f != nullptr) {
    ::fsync(fileno(f));
    std::fclose(f);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return common::InternalError("cannot rename " + tmp.string() + ": " + ec.message());
  return Status_::Ok();
}

// True when the TPM itself (response-code layer 0, not ESAPI, the TCTI or
// the transport) refused the AK: the blob no longer loads, i.e. the TPM's
// owner hierarchy changed. Anything else may be transient and is retried.
bool TpmRefusedKey(const Status_& s) {
  if (s.code() == StatusCode::kNotFound) return true;  // the AK file is gone
  std::string_view m = s.message();
  std::size_t at = m.find("TSS2_RC 0x");
  if (at == std::string_view::npos) return false;
  unsigned long rc = std::strtoul(std::string(m.substr(at + 10, 8)).c_str(), nullptr, 16);
  return (rc & 0xFF0000UL) == 0;
}

bool ValidText(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// What a proof may be for: an upper-case method, an absolute http(s) URL.
Status_ CheckProofTarget(std::string_view method, std::string_view url) {
  for (char ch : method) {
    if (!std::isupper(static_cast<unsigned char>(ch))) return Problem(hostd_problem::kInvalidInput, "method must be an upper-case HTTP method");
  }
  if (url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0) {
    return Problem(hostd_problem::kInvalidInput, "url must be an absolute http(s) URL");
  }
  return Status_::Ok();
}

}  // namespace

std::string_view HostdProblemOf(const Status_& status) {
  std::string_view m = status.message();
  for (std::string_view code : {hostd_problem::kUnknownAgent, hostd_problem::kMeasurementRefused,
                                hostd_problem::kTokenRefused, hostd_problem::kHostPending,
                                hostd_problem::kVerifierUnavailable, hostd_problem::kTpmUnavailable,
                                hostd_problem::kInvalidInput}) {
    if (m.size() > code.size() && m.substr(0, code.size()) == code && m[code.size()] == ':') return code;
  }
  return "internal";
}

struct Hostd::AgentState {
  std::string name;
  std::string id;
  ProofMode mode = ProofMode::kTpm;
  std::mutex mu;  // key creation and registration
  std::shared_ptr<hsm::Key> key;
  std::shared_ptr<ProofSigner> signer;
  std::string registered_for;  // "<host id> <AK name>" the key is registered under
};

struct Hostd::CacheEntry {
  std::mutex mu;  // single flight
  struct Cached {
    TokenGrant grant;
    int64_t issued_at = 0;
    std::string fingerprint;
    uint64_t generation = 0;
    int64_t checked_at = 0;  // when introspection last said active (or was tried)
  };
  std::optional<Cached> cached;
};

struct Hostd::Evidence {
  attestation::MeasurementEvent event;
  tpm::SignedAttestation quote;
  std::map<uint32_t, Bytes> pcrs;
  std::string log;
};

Hostd::Hostd(HostdOptions options) : options_(std::move(options)), clock_(*options_.clock) {}

Hostd::~Hostd() { Stop(); }

void Hostd::Log(std::string_view level, std::string_view message, Json fields) const {
  fields["ts"] = clock_.NowUnixSeconds();
  fields["level"] = level;
  fields["msg"] = message;
  fields["component"] = "hostd";
  std::string line = fields.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (options_.log_sink) {
    options_.log_sink(line);
  } else {
    std::cerr << line << std::endl;
  }
}

Result<std::unique_ptr<Hostd>> Hostd::Create(HostdOptions options) {
  AR_RETURN_IF_ERROR(options.config.Validate());
  if (options.clock == nullptr) return common::InvalidArgumentError("no clock");
  auto hostd = std::unique_ptr<Hostd>(new Hostd(std::move(options)));
  const HostdConfig& c = hostd->options_.config;
  std::error_code ec;
  fs::create_directories(c.state_dir, ec);
  if (ec) return common::FailedPreconditionError("state_dir " + c.state_dir.string() + ": " + ec.message());
  fs::permissions(c.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  AR_ASSIGN_OR_RETURN(std::string ca_pem, ReadText(c.verifier_ca_file));
  AR_ASSIGN_OR_RETURN(hostd->verifier_, VerifierClient::Create(c.verifier_url, ca_pem, c.verifier_connections));

  tpm::TpmDeviceOptions topt;
  topt.tcti = c.tcti;
  auto device = tpm::TpmDevice::Open(std::move(topt));
  if (!device.ok()) return common::UnavailableError("TPM at " + c.tcti + ": " + std::string(device.status().message()));
  hostd->device_ = *device;
  AR_ASSIGN_OR_RETURN(hostd->attestor_, tpm::TpmAttestor::Create(hostd->device_, c.state_dir));
  AR_ASSIGN_OR_RETURN(hostd->keys_, tpm::TpmKeyManager::Create(hostd->device_, c.state_dir));

  AR_ASSIGN_OR_RETURN(hostd->log_, MeasurementLog::Open(c.state_dir / "measurements.jsonl"));
  auto pcr = hostd->attestor_->PcrRead({{tpm::kTpmAlgSha256, {c.measurement_pcr}}});
  if (!pcr.ok()) return common::UnavailableError("reading PCR " + std::to_string(c.measurement_pcr) + ": " + std::string(pcr.status().message()));
  AR_ASSIGN_OR_RETURN(ReconcileOutcome outcome,
                      hostd->log_->Reconcile(pcr->begin()->second, hostd->clock_.NowUnixSeconds()));
  if (outcome == ReconcileOutcome::kReset) {
    hostd->Log("info", "the measurement PCR is at its reset value (TPM restarted): a new measurement log starts",
               {{"pcr", c.measurement_pcr}});
  } else if (outcome == ReconcileOutcome::kDroppedUnextended) {
    hostd->Log("warning", "dropped the last measurement-log entry: it was never extended (crash before the extend)");
  }

  auto manifests = LoadAgentManifests(c.manifests_dir);
  if (!manifests.ok()) return manifests.status();
  for (const auto& e : manifests->errors) hostd->Log("error", "agent manifest skipped", {{"error", e}});
  hostd->manifest_errors_ = manifests->errors;
  hostd->Log("info", "agent manifests loaded", {{"count", manifests->manifests.size()}, {"dir", c.manifests_dir.string()}});
  hostd->measurer_ = std::make_unique<AgentMeasurer>(std::move(manifests->manifests));

  // Enrollment state from an earlier run.
  if (auto text = ReadText(c.state_dir / "enrollment.json"); text.ok()) {
    Json j = Json::parse(*text, nullptr, false);
    if (j.is_object()) {
      hostd->enrollment_.host_id = j.value("host_id", "");
      hostd->enrollment_.ak_name_hex = j.value("ak_name", "");
      hostd->enrollment_.state = j.value("state", "unenrolled");
    }
  }
  return hostd;
}

Status_ Hostd::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (server_) return common::FailedPreconditionError("already started");
  }
  const HostdConfig& c = options_.config;
  http::ServerOptions so;
  http::UnixListenOptions u;
  u.path = c.socket_path.string();
  u.mode = 0660;
  u.group = c.socket_group;
  so.unix_socket = u;
  so.limits.max_header_bytes = 16 * 1024;
  so.limits.max_body_bytes = 64 * 1024;
  so.limits.request_timeout = std::chrono::seconds(10);
  so.limits.idle_timeout = std::chrono::seconds(30);
  so.limits.max_connections = 64;
  so.io_threads = 1;
  so.worker_threads = c.worker_threads;
  AR_ASSIGN_OR_RETURN(auto server, http::HttpServer::Create(std::move(so)));

  auto problem = [](const Status_& s) {
    std::string_view code = HostdProblemOf(s);
    int status = 500;
    std::string detail(s.message());
    if (code == "internal") {
      detail = "internal error";
    } else {
      detail = detail.substr(code.size() + 2);
      if (code == hostd_problem::kInvalidInput) status = 400;
      if (code == hostd_problem::kUnknownAgent || code == hostd_problem::kMeasurementRefused ||
          code == hostd_problem::kTokenRefused) {
        status = 403;
      }
      if (code == hostd_problem::kHostPending || code == hostd_problem::kVerifierUnavailable ||
          code == hostd_problem::kTpmUnavailable) {
        status = 503;
      }
    }
    http::Response r = http::ProblemResponse(status, "urn:agentroot:problem:hostd:" + std::string(code), code, detail);
    if (code == hostd_problem::kHostPending || code == hostd_problem::kVerifierUnavailable) {
      r.headers.emplace("Retry-After", "5");
    }
    return r;
  };
  // The caller as the kernel reports it, and the JSON body.
  auto caller_of = [](const http::Request& req) -> Result<ProcessInfo> {
    if (!req.peer.unix_peer) return Problem(hostd_problem::kInvalidInput, "no peer credentials");
    auto p = InspectProcess(req.peer.unix_peer->pid, req.peer.unix_peer->uid, req.peer.unix_peer->gid);
    if (!p.ok()) return Problem(hostd_problem::kUnknownAgent, "the calling process cannot be inspected: " + std::string(p.status().message()));
    return p;
  };
  auto body_of = [](const http::Request& req) -> Result<Json> {
    auto j = common::ParseJsonStrict(req.body, common::JsonLimits{64 * 1024, 4});
    if (!j.ok() || !j->is_object()) return Problem(hostd_problem::kInvalidInput, "the body must be a JSON object");
    return j;
  };
  auto str = [](const Json& j, const char* name, std::size_t max, bool required) -> Result<std::string> {
    auto it = j.find(name);
    if (it == j.end() && !required) return std::string();
    if (it == j.end() || !it->is_string() || !ValidText(it->get_ref<const std::string&>(), max)) {
      return Problem(hostd_problem::kInvalidInput, std::string("\"") + name + "\" must be a string of 1-" +
                                                       std::to_string(max) + " printable characters");
    }
    return it->get<std::string>();
  };
  auto token_json = [](const TokenGrant& g, int64_t now) {
    return Json{{"access_token", g.access_token}, {"token_type", "DPoP"}, {"expires_at", g.expires_at},
                {"expires_in", std::max<int64_t>(0, g.expires_at - now)}, {"scope", g.scope},
                {"audience", g.audience}, {"agent_id", g.agent_id}, {"jkt", g.jkt},
                {"proof_mode", std::string(ProofModeName(g.proof_mode))}};
  };
  auto no_store = [](http::Response r) {
    r.headers.emplace("Cache-Control", "no-store");
    return r;
  };

  AR_RETURN_IF_ERROR(server->Handle("GET", "/v1/status", [this](const http::Request&) {
    return http::JsonResponse(200, Status());
  }));
  AR_RETURN_IF_ERROR(server->Handle("POST", "/v1/token", [=, this](const http::Request& req) -> http::Response {
    auto run = [&]() -> Result<Json> {
      AR_ASSIGN_OR_RETURN(Json body, body_of(req));
      AR_ASSIGN_OR_RETURN(std::string audience, str(body, "audience", 512, true));
      AR_ASSIGN_OR_RETURN(std::string scope, str(body, "scope", 512, true));
      AR_ASSIGN_OR_RETURN(ProcessInfo caller, caller_of(req));
      AR_ASSIGN_OR_RETURN(TokenGrant g, Token(caller, audience, scope));
      return token_json(g, clock_.NowUnixSeconds());
    };
    auto r = run();
    return r.ok() ? no_store(http::JsonResponse(200, *r)) : problem(r.status());
  }));
  AR_RETURN_IF_ERROR(server->Handle("POST", "/v1/proof", [=, this](const http::Request& req) -> http::Response {
    auto run = [&]() -> Result<Json> {
      AR_ASSIGN_OR_RETURN(Json body, body_of(req));
      AR_ASSIGN_OR_RETURN(std::string method, str(body, "method", 16, true));
      AR_ASSIGN_OR_RETURN(std::string url, str(body, "url", 2048, true));
      AR_ASSIGN_OR_RETURN(std::string token, str(body, "access_token", 8192, false));
      AR_ASSIGN_OR_RETURN(ProcessInfo caller, caller_of(req));
      std::optional<std::string_view> ath;
      if (!token.empty()) ath = token;
      AR_ASSIGN_OR_RETURN(std::string proof, Proof(caller, method, url, ath));
      return Json{{"dpop", proof}};
    };
    auto r = run();
    return r.ok() ? no_store(http::JsonResponse(200, *r)) : problem(r.status());
  }));
  AR_RETURN_IF_ERROR(server->Handle("POST", "/v1/headers", [=, this](const http::Request& req) -> http::Response {
    auto run = [&]() -> Result<Json> {
      AR_ASSIGN_OR_RETURN(Json body, body_of(req));
      AR_ASSIGN_OR_RETURN(std::string audience, str(body, "audience", 512, true));
      AR_ASSIGN_OR_RETURN(std::string scope, str(body, "scope", 512, true));
      AR_ASSIGN_OR_RETURN(std::string method, str(body, "method", 16, true));
      AR_ASSIGN_OR_RETURN(std::string url, str(body, "url", 2048, true));
      AR_ASSIGN_OR_RETURN(ProcessInfo caller, caller_of(req));
      AR_ASSIGN_OR_RETURN(TokenGrant g, Token(caller, audience, scope));
      // Signed by the key of the token just served (a renewal racing with
      // this request cannot swap it).
      AR_RETURN_IF_ERROR(CheckProofTarget(method, url));
      auto proof = g.proof_signer->Proof(method, url, clock_.NowUnixSeconds(), std::string_view(g.access_token), {});
      if (!proof.ok()) return TpmProblem("signing the DPoP proof", proof.status());
      return Json{{"authorization", "DPoP " + g.access_token}, {"dpop", *proof}, {"expires_at", g.expires_at}};
    };
    auto r = run();
    return r.ok() ? no_store(http::JsonResponse(200, *r)) : problem(r.status());
  }));
  AR_RETURN_IF_ERROR(server->Start());
  {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = std::move(server);
    stopping_ = false;
  }
  enrollment_thread_ = std::thread([this] { EnrollmentLoop(); });
  shadow_thread_ = std::thread([this] { ShadowReportLoop(); });
  Log("info", "listening", {{"socket", c.socket_path.string()}, {"verifier", c.verifier_url}, {"tcti", c.tcti}});
  return Status_::Ok();
}

void Hostd::Stop() {
  std::unique_ptr<http::HttpServer> server;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    server = std::move(server_);
  }
  enrollment_cv_.notify_all();
  shadow_cv_.notify_all();
  if (server) server->Stop(std::chrono::seconds(2));
  if (enrollment_thread_.joinable()) enrollment_thread_.join();
  if (shadow_thread_.joinable()) shadow_thread_.join();
}

// ------------------------------------------------------------------ status

Json Hostd::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Json{{"host_id", enrollment_.host_id}, {"enrollment", enrollment_.state}, {"detail", enrollment_.detail},
              {"verifier", verifier_state_}, {"tpm", tpm_state_}};
}

std::string Hostd::host_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return enrollment_.host_id;
}

hsm::tpm::TpmDeviceStats Hostd::tpm_stats() const {
  return device_ ? device_->stats() : hsm::tpm::TpmDeviceStats{};
}

HostdStats Hostd::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  HostdStats out = stats_;
  out.agent_key_signatures = agent_key_signatures_.load(std::memory_order_relaxed);
  return out;
}

Hostd::Enrollment Hostd::enrollment() const {
  std::lock_guard<std::mutex> lock(mu_);
  return enrollment_;
}

void Hostd::SetEnrollment(Enrollment e) {
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = e.state != enrollment_.state || e.host_id != enrollment_.host_id || e.ak_name_hex != enrollment_.ak_name_hex;
    enrollment_ = e;
  }
  enrollment_cv_.notify_all();
  if (changed) {
    Status_ saved = SaveEnrollment(e);
    if (!saved.ok()) Log("error", "cannot save enrollment.json", {{"error", saved.ToString()}});
    Log("info", "enrollment state", {{"host_id", e.host_id}, {"state", e.state}, {"detail", e.detail}});
  }
}

Status_ Hostd::SaveEnrollment(const Enrollment& e) {
  Json j = {{"host_id", e.host_id}, {"ak_name", e.ak_name_hex}, {"state", e.state},
            {"updated_at", clock_.NowUnixSeconds()}};
  return WriteState(options_.config.state_dir / "enrollment.json", j.dump() + "\n");
}

void Hostd::NoteVerifier(const Status_& s) {
  std::lock_guard<std::mutex> lock(mu_);
  verifier_state_ = IsUnavailable(s) ? "unreachable" : "reachable";
}

Status_ Hostd::RequireApproved() const {
  Enrollment e = enrollment();
  if (e.state == "approved") return Status_::Ok();
  if (e.state == "pending") {
    return Problem(hostd_problem::kHostPending, "host " + e.host_id + " is enrolled and waits for an operator's approval");
  }
  if (e.state == "revoked") {
    return Problem(hostd_problem::kTokenRefused, "host " + e.host_id +
                                                     " is revoked at the verifier: no tokens until an operator "
                                                     "approves it again");
  }
  if (e.state == "error" && e.ak_lost) return Problem(hostd_problem::kTpmUnavailable, e.detail);
  return Problem(hostd_problem::kVerifierUnavailable, "the host is not enrolled yet" + (e.detail.empty() ? "" : ": " + e.detail));
}

bool Hostd::WaitForEnrollment(std::string_view state, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return enrollment_cv_.wait_for(lock, timeout, [&] { return enrollment_.state == state; });
}

void Hostd::PollEnrollmentNow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    poll_now_ = true;
  }
  enrollment_cv_.notify_all();
}

// -------------------------------------------------------------- enrollment

Status_ Hostd::ProbeAk() {
  auto ak = attestor_->GetAk(kAkId);
  if (!ak.ok()) return ak.status();
  auto quote = attestor_->Quote(kAkId, {{tpm::kTpmAlgSha256, {options_.config.measurement_pcr}}}, Bytes(32, 0));
  {
    std::lock_guard<std::mutex> lock(mu_);
    tpm_state_ = quote.ok() ? "ok" : TpmRefusedKey(quote.status()) ? "ak_lost" : "unavailable";
  }
  return quote.status();
}

Status_ Hostd::EnrollOnce() {
  const HostdConfig& c = options_.config;
  Enrollment e = enrollment();
  // The AK: reuse it while the TPM loads it; otherwise it is lost.
  auto ak = attestor_->GetAk(kAkId);
  if (ak.ok()) {
    Status_ probe = ProbeAk();
    if (!probe.ok() && !TpmRefusedKey(probe)) return TpmProblem("the TPM does not answer", probe);
    if (!probe.ok()) {
      Log("error", "AK lost: the TPM no longer loads this host's attestation key (TPM cleared or its state replaced); "
                   "enrolling a new AK through the verifier's audited re-enroll path",
          {{"host_id", e.host_id}, {"error", probe.ToString()}});
      AR_RETURN_IF_ERROR(attestor_->DeleteAk(kAkId));
      // Agent keys lived under the same storage hierarchy: gone too.
      if (auto ids = keys_->List(); ids.ok()) {
        for (const auto& id : *ids) keys_->Delete(id).IgnoreError();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        agents_.clear();
        enrollment_.ak_lost = true;
        enrollment_.detail = "AK lost (TPM state gone): re-enrolling through the verifier's audited re-enroll path";
      }
      ak = common::NotFoundError("AK lost");
    }
  }
  if (!ak.ok()) {
    if (ak.status().code() != StatusCode::kNotFound) return ak.status();
    auto created = attestor_->CreateAk(kAkId);
    if (!created.ok()) return TpmProblem("creating the AK", created.status());
    ak = std::move(created);
  }
  AR_ASSIGN_OR_RETURN(tpm::EkKind kind, EkKindOf(c.ek_kind));
  auto ek_cert = attestor_->ReadEkCertificate(kind);
  if (!ek_cert.ok()) return TpmProblem("reading the EK certificate", ek_cert.status());
  auto ek_pub = attestor_->ReadEkPublic(kind);
  if (!ek_pub.ok()) return TpmProblem("reading the EK", ek_pub.status());
  std::string intermediates;
  if (!c.ek_intermediates_file.empty()) {
    AR_ASSIGN_OR_RETURN(intermediates, ReadText(c.ek_intermediates_file));
  }

  auto challenge = verifier_->Enroll(*ek_cert, *ek_pub, ak->tpm2b_public, intermediates, c.host_group);
  NoteVerifier(challenge.status());
  AR_RETURN_IF_ERROR(challenge.status());
  auto secret = attestor_->ActivateCredential(kAkId, kind, challenge->credential_blob, challenge->encrypted_secret);
  if (!secret.ok()) return TpmProblem("TPM2_ActivateCredential", secret.status());
  auto activated = verifier_->Activate(challenge->host_id, challenge->activation_id, *secret);
  NoteVerifier(activated.status());
  AR_RETURN_IF_ERROR(activated.status());
  Enrollment next;
  next.host_id = activated->host_id;
  next.ak_name_hex = common::HexEncode(ak->name);
  next.state = activated->status == "approved" ? "approved" : activated->status == "pending" ? "pending" : "revoked";
  next.detail = activated->reenrolled ? "re-enrolled with a new AK (audited host.reenroll)" : "";
  if (activated->reenrolled) {
    Log("warning", "re-enrolled: the verifier replaced this host's AK (audited as host.reenroll)",
        {{"host_id", next.host_id}, {"ak_name", next.ak_name_hex}});
  }
  SetEnrollment(next);
  return Status_::Ok();
}

Status_ Hostd::PollStatus() {
  Enrollment e = enrollment();
  auto status = verifier_->HostStatus(e.host_id);
  NoteVerifier(status.status());
  if (status.ok()) {
    if (*status == "approved" || *status == "pending" || *status == "revoked") {
      if (*status != e.state) e.detail.clear();
      e.state = *status;
      if (e.state == "revoked") e.detail = "an operator revoked host " + e.host_id + " at the verifier";
    } else {
      return common::InternalError("the verifier answered an unknown host status \"" + *status + "\"");
    }
  } else if (IsUnavailable(status.status())) {
    return status.status();
  } else if (attestation::OAuthErrorOf(status.status()) == "host_unknown") {
    e.state = "unenrolled";
    e.detail = "the verifier does not know host " + e.host_id;
  } else {
    return status.status();
  }
  if (e.state == "revoked") DropHostTokens();
  SetEnrollment(e);
  return Status_::Ok();
}

void Hostd::EnrollmentLoop() {
  const HostdConfig& c = options_.config;
  auto backoff = std::chrono::milliseconds(c.enroll_backoff_initial_ms);
  for (;;) {
    Enrollment e = enrollment();
    std::chrono::milliseconds wait(0);
    if (e.state == "unenrolled" || e.state == "error" || e.host_id.empty()) {
      Status_ s = EnrollOnce();
      if (s.ok()) {
        backoff = std::chrono::milliseconds(c.enroll_backoff_initial_ms);
        continue;
      }
      Log(IsUnavailable(s) ? "warning" : "error", "enrollment failed; retrying",
          {{"error", s.ToString()}, {"retry_in_ms", backoff.count()}});
      {
        std::lock_guard<std::mutex> lock(mu_);
        enrollment_.detail = std::string(s.message());
        if (!IsUnavailable(s) && HostdProblemOf(s) != hostd_problem::kVerifierUnavailable) enrollment_.state = "error";
      }
      wait = backoff;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(c.enroll_backoff_max_ms));
    } else {
      // Enrolled: an AK the TPM lost means re-enrolling; a pending host polls.
      Status_ probe = ProbeAk();
      if (!probe.ok() && TpmRefusedKey(probe)) {
        std::lock_guard<std::mutex> lock(mu_);
        enrollment_.state = "error";
        enrollment_.ak_lost = true;
        enrollment_.detail = "AK lost: the TPM no longer loads the attestation key: " + std::string(probe.message());
        continue;
      }
      // GET /v1/hosts/{id}/status costs the verifier one read: polled in
      // every enrolled state, so a revocation is seen within one period.
      Status_ s = PollStatus();
      if (!s.ok()) Log("warning", "cannot poll the host's status", {{"error", s.ToString()}});
      wait = std::chrono::seconds(c.status_poll_seconds);
    }
    std::unique_lock<std::mutex> lock(mu_);
    enrollment_cv_.wait_for(lock, wait, [this] { return stopping_ || poll_now_; });
    if (stopping_) return;
    if (poll_now_) backoff = std::chrono::milliseconds(c.enroll_backoff_initial_ms);
    poll_now_ = false;
  }
}

// ------------------------------------------------------------------ agents

std::string Hostd::AgentId(std::string_view name) const {
  return "spiffe://" + options_.config.trust_domain + "/agent/" + std::string(name);
}

void Hostd::ReportShadow(const ProcessInfo& caller) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!shadows_seen_.emplace(std::make_pair(caller.pid, caller.start_time), true).second) return;
    if (shadows_seen_.size() > 10000) shadows_seen_.clear();
  }
  ShadowAgent s;
  s.time = clock_.NowUnixSeconds();
  s.pid = caller.pid;
  s.uid = caller.uid;
  s.gid = caller.gid;
  s.exe = caller.exe.string();
  AgentManifest probe;
  probe.name = "shadow";
  probe.exe = caller.exe;
  if (auto m = measurer_->Measure(caller, probe); m.ok()) s.exe_sha256_hex = m->exe_sha256_hex;
  Json line = {{"time", s.time}, {"pid", s.pid}, {"uid", s.uid}, {"gid", s.gid}, {"exe", s.exe},
               {"exe_sha256", s.exe_sha256_hex}, {"reported", false}};
  {
    std::lock_guard<std::mutex> lock(shadow_file_mu_);  // serializes appends and rewrites
    std::ofstream out(options_.config.state_dir / "shadow_agents.jsonl", std::ios::app);
    out << line.dump() << "\n";
  }
  Log("warning", "shadow agent: a process that matches no agent manifest asked for credentials",
      {{"pid", s.pid}, {"uid", s.uid}, {"exe", s.exe}, {"exe_sha256", s.exe_sha256_hex}});
  if (options_.shadow_agent_hook) options_.shadow_agent_hook(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    shadow_pending_ = true;
  }
  shadow_cv_.notify_all();  // reported by the reporter thread: the refusal does not wait
}

void Hostd::ShadowReportLoop() {
  for (;;) {
    Status_ s = ReportPendingShadows();
    if (!s.ok()) Log("warning", "shadow agents not reported yet; retrying", {{"error", s.ToString()}});
    std::unique_lock<std::mutex> lock(mu_);
    shadow_cv_.wait_for(lock, std::chrono::seconds(options_.config.status_poll_seconds),
                        [this] { return stopping_ || shadow_pending_; });
    if (stopping_) return;
    shadow_pending_ = false;
  }
}

Status_ Hostd::ReportPendingShadows() {
  const fs::path path = options_.config.state_dir / "shadow_agents.jsonl";
  std::vector<Json> pending;
  {
    std::lock_guard<std::mutex> lock(shadow_file_mu_);
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && !j.value("reported", false)) pending.push_back(std::move(j));
    }
  }
  if (pending.empty()) return Status_::Ok();
  if (enrollment().state != "approved") return common::UnavailableError("the host is not approved yet");
  const std::string host = host_id();
  for (const Json& line : pending) {
    attestation::ShadowReport report;
    report.time = line.value("time", int64_t{0});
    report.pid = line.value("pid", int64_t{0});
    report.uid = line.value("uid", int64_t{0});
    report.gid = line.value("gid", int64_t{0});
    report.exe_path = line.value("exe", "");
    report.exe_sha256_hex = line.value("exe_sha256", "");
    auto nonce = verifier_->Challenge(host, "report");
    NoteVerifier(nonce.status());
    AR_RETURN_IF_ERROR(nonce.status());
    auto quote = attestor_->Quote(kAkId, {{tpm::kTpmAlgSha256, {options_.config.measurement_pcr}}},
                                  attestation::ShadowReportQualifyingData(common::AsBytes(*nonce), report));
    if (!quote.ok()) return TpmProblem("TPM2_Quote of a shadow-agent report", quote.status());
    Status_ sent = verifier_->ReportShadowAgent(host, *nonce, attestation::ShadowReportToJson(report),
                                                quote->tpms_attest, quote->tpmt_signature);
    NoteVerifier(sent);
    AR_RETURN_IF_ERROR(sent);
    // Mark it reported: the file is rewritten whole (small, append-only otherwise).
    {
      std::lock_guard<std::mutex> lock(shadow_file_mu_);
      std::ifstream in(path);
      std::string out;
      for (std::string text; std::getline(in, text);) {
        Json j = Json::parse(text, nullptr, false);
        if (j.is_object() && j == line) {
          j["reported"] = true;
          text = j.dump();
        }
        out += text + "\n";
      }
      in.close();
      AR_RETURN_IF_ERROR(WriteState(path, out));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.shadow_agents_reported;
    }
    Log("info", "shadow agent reported to the verifier", {{"pid", report.pid}, {"exe", report.exe_path}});
  }
  return Status_::Ok();
}

Result<AgentManifest> Hostd::Identify(const ProcessInfo& caller) {
  auto m = measurer_->Match(caller);
  if (!m.ok()) {
    ReportShadow(caller);
    return Problem(hostd_problem::kUnknownAgent, "this process (" + caller.exe.string() + ", uid " +
                                                     std::to_string(caller.uid) + ") matches no agent manifest on this host");
  }
  return m;
}

std::shared_ptr<Hostd::AgentState> Hostd::Agent(const AgentManifest& manifest) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& a = agents_[manifest.name];
  if (!a) {
    a = std::make_shared<AgentState>();
    a->name = manifest.name;
    a->id = AgentId(manifest.name);
    a->mode = manifest.proof_mode;
  }
  return a;
}

Result<std::shared_ptr<ProofSigner>> Hostd::Signer(AgentState& agent) {
  std::lock_guard<std::mutex> lock(agent.mu);
  if (agent.signer) return agent.signer;
  auto key = keys_->Get(agent.name);
  if (!key.ok() && key.status().code() == StatusCode::kNotFound) {
    key = keys_->Generate(agent.name, hsm::KeyPolicy{});
    if (key.ok()) Log("info", "agent key created in the TPM", {{"agent", agent.id}, {"jkt", (*key)->public_jwk().Thumbprint()}});
  }
  if (!key.ok()) return TpmProblem("the agent key", key.status());
  agent.key = *key;
  agent.signer = std::make_shared<TpmProofSigner>(agent.key, &agent_key_signatures_);
  // A registration recorded by an earlier run.
  if (auto text = ReadText(options_.config.state_dir / "agents" / (agent.name + ".json")); text.ok()) {
    Json j = Json::parse(*text, nullptr, false);
    if (j.is_object() && j.value("jkt", "") == agent.signer->jkt()) agent.registered_for = j.value("registered_for", "");
  }
  return agent.signer;
}

Status_ Hostd::EnsureRegistered(AgentState& agent, const std::string& host_id) {
  Enrollment e = enrollment();
  const std::string want = host_id + " " + e.ak_name_hex;
  std::lock_guard<std::mutex> lock(agent.mu);
  if (agent.registered_for == want) return Status_::Ok();
  auto nonce = verifier_->Challenge(host_id, "certify");
  NoteVerifier(nonce.status());
  if (!nonce.ok()) return VerifierProblem(hostd_problem::kTokenRefused, nonce.status());
  auto certified = attestor_->Certify(kAkId, *agent.key, attestation::CertifyQualifyingData(common::AsBytes(*nonce)));
  if (!certified.ok()) return TpmProblem("TPM2_Certify", certified.status());
  auto registered = verifier_->RegisterAgentKey(host_id, agent.id, *nonce, agent.key->native_public(),
                                                certified->tpms_attest, certified->tpmt_signature);
  NoteVerifier(registered.status());
  if (!registered.ok()) return VerifierProblem(hostd_problem::kTokenRefused, registered.status());
  if (*registered != agent.signer->jkt()) return common::InternalError("the verifier registered another key");
  agent.registered_for = want;
  std::error_code ec;
  fs::create_directories(options_.config.state_dir / "agents", ec);
  Status_ saved = WriteState(options_.config.state_dir / "agents" / (agent.name + ".json"),
                             Json{{"agent_id", agent.id}, {"jkt", *registered}, {"registered_for", want}}.dump() + "\n");
  if (!saved.ok()) Log("warning", "cannot record the agent key registration", {{"error", saved.ToString()}});
  Log("info", "agent key certified (TPM2_Certify) and registered", {{"agent", agent.id}, {"jkt", *registered}});
  return Status_::Ok();
}

Result<Hostd::Evidence> Hostd::MeasureAndQuote(AgentState& agent, const ProcessInfo& caller,
                                               const AgentMeasurement& m, const std::string& nonce) {
  const HostdConfig& c = options_.config;
  AR_ASSIGN_OR_RETURN(auto key_public, attestation::TpmPublic::Parse(agent.key->native_public()));
  std::vector<uint32_t> pcrs = c.quote_pcrs;
  if (std::find(pcrs.begin(), pcrs.end(), c.measurement_pcr) == pcrs.end()) pcrs.push_back(c.measurement_pcr);
  std::sort(pcrs.begin(), pcrs.end());
  std::vector<tpm::PcrBank> selection = {{tpm::kTpmAlgSha256, pcrs}};

  std::lock_guard<std::mutex> lock(tpm_mu_);
  // The log must still explain the PCR (a TPM restart resets it).
  auto current = attestor_->PcrRead({{tpm::kTpmAlgSha256, {c.measurement_pcr}}});
  if (!current.ok()) return TpmProblem("PCR read", current.status());
  auto outcome = log_->Reconcile(current->begin()->second, clock_.NowUnixSeconds());
  if (!outcome.ok()) return Problem(hostd_problem::kTpmUnavailable, outcome.status().message());
  if (*outcome == ReconcileOutcome::kReset) {
    Log("info", "the measurement PCR was reset (TPM restarted): a new measurement log starts", {{"pcr", c.measurement_pcr}});
  }
  attestation::MeasurementEvent event;
  event.time = clock_.NowUnixSeconds();
  event.agent_id = agent.id;
  event.pid = static_cast<uint32_t>(caller.pid);
  event.uid = caller.uid;
  event.exe_path = caller.exe.string();
  event.exe_sha256_hex = m.exe_sha256_hex;
  event.files = m.files;
  // The same process with the same measurement as the agent's latest entry:
  // quote that entry again instead of growing the log (the verifier appraises
  // the agent's latest entry).
  const auto& logged = log_->events();
  auto latest = std::find_if(logged.rbegin(), logged.rend(),
                             [&](const attestation::MeasurementEvent& e) { return e.agent_id == agent.id; });
  const bool unchanged = latest != logged.rend() && latest->pid == event.pid && latest->uid == event.uid &&
                         latest->exe_path == event.exe_path && latest->exe_sha256_hex == event.exe_sha256_hex &&
                         latest->files == event.files;
  if (unchanged) {
    event = *latest;
  } else {
    AR_ASSIGN_OR_RETURN(event, log_->Append(event));
    Status_ extended = attestor_->PcrExtend(c.measurement_pcr, attestation::EventDigest(event));
    if (!extended.ok()) {
      log_->RemoveLast().IgnoreError();
      return TpmProblem("PCR extend", extended);
    }
  }
  Bytes digest = attestation::EventDigest(event);
  Evidence out;
  auto quote = attestor_->Quote(kAkId, selection, attestation::QualifyingData(common::AsBytes(nonce), key_public.name(), digest));
  if (!quote.ok()) return TpmProblem("TPM2_Quote", quote.status());
  auto values = attestor_->PcrRead(selection);
  if (!values.ok()) return TpmProblem("PCR read", values.status());
  out.event = std::move(event);
  out.quote = std::move(*quote);
  for (const auto& [bank_pcr, value] : *values) out.pcrs[bank_pcr.second] = value;
  out.log = log_->Serialize();
  {
    std::lock_guard<std::mutex> stats_lock(mu_);
    ++stats_.quotes;
  }
  return out;
}

void Hostd::DropAgentTokens(const std::string& agent_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++agent_generation_[agent_id];
  attested_.erase(agent_id);
}

void Hostd::DropHostTokens() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [agent, generation] : agent_generation_) ++generation;
  attested_.clear();
  for (const auto& [name, agent] : agents_) ++agent_generation_[agent->id];
}

Result<TokenGrant> Hostd::Acquire(AgentState& agent, const ProcessInfo& caller, const AgentMeasurement& m,
                                  std::string_view audience, std::string_view scope) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.acquisitions;
  }
  AR_RETURN_IF_ERROR(RequireApproved());
  const std::string host = host_id();
  AR_ASSIGN_OR_RETURN(std::shared_ptr<ProofSigner> signer, Signer(agent));
  auto metadata = verifier_->Metadata();
  NoteVerifier(metadata.status());
  if (!metadata.ok()) return VerifierProblem(hostd_problem::kTokenRefused, metadata.status());
  AttestAnswer attested;
  for (int attempt = 0;; ++attempt) {
    AR_RETURN_IF_ERROR(EnsureRegistered(agent, host));
    auto nonce = verifier_->Challenge(host, "attest");
    NoteVerifier(nonce.status());
    if (!nonce.ok()) {
      if (attestation::OAuthErrorOf(nonce.status()) == "host_not_approved") {
        PollEnrollmentNow();
        return Problem(hostd_problem::kHostPending, "the verifier says host " + host + " is not approved");
      }
      return VerifierProblem(hostd_problem::kTokenRefused, nonce.status());
    }
    AR_ASSIGN_OR_RETURN(Evidence evidence, MeasureAndQuote(agent, caller, m, *nonce));
    AttestEvidence e;
    e.host_id = host;
    e.agent_id = agent.id;
    e.nonce = *nonce;
    e.agent_key_public = agent.key->native_public();
    e.quote_attest = std::move(evidence.quote.tpms_attest);
    e.quote_signature = std::move(evidence.quote.tpmt_signature);
    e.pcr_values = std::move(evidence.pcrs);
    e.measurement_log = std::move(evidence.log);
    auto answer = verifier_->Attest(e);
    NoteVerifier(answer.status());
    if (!answer.ok() && attestation::OAuthErrorOf(answer.status()) == "key_not_certified" && attempt == 0) {
      std::lock_guard<std::mutex> lock(agent.mu);
      agent.registered_for.clear();  // register again, once
      continue;
    }
    if (!answer.ok()) {
      if (!IsUnavailable(answer.status())) DropAgentTokens(agent.id);
      return VerifierProblem(hostd_problem::kMeasurementRefused, answer.status());
    }
    attested = std::move(*answer);
    break;
  }
  if (attested.status != "affirming") {
    DropAgentTokens(agent.id);
    std::string reasons;
    for (const auto& r : attested.reasons) reasons += (reasons.empty() ? "" : ", ") + r;
    Log("warning", "measurement refused by the verifier",
        {{"agent", agent.id}, {"status", attested.status}, {"reasons", attested.reasons}, {"pid", caller.pid}});
    return Problem(hostd_problem::kMeasurementRefused,
                   "the verifier's appraisal is " + attested.status + " (" + (reasons.empty() ? "no reason given" : reasons) + ")");
  }
  const int64_t sent_at = clock_.NowUnixSeconds();
  TokenRequestExtras extras;
  extras.requested_ttl = options_.config.token_ttl_seconds;
  if (agent.mode == ProofMode::kSession) {
    // A new session key per token, bound by the TPM key; it signs the
    // token request's proof and every proof made with the token.
    const int64_t lifetime = extras.requested_ttl > 0 ? extras.requested_ttl : attestation::kMaxSessionBindingLifetime;
    auto session = SessionProofSigner::Create(*agent.key, agent.id, sent_at, lifetime, &agent_key_signatures_);
    if (!session.ok()) return TpmProblem("signing the session binding", session.status());
    extras.session_binding = (*session)->binding();
    signer = std::shared_ptr<ProofSigner>(std::move(session).value());
  }
  std::string dpop_nonce;
  Result<TokenAnswer> token = common::InternalError("not sent");
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::optional<std::string_view> nonce;
    if (!dpop_nonce.empty()) nonce = dpop_nonce;
    auto proof = signer->Proof("POST", metadata->token_endpoint, clock_.NowUnixSeconds(), {}, nonce);
    if (!proof.ok()) return TpmProblem("signing the DPoP proof", proof.status());
    token = verifier_->ExchangeToken(*metadata, attested.ear, scope, audience, *proof, extras, &dpop_nonce);
    NoteVerifier(token.status());
    if (token.ok() || attestation::OAuthErrorOf(token.status()) != attestation::oauth_error::kUseDpopNonce ||
        dpop_nonce.empty()) {
      break;
    }
  }
  if (!token.ok()) {
    if (!IsUnavailable(token.status())) {
      DropAgentTokens(agent.id);
      Log("warning", "token refused by the verifier", {{"agent", agent.id}, {"error", token.status().ToString()}});
    }
    return VerifierProblem(hostd_problem::kTokenRefused, token.status());
  }
  TokenGrant g;
  g.access_token = std::move(token->access_token);
  g.expires_at = sent_at + token->expires_in;
  g.scope = token->scope;
  g.audience = std::string(audience);
  g.agent_id = agent.id;
  g.jkt = signer->jkt();
  g.proof_mode = signer->mode();
  g.proof_signer = signer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.tokens_issued;
  }
  Log("info", "token issued", {{"agent", agent.id}, {"audience", g.audience}, {"scope", g.scope},
                               {"expires_at", g.expires_at}, {"jkt", g.jkt}});
  return g;
}

Result<TokenGrant> Hostd::Token(const ProcessInfo& caller, std::string_view audience, std::string_view scope) {
  AR_ASSIGN_OR_RETURN(AgentManifest manifest, Identify(caller));
  auto m = measurer_->Measure(caller, manifest);
  if (!m.ok()) {
    return Problem(hostd_problem::kMeasurementRefused, "cannot measure the caller: " + std::string(m.status().message()));
  }
  std::shared_ptr<AgentState> agent = Agent(manifest);
  std::shared_ptr<CacheEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = cache_[{agent->id, std::string(audience), std::string(scope)}];
    if (!e) e = std::make_shared<CacheEntry>();
    entry = e;
  }
  const std::string fingerprint = m->Fingerprint();
  auto generation = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return agent_generation_[agent->id];
  };
  std::lock_guard<std::mutex> single_flight(entry->mu);
  const int64_t now = clock_.NowUnixSeconds();
  auto& cached = entry->cached;
  const bool usable = cached && cached->generation == generation() && cached->fingerprint == fingerprint &&
                      now < cached->grant.expires_at;
  if (usable) {
    const double lifetime = static_cast<double>(cached->grant.expires_at - cached->issued_at);
    const bool fresh = static_cast<double>(now - cached->issued_at) < lifetime * options_.config.renew_at_fraction;
    bool revoked = false;
    if (fresh && now - cached->checked_at >= options_.config.revocation_check_seconds) {
      // Revoked by an operator since we got it? An unreachable verifier is
      // an outage: keep serving until exp, ask again after the interval.
      auto active = verifier_->Introspect(cached->grant.access_token);
      cached->checked_at = now;
      if (active.ok() && !*active) {
        revoked = true;
        Log("warning", "the verifier says a cached token is no longer active; dropping it",
            {{"agent", agent->id}, {"audience", std::string(audience)}, {"jkt", cached->grant.jkt}});
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.revoked_cached_tokens;
      }
    }
    if (revoked) {
      TrackSession(&cached->grant, nullptr);
      cached.reset();
    } else if (fresh) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.cache_hits;
      TokenGrant g = cached->grant;
      g.from_cache = true;
      return g;
    }
  }
  const uint64_t gen = generation();
  auto fresh = Acquire(*agent, caller, *m, audience, scope);
  if (!fresh.ok()) {
    std::string_view code = HostdProblemOf(fresh.status());
    bool outage = code == hostd_problem::kVerifierUnavailable || code == hostd_problem::kTpmUnavailable;
    if (outage && usable && cached && clock_.NowUnixSeconds() < cached->grant.expires_at) {
      Log("warning", "renewal failed; serving the cached token until it expires",
          {{"agent", agent->id}, {"expires_at", cached->grant.expires_at}, {"error", fresh.status().ToString()}});
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.served_stale_on_outage;
      TokenGrant g = cached->grant;
      g.from_cache = true;
      return g;
    }
    if (!outage) {
      if (cached) TrackSession(&cached->grant, nullptr);
      cached.reset();
    }
    return fresh.status();
  }
  TrackSession(cached ? &cached->grant : nullptr, &*fresh);
  cached = CacheEntry::Cached{*fresh, now, fingerprint, gen, now};
  {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t& until = attested_[agent->id][fingerprint];
    until = std::max(until, fresh->expires_at);
  }
  return fresh;
}

Result<std::string> Hostd::Proof(const ProcessInfo& caller, std::string_view method, std::string_view url,
                                 std::optional<std::string_view> access_token) {
  AR_RETURN_IF_ERROR(CheckProofTarget(method, url));
  AR_ASSIGN_OR_RETURN(AgentManifest manifest, Identify(caller));
  auto m = measurer_->Measure(caller, manifest);
  if (!m.ok()) {
    return Problem(hostd_problem::kMeasurementRefused, "cannot measure the caller: " + std::string(m.status().message()));
  }
  std::shared_ptr<AgentState> agent = Agent(manifest);
  {
    // Only a measurement the verifier affirmed (for a token still live) gets
    // proofs: a changed binary or file cannot ride on a token obtained before
    // the change (THREATS.md #6).
    std::lock_guard<std::mutex> lock(mu_);
    auto per_agent = attested_.find(agent->id);
    const int64_t now = clock_.NowUnixSeconds();
    if (per_agent != attested_.end()) {
      std::erase_if(per_agent->second, [now](const auto& entry) { return entry.second <= now; });
    }
    if (per_agent == attested_.end() || per_agent->second.count(m->Fingerprint()) == 0) {
      return Problem(hostd_problem::kMeasurementRefused,
                     "this process's measurement has not been attested for a live token: ask for a token first "
                     "(POST /v1/token or /v1/headers)");
    }
  }
  std::shared_ptr<ProofSigner> signer;
  if (agent->mode == ProofMode::kSession) {
    AR_ASSIGN_OR_RETURN(signer, SessionSigner(agent->id, access_token));
  } else {
    AR_ASSIGN_OR_RETURN(signer, Signer(*agent));
  }
  auto proof = signer->Proof(method, url, clock_.NowUnixSeconds(), access_token, {});
  if (!proof.ok()) return TpmProblem("signing the DPoP proof", proof.status());
  return proof;
}

void Hostd::TrackSession(const TokenGrant* old_grant, const TokenGrant* new_grant) {
  auto key = [](const TokenGrant& g) { return common::HexEncode(common::Sha256(common::AsBytes(g.access_token))); };
  const int64_t now = clock_.NowUnixSeconds();
  std::lock_guard<std::mutex> lock(mu_);
  // The session key dies with its token: replaced, dropped or expired.
  if (old_grant != nullptr && old_grant->proof_mode == ProofMode::kSession) sessions_.erase(key(*old_grant));
  std::erase_if(sessions_, [now](const auto& entry) { return entry.second.expires_at <= now; });
  if (new_grant != nullptr && new_grant->proof_mode == ProofMode::kSession) {
    sessions_[key(*new_grant)] = Session{new_grant->agent_id, new_grant->expires_at, new_grant->proof_signer};
  }
}

Result<std::shared_ptr<ProofSigner>> Hostd::SessionSigner(const std::string& agent_id,
                                                         std::optional<std::string_view> access_token) {
  if (!access_token) {
    return Problem(hostd_problem::kInvalidInput,
                   "this agent's proof_mode is \"session\": access_token is required (proofs are signed by the "
                   "token's session key)");
  }
  const std::string key = common::HexEncode(common::Sha256(common::AsBytes(*access_token)));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second.agent_id != agent_id || it->second.expires_at <= clock_.NowUnixSeconds()) {
    return Problem(hostd_problem::kInvalidInput,
                   "access_token is not a current token of this agent (expired, renewed or never issued here): "
                   "ask for a token first");
  }
  return it->second.signer;
}

}  // namespace agentroot::host
