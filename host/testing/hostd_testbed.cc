#include "hostd_testbed.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace agentroot::host::testing {

namespace fs = std::filesystem;
using common::Json;

std::string HostdTestbed::Sha256File(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return common::HexEncode(common::Sha256(common::AsBytes(buf.str())));
}

void HostdTestbed::WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
}

common::Status HostdTestbed::Init(const Options& options) {
  setenv("TSS2_LOG", "all+NONE", 1);
  AR_ASSIGN_OR_RETURN(fleet_, simulators::testing::ScopedFleet::Create(1));
  machine_ = fleet_->info().machines[0];
  dir_ = fleet_->info().dir / "hostd";
  fs::create_directories(dir_ / "manifests");
  AR_ASSIGN_OR_RETURN(pki_, http::testing::TestPki::Create("agentroot test CA"));
  WriteFile(dir_ / "verifier-ca.pem", pki_->ca_certificate_pem());

  AR_ASSIGN_OR_RETURN(auto store, attestation::store::Store::Open("sqlite:" + (dir_ / "v.db").string(), clock_));
  store_ = std::move(store);
  AR_ASSIGN_OR_RETURN(auto issuer, common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1"));
  issuer_ = std::move(issuer);
  attestation::VerifierConfig vc;
  vc.trust_domain = "example.org";
  std::ifstream roots(fleet_->info().manufacturer_ca);
  std::stringstream buf;
  buf << roots.rdbuf();
  vc.manufacturer_roots_pem = buf.str();
  vc.measurement_pcr = 15;
  vc.issuer = "https://127.0.0.1";
  vc.token_endpoint = "https://127.0.0.1/oauth/token";
  vc.token_rate_per_minute = options.token_rate_per_minute;
  vc.challenge_rate_per_minute = options.challenge_rate_per_minute;
  AR_ASSIGN_OR_RETURN(auto core, attestation::VerifierCore::Create(vc, store_, issuer_, {}, clock_));
  core_ = std::move(core);
  service_ = std::make_unique<attestation::VerifierService>(core_);
  AR_RETURN_IF_ERROR(StartVerifier(0));
  for (auto [id, role] : {std::pair{"alice", attestation::store::Role::kOwner},
                          std::pair{"bob", attestation::store::Role::kReviewer},
                          std::pair{"carol", attestation::store::Role::kInfra},
                          std::pair{"dave", attestation::store::Role::kAuditor}}) {
    attestation::store::Operator op;
    op.id = id;
    op.display_name = id;
    op.roles = {role};
    op.client_cert_fingerprint = std::string(64, id[0]);
    AR_RETURN_IF_ERROR(store_->CreateOperator(op, nullptr));
  }

  // The agent: this process's binary plus one configuration file.
  exe_ = fs::canonical("/proc/self/exe");
  agent_config_ = dir_ / "crm-bot.yaml";
  WriteFile(agent_config_, "mode: read-only\n");
  WriteManifest("tpm");

  config_.verifier_url = base_;
  config_.verifier_ca_file = dir_ / "verifier-ca.pem";
  config_.trust_domain = "example.org";
  config_.tcti = machine_.tcti;
  config_.ek_intermediates_file = fleet_->info().manufacturer_intermediate;
  config_.host_group = kTestbedGroup;
  config_.state_dir = dir_ / "state";
  config_.manifests_dir = dir_ / "manifests";
  config_.socket_path = dir_ / "hostd.sock";
  config_.enroll_backoff_initial_ms = 50;
  config_.enroll_backoff_max_ms = 400;
  config_.status_poll_seconds = 1;
  return common::Status::Ok();
}

void HostdTestbed::WriteManifest(const std::string& proof_mode) {
  WriteFile(dir_ / "manifests" / "crm-bot.toml",
            "name = \"crm-bot\"\nexe = \"" + exe_.string() + "\"\nuid = " + std::to_string(::getuid()) +
                "\nfiles = [\"" + agent_config_.string() + "\"]\nproof_mode = \"" + proof_mode + "\"\n");
}

void HostdTestbed::Stop() {
  if (hostd_) hostd_->Stop();
  if (server_) server_->Stop(std::chrono::milliseconds(200));
}

common::Status HostdTestbed::StartVerifier(uint16_t port) {
  http::ServerOptions options;
  AR_ASSIGN_OR_RETURN(options.tcp, pki_->LoopbackListener(port));
  options.worker_threads = 2;
  options.io_threads = 1;
  AR_ASSIGN_OR_RETURN(server_, http::HttpServer::Create(std::move(options)));
  AR_RETURN_IF_ERROR(service_->Register(*server_));
  AR_RETURN_IF_ERROR(server_->Start());
  base_ = "https://127.0.0.1:" + std::to_string(server_->port());
  return common::Status::Ok();
}

common::Status HostdTestbed::StartHostd() {
  HostdOptions options;
  options.config = config_;
  options.clock = &clock_;
  options.log_sink = [this](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu_);
    log_ += line + "\n";
  };
  options.shadow_agent_hook = [this](const ShadowAgent& s) { shadows_.push_back(s.exe); };
  AR_ASSIGN_OR_RETURN(hostd_, Hostd::Create(std::move(options)));
  return hostd_->Start();
}

common::Status HostdTestbed::StartApproved() {
  AR_RETURN_IF_ERROR(StartHostd());
  if (!hostd_->WaitForEnrollment("pending", std::chrono::seconds(20))) {
    return common::DeadlineExceededError("hostd never became pending: " + hostd_->Status().dump());
  }
  AR_RETURN_IF_ERROR(core_->ApproveHost("carol", hostd_->host_id()));
  hostd_->PollEnrollmentNow();
  if (!hostd_->WaitForEnrollment("approved", std::chrono::seconds(10))) {
    return common::DeadlineExceededError("hostd never became approved: " + hostd_->Status().dump());
  }
  return RegisterAgent();
}

common::Status HostdTestbed::RegisterAgent() {
  attestation::store::Agent agent;
  agent.id = kTestbedAgent;
  agent.name = "crm-bot";
  agent.host_group = kTestbedGroup;
  agent.allowed_scopes = {"crm.read", "crm.write"};
  agent.allowed_audiences = {kTestbedCrm, kTestbedErp};
  agent.max_token_ttl_seconds = 300;
  agent.expires_at = clock_.NowUnixSeconds() + 86400;
  agent.owners = {"alice"};
  AR_RETURN_IF_ERROR(core_->CreateAgent("alice", agent));
  Json manifest = {{"exe_sha256", Sha256File(exe_)}, {"files", {{agent_config_.string(), Sha256File(agent_config_)}}}};
  AR_ASSIGN_OR_RETURN(int64_t version, core_->AddManifest("alice", kTestbedAgent, manifest));
  return core_->ReviewManifest("bob", kTestbedAgent, version, true, "reviewed");
}

std::unique_ptr<http::HttpClient> HostdTestbed::Socket() {
  http::ClientOptions o;
  o.unix_socket_path = config_.socket_path.string();
  return std::move(http::HttpClient::Create(std::move(o))).value();
}

ProcessInfo HostdTestbed::Self() { return *InspectProcess(::getpid(), ::getuid(), ::getgid()); }

std::unique_ptr<attestation::AccessTokenValidator> HostdTestbed::Validator(std::string audience) {
  auto jwks = std::make_shared<attestation::JwksCache>(
      [this]() -> common::Result<std::string> { return core_->Jwks().dump(); }, clock_,
      attestation::JwksCache::Options{});
  auto replay = std::make_shared<attestation::InMemoryReplayCache>(1000, clock_);
  attestation::AccessTokenPolicy policy;
  policy.issuer = "https://127.0.0.1";
  policy.audience = std::move(audience);
  return std::move(attestation::AccessTokenValidator::Create(policy, jwks, replay, &clock_)).value();
}

std::string HostdTestbed::Log() {
  std::lock_guard<std::mutex> lock(log_mu_);
  return log_;
}

}  // namespace agentroot::host::testing
