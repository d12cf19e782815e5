// agentroot-verifier-load: service-level load generator for the verifier
// (issue 4 "Performance"). See docs/benchmarks.md.
//
// It seeds a store (SQLite file or PostgreSQL) directly through the Store API
// with approved hosts (software AKs in TPM formats), agents, approved
// manifests and certified agent keys; writes a TOML config (test PKI TLS
// certificate, --dev file issuer key) and starts the real agentroot-verifier
// as a child process on 127.0.0.1; then drives it over keep-alive HTTPS
// connections, one client thread per connection:
//   attest+token  challenge -> attest (quote forged with the host's software
//                 AK over the right qualifying data and measurement log) ->
//                 token exchange with a pre-generated DPoP proof.
//                 Closed loop for the peak rate, then an open loop at half
//                 the peak for latency.
//   token         the token endpoint alone: EARs already held, one fresh
//                 pre-generated DPoP proof (unique jti) per request.
// For each phase it reads the verifier's utime+stime (all threads) from
// /proc/<pid>/stat before and after, and the PostgreSQL server processes'
// when it started that server. Per-core throughput = requests / server CPU
// seconds; its ceiling is the ES256 signatures and verifications the
// verifier performs per request, priced with `openssl speed -mr ecdsap256`
// run single-threaded in the same run.
//
// Writes a JSON list in scripts/bench.py's format ({"name","value","unit",
// "ceiling","ceiling_source","ratio"} plus "requests" and "errors").
// Exit status: 0 when every request succeeded, 1 when some failed (the
// figures are still written), 2 when the run could not be set up.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/store/store.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/signer.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"
#include "child_process.h"
#include "testing/fake_tpm.h"
#include "testing/postgres_server.h"

namespace agentroot::load {
namespace {

namespace fs = std::filesystem;
namespace store = attestation::store;
namespace fake = attestation::testing;
using common::Bytes;
using common::Json;
using common::Result;
using common::Status;
using SteadyClock = std::chrono::steady_clock;

constexpr char kTrustDomain[] = "load.test";
constexpr char kIssuer[] = "https://127.0.0.1";
constexpr char kTokenUrl[] = "https://127.0.0.1/oauth/token";
constexpr char kAudience[] = "https://rs.load.test";
constexpr uint32_t kPcr = 15;
constexpr char kTokenForm[] =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
    "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
    "&scope=load.read&audience=https%3A%2F%2Frs.load.test&subject_token=";
// The verifier's rate limits in the load's config: far above what the load
// asks for, so limits are checked (their queries cost what they cost) and
// never refuse.
constexpr int kTokensPerAgentPerMinute = 100000;
constexpr int kChallengesPerHostPerMinute = 1000000;

struct Options {
  std::string verifier_bin;
  std::string store = "sqlite";
  std::string postgres_uri;
  int hosts = 50;
  int agents_per_host = 20;
  int connections = 8;
  double duration = 10;
  double warmup = 1;
  int openssl_seconds = 2;
  int server_threads = 0;
  int server_workers = -1;       // -1: the verifier's default
  bool server_inline = false;    // server.inline_handlers (default: the verifier's, off)
  std::string out;
  bool keep_work_dir = false;
};

struct HostState {
  std::string id;
  fake::FakeKey ak;
};

struct AgentState {
  std::string id;
  std::size_t host = 0;
  std::unique_ptr<common::OpenSslSigner> key;  // the agent key: signs DPoP proofs
  std::string key_public_b64;                  // TPM2B_PUBLIC
  Bytes key_name;
  std::string log;  // one measurement event, JSON lines
  Bytes event_digest;
  Bytes pcr_value;  // PCR 15 after the log
  std::string pcr_hex;
  std::string ear;
  SteadyClock::time_point ear_at{};
  std::vector<std::string> proofs;  // pre-generated, each used once
  std::size_t next_proof = 0;
};

// One client thread: one keep-alive connection and the agents it drives.
struct Worker {
  std::unique_ptr<http::HttpClient> client;
  std::vector<AgentState*> agents;
  std::size_t cursor = 0;
  // Per phase.
  uint64_t ok = 0;
  uint64_t errors = 0;
  uint64_t inline_proofs = 0;
  std::vector<double> latency_us;
  std::string first_error;
};

enum class Op { kAttestToken, kAttest, kToken };

struct PhaseStats {
  uint64_t ok = 0;
  uint64_t errors = 0;
  uint64_t inline_proofs = 0;
  double wall_seconds = 0;
  double server_cpu_seconds = 0;
  std::optional<double> postgres_cpu_seconds;
  double client_cpu_seconds = 0;
  std::vector<double> latency_us;  // sorted
  std::string first_error;

  double Rate() const { return wall_seconds > 0 ? static_cast<double>(ok) / wall_seconds : 0; }
  double Percentile(double q) const {
    if (latency_us.empty()) return 0;
    std::size_t i = std::min(latency_us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(latency_us.size())));
    return latency_us[i];
  }
};

double ClientCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

Status WriteFile(const fs::path& path, std::string_view content, fs::perms perms = fs::perms::owner_read | fs::perms::owner_write) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return common::InternalError("cannot write " + path.string());
  fs::permissions(path, perms);
  return Status::Ok();
}

std::string ReadTail(const fs::path& path, std::size_t max_bytes = 4000) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string s = buf.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

// ---------------------------------------------------------------- the fleet

Result<std::vector<HostState>> MakeHosts(int count) {
  std::vector<HostState> hosts;
  for (int i = 0; i < count; ++i) {
    HostState h;
    h.id = "host-load-" + std::to_string(i);
    h.ak = fake::MakeEccKey(TPM2_ECC_NIST_P256, fake::kAkAttributes);
    hosts.push_back(std::move(h));
  }
  return hosts;
}

Result<std::vector<AgentState>> MakeAgents(const std::vector<HostState>& hosts, int per_host) {
  std::vector<AgentState> agents;
  const int64_t now = common::Clock::System().NowUnixSeconds();
  for (std::size_t h = 0; h < hosts.size(); ++h) {
    for (int j = 0; j < per_host; ++j) {
      AgentState a;
      const std::string name = "load-h" + std::to_string(h) + "-a" + std::to_string(j);
      a.id = std::string("spiffe://") + kTrustDomain + "/agent/" + name;
      a.host = h;
      fake::FakeKey key = fake::MakeEccKey(TPM2_ECC_NIST_P256, fake::kAgentKeyAttributes);
      AR_ASSIGN_OR_RETURN(attestation::TpmPublic parsed, attestation::TpmPublic::Parse(key.tpm2b_public));
      a.key_name = parsed.name();
      a.key_public_b64 = common::Base64UrlEncode(key.tpm2b_public);
      AR_ASSIGN_OR_RETURN(a.key, common::OpenSslSigner::Create(std::move(key.key), common::JwsAlgorithm::kEs256));
      attestation::MeasurementEvent event;
      event.sequence = 1;
      event.time = now;
      event.agent_id = a.id;
      event.pid = static_cast<uint32_t>(1000 + agents.size());
      event.uid = 1000;
      event.exe_path = "/opt/agents/" + name;
      event.exe_sha256_hex = common::HexEncode(common::Sha256(common::AsBytes(name)));
      a.log = attestation::SerializeLog({event});
      a.event_digest = attestation::EventDigest(event);
      a.pcr_value = attestation::ReplayLog({event});
      a.pcr_hex = common::HexEncode(a.pcr_value);
      agents.push_back(std::move(a));
    }
  }
  return agents;
}

// Writes what enrollment, governance and key certification would have: the
// registry the measured requests read. Not measured.
Status Seed(store::Store& s, const std::vector<HostState>& hosts, const std::vector<AgentState>& agents) {
  store::Operator owner;
  owner.id = "load-owner";
  owner.display_name = "load owner";
  owner.roles = {store::Role::kOwner};
  AR_RETURN_IF_ERROR(s.CreateOperator(owner, nullptr));
  store::Operator reviewer;
  reviewer.id = "load-reviewer";
  reviewer.display_name = "load reviewer";
  reviewer.roles = {store::Role::kReviewer};
  AR_RETURN_IF_ERROR(s.CreateOperator(reviewer, nullptr));
  for (const HostState& h : hosts) {
    store::Host host;
    host.id = h.id;
    // The EK is never used after enrollment; a distinct public area keeps
    // the unique EK hash unique. No certificate: the EK is pinned by hash.
    host.ek_public = fake::MakeEccKey(TPM2_ECC_NIST_P256, fake::kEkAttributes, TPM2_ALG_NULL).tpm2b_public;
    host.ak_public = h.ak.tpm2b_public;
    AR_ASSIGN_OR_RETURN(attestation::TpmPublic ak, attestation::TpmPublic::Parse(host.ak_public));
    host.ak_name = ak.name();
    host.host_group = "load-hosts";
    AR_RETURN_IF_ERROR(s.CreateHost(host, nullptr).status());
    AR_RETURN_IF_ERROR(s.ApproveHost(host.id, "load-seed", nullptr));
  }
  const int64_t now = common::Clock::System().NowUnixSeconds();
  for (const AgentState& a : agents) {
    store::Agent agent;
    agent.id = a.id;
    agent.name = a.id.substr(a.id.rfind('/') + 1);
    agent.host_id = hosts[a.host].id;
    agent.allowed_scopes = {"load.read"};
    agent.allowed_audiences = {kAudience};
    agent.max_token_ttl_seconds = 300;
    agent.expires_at = now + 86400;
    agent.owners = {"load-owner"};
    AR_RETURN_IF_ERROR(s.CreateAgent(agent, nullptr));
    Json manifest = {{"exe_sha256", common::HexEncode(common::Sha256(common::AsBytes(agent.name)))},
                     {"files", Json::object()}};
    AR_ASSIGN_OR_RETURN(int64_t version, s.AddManifest(a.id, manifest, nullptr));
    AR_RETURN_IF_ERROR(s.ReviewManifest(a.id, version, store::ManifestStatus::kApproved, "load-reviewer", "seeded", nullptr));
    store::AgentKey key;
    key.thumbprint = a.key->public_jwk().Thumbprint();
    key.agent_id = a.id;
    key.host_id = hosts[a.host].id;
    key.public_jwk = a.key->public_jwk().ToJson();
    AR_ASSIGN_OR_RETURN(key.tpm_public, common::Base64UrlDecode(a.key_public_b64));
    AR_RETURN_IF_ERROR(s.AddAgentKey(key, nullptr));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- requests

Status Failed(std::string_view what, const Result<http::Response>& r) {
  if (!r.ok()) return common::UnavailableError(std::string(what) + ": " + r.status().ToString());
  // Error bodies are problem details or OAuth errors: no tokens in them.
  return common::InternalError(std::string(what) + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300));
}

Status Attest(Worker& w, AgentState& a, const std::vector<HostState>& hosts) {
  const HostState& host = hosts[a.host];
  auto challenge = w.client->Post("/v1/hosts/" + host.id + "/challenges", R"({"purpose":"attest"})");
  if (!challenge.ok() || challenge->status != 201) return Failed("challenge", challenge);
  AR_ASSIGN_OR_RETURN(Json c, common::ParseJsonStrict(challenge->body));
  const std::string nonce = c.value("nonce", "");
  Bytes extra = attestation::QualifyingData(common::AsBytes(nonce), a.key_name, a.event_digest);
  Bytes quote = fake::QuoteAttest(extra, {kPcr}, {a.pcr_value});
  Bytes signature = fake::SignTpm(host.ak, quote, TPM2_ALG_ECDSA);
  Json body = {{"host_id", host.id},
               {"agent_id", a.id},
               {"nonce", nonce},
               {"agent_key_public", a.key_public_b64},
               {"quote_attest", common::Base64UrlEncode(quote)},
               {"quote_signature", common::Base64UrlEncode(signature)},
               {"pcr_values", {{std::to_string(kPcr), a.pcr_hex}}},
               {"measurement_log", a.log}};
  auto attested = w.client->Post("/v1/attest", body.dump());
  if (!attested.ok() || attested->status != 200) return Failed("attest", attested);
  AR_ASSIGN_OR_RETURN(Json result, common::ParseJsonStrict(attested->body));
  if (result.value("status", "") != "affirming") return Failed("attest (not affirming)", attested);
  a.ear = result.value("ear", "");
  a.ear_at = SteadyClock::now();
  return Status::Ok();
}

Result<std::string> NextProof(Worker& w, AgentState& a) {
  if (a.next_proof < a.proofs.size()) return std::move(a.proofs[a.next_proof++]);
  ++w.inline_proofs;
  return attestation::CreateDpopProof(*a.key, "POST", kTokenUrl, common::Clock::System().NowUnixSeconds());
}

Status Token(Worker& w, AgentState& a) {
  AR_ASSIGN_OR_RETURN(std::string proof, NextProof(w, a));
  http::ClientRequest r;
  r.method = "POST";
  r.target = "/oauth/token";
  r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  r.headers.emplace("DPoP", std::move(proof));
  r.body = kTokenForm + a.ear;
  auto token = w.client->Send(r);
  if (!token.ok() || token->status != 200) return Failed("token", token);
  return Status::Ok();
}

// ---------------------------------------------------------------- the run

struct Env {
  Options options;
  fs::path dir;
  std::unique_ptr<http::testing::TestPki> pki;
  std::unique_ptr<store::testing::ScopedPostgresServer> postgres;  // destroyed after the verifier
  pid_t postmaster = 0;
  std::string store_uri;
  std::unique_ptr<ChildProcess> verifier;
  int port = 0;
  std::vector<HostState> hosts;
  std::vector<AgentState> agents;
  std::vector<Worker> workers;

  ~Env() {
    if (verifier) verifier->Stop();
    if (!options.keep_work_dir && !dir.empty()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

Result<std::string> PrepareStore(Env& env) {
  if (env.options.store == "sqlite") return "sqlite:" + (env.dir / "verifier.db").string();
  if (!env.options.postgres_uri.empty()) return env.options.postgres_uri;
  AR_ASSIGN_OR_RETURN(env.postgres, store::testing::ScopedPostgresServer::Start());
  std::ifstream pid_file(env.postgres->dir() + "/data/postmaster.pid");
  long pid = 0;
  if (pid_file >> pid) env.postmaster = static_cast<pid_t>(pid);
  return env.postgres->CreateDatabase();
}

Status StartVerifier(Env& env) {
  auto server = env.pki->IssueServer();
  if (!server.ok()) return server.status();
  AR_RETURN_IF_ERROR(WriteFile(env.dir / "ca.pem", env.pki->ca_certificate_pem()));
  AR_RETURN_IF_ERROR(WriteFile(env.dir / "server.crt", server->certificate_pem));
  AR_RETURN_IF_ERROR(WriteFile(env.dir / "server.key", common::ToString(server->private_key_pem.Reveal())));
  fs::create_directories(env.dir / "issuer");
  std::ostringstream toml;
  auto q = [](const std::string& s) { return Json(s).dump(); };  // a TOML basic string
  toml << "[server]\nlisten = \"127.0.0.1:0\"\n"
       << "tls_certificate = " << q((env.dir / "server.crt").string()) << "\n"
       << "tls_private_key = " << q((env.dir / "server.key").string()) << "\n"
       << "threads = " << env.options.server_threads << "\n"
       << (env.options.server_inline ? "inline_handlers = true\n" : "")
       << (env.options.server_workers >= 0 ? "workers = " + std::to_string(env.options.server_workers) + "\n" : "")
       << "\n"
       << "[verifier]\nissuer = " << q(kIssuer) << "\ntrust_domain = " << q(kTrustDomain) << "\n"
       // The EK chain is not checked after enrollment; any PEM certificate does.
       << "manufacturer_roots = " << q((env.dir / "ca.pem").string()) << "\n"
       << "measurement_pcr = " << kPcr << "\n"
       << "token_rate_per_minute = " << kTokensPerAgentPerMinute << "\n"
       << "challenge_rate_per_minute = " << kChallengesPerHostPerMinute << "\n\n"
       << "[store]\nuri = " << q(env.store_uri) << "\n\n"
       << "[issuer_key]\nbackend = \"file\"\ndir = " << q((env.dir / "issuer").string()) << "\nkey_id = \"issuer-load\"\n";
  AR_RETURN_IF_ERROR(WriteFile(env.dir / "verifier.toml", toml.str()));
  const fs::path log = env.dir / "verifier.log";
  AR_ASSIGN_OR_RETURN(env.verifier, ChildProcess::Start({env.options.verifier_bin, "--dev", "--config",
                                                         (env.dir / "verifier.toml").string()}, log));
  // The verifier logs {"msg":"listening","port":N} once it serves.
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (env.port == 0) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      auto j = common::ParseJsonStrict(line);
      if (j.ok() && j->is_object() && j->value("msg", "") == "listening") env.port = j->value("port", 0);
    }
    if (env.port != 0) break;
    if (!env.verifier->Running()) {
      return common::UnavailableError("agentroot-verifier exited (" + std::to_string(env.verifier->exit_code()) +
                                      "):\n" + ReadTail(log));
    }
    if (SteadyClock::now() > deadline) return common::DeadlineExceededError("agentroot-verifier did not start:\n" + ReadTail(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int i = 0; i < env.options.connections; ++i) {
    http::ClientOptions options;
    options.base_url = "https://127.0.0.1:" + std::to_string(env.port);
    options.ca_pem = env.pki->ca_certificate_pem();
    Worker w;
    AR_ASSIGN_OR_RETURN(w.client, http::HttpClient::Create(std::move(options)));
    auto jwks = w.client->Get("/.well-known/jwks.json");  // opens the kept-alive connection
    if (!jwks.ok() || jwks->status != 200) return Failed("jwks", jwks);
    env.workers.push_back(std::move(w));
  }
  for (std::size_t i = 0; i < env.agents.size(); ++i) {
    env.workers[i % env.workers.size()].agents.push_back(&env.agents[i]);
  }
  return Status::Ok();
}

// Pre-generates DPoP proofs for about `expected_ops` token requests (at
// least one per agent), spread
// over the agents in the order the workers visit them, so the client's own
// signing stays out of the measured phase. Stale proofs are dropped.
void PregenerateProofs(Env& env, double expected_ops) {
  std::vector<std::thread> threads;
  for (Worker& w : env.workers) {
    threads.emplace_back([&w, expected_ops, total = env.workers.size()] {
      const double share = expected_ops / static_cast<double>(total);
      const std::size_t n = w.agents.size();
      if (n == 0) return;
      std::vector<std::size_t> per_agent(n, 1);
      for (std::size_t k = 0; k < static_cast<std::size_t>(std::ceil(share)); ++k) ++per_agent[(w.cursor + k) % n];
      for (std::size_t i = 0; i < n; ++i) {
        AgentState& a = *w.agents[i];
        a.proofs.clear();
        a.next_proof = 0;
        const int64_t iat = common::Clock::System().NowUnixSeconds();
        for (std::size_t k = 0; k < per_agent[i]; ++k) {
          auto proof = attestation::CreateDpopProof(*a.key, "POST", kTokenUrl, iat);
          if (proof.ok()) a.proofs.push_back(std::move(proof).value());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

// Runs `op` from every worker for `seconds`: closed loop when `open_rate` is
// 0, else each worker starts requests on a fixed schedule so that together
// they offer `open_rate` per second (latency counted from the scheduled
// start, so queueing delay is not hidden).
Result<PhaseStats> RunPhase(Env& env, Op op, double seconds, double open_rate) {
  for (Worker& w : env.workers) {
    w.ok = w.errors = w.inline_proofs = 0;
    w.latency_us.clear();
    w.first_error.clear();
  }
  PhaseStats stats;
  AR_ASSIGN_OR_RETURN(double server0, ProcessCpuSeconds(env.verifier->pid()));
  std::optional<double> pg0;
  if (env.postmaster != 0) {
    AR_ASSIGN_OR_RETURN(pg0, ProcessTreeCpuSeconds(env.postmaster));
  }
  const double client0 = ClientCpuSeconds();
  const auto start = SteadyClock::now();
  const auto end = start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
  const std::size_t nworkers = env.workers.size();
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < nworkers; ++t) {
    threads.emplace_back([&env, op, open_rate, start, end, t, nworkers] {
      Worker& w = env.workers[t];
      if (w.agents.empty()) return;
      auto one = [&](AgentState& a) -> Status {
        switch (op) {
          case Op::kAttestToken: {
            AR_RETURN_IF_ERROR(Attest(w, a, env.hosts));
            return Token(w, a);
          }
          case Op::kAttest: return Attest(w, a, env.hosts);
          case Op::kToken: return Token(w, a);
        }
        return Status::Ok();
      };
      const auto interval = open_rate > 0 ? std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(
                                                static_cast<double>(nworkers) / open_rate))
                                          : SteadyClock::duration::zero();
      auto scheduled = start + interval * static_cast<int64_t>(t) / static_cast<int64_t>(nworkers);
      while (true) {
        if (open_rate > 0) {
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        } else {
          scheduled = SteadyClock::now();
          if (scheduled >= end) break;
        }
        AgentState& a = *w.agents[w.cursor++ % w.agents.size()];
        Status s = one(a);
        const auto done = SteadyClock::now();
        if (s.ok()) {
          ++w.ok;
          w.latency_us.push_back(std::chrono::duration<double, std::micro>(done - scheduled).count());
        } else {
          if (w.errors++ == 0) w.first_error = s.ToString();
          if (w.errors > 1000) break;  // the verifier is failing: stop hammering it
        }
        scheduled += interval;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stats.wall_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  stats.client_cpu_seconds = ClientCpuSeconds() - client0;
  AR_ASSIGN_OR_RETURN(double server1, ProcessCpuSeconds(env.verifier->pid()));
  stats.server_cpu_seconds = server1 - server0;
  if (pg0) {
    AR_ASSIGN_OR_RETURN(double pg1, ProcessTreeCpuSeconds(env.postmaster));
    stats.postgres_cpu_seconds = pg1 - *pg0;
  }
  for (Worker& w : env.workers) {
    stats.ok += w.ok;
    stats.errors += w.errors;
    stats.inline_proofs += w.inline_proofs;
    stats.latency_us.insert(stats.latency_us.end(), w.latency_us.begin(), w.latency_us.end());
    if (stats.first_error.empty()) stats.first_error = w.first_error;
  }
  std::sort(stats.latency_us.begin(), stats.latency_us.end());
  return stats;
}

// Agents without an EAR younger than `max_age` attest again (not measured).
Status RefreshEars(Env& env, std::chrono::seconds max_age) {
  std::vector<std::thread> threads;
  std::vector<Status> results(env.workers.size());
  for (std::size_t t = 0; t < env.workers.size(); ++t) {
    threads.emplace_back([&env, &results, t, max_age] {
      Worker& w = env.workers[t];
      for (AgentState* a : w.agents) {
        if (!a->ear.empty() && SteadyClock::now() - a->ear_at < max_age) continue;
        if (Status s = Attest(w, *a, env.hosts); !s.ok()) {
          results[t] = s;
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Status& s : results) AR_RETURN_IF_ERROR(s);
  return Status::Ok();
}

struct SpeedRates {
  double sign = 0;
  double verify = 0;
};

// ECDSA P-256 sign/verify per second on one core, `openssl speed -mr`.
Result<SpeedRates> OpensslSpeed(const Env& env) {
  std::string openssl = "/usr/bin/openssl";
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string d; std::getline(dirs, d, ':');) {
      if (!d.empty() && ::access((d + "/openssl").c_str(), X_OK) == 0) {
        openssl = d + "/openssl";
        break;
      }
    }
  }
  const fs::path out = env.dir / "openssl-speed.txt";
  AR_ASSIGN_OR_RETURN(auto child, ChildProcess::Start({openssl, "speed", "-seconds", std::to_string(env.options.openssl_seconds),
                                                       "-mr", "ecdsap256"}, out));
  if (!child->Wait(std::chrono::seconds(env.options.openssl_seconds * 4 + 30)) || child->exit_code() != 0) {
    child->Stop();
    return common::InternalError("openssl speed failed:\n" + ReadTail(out));
  }
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) {
    // +F4:<index>:<bits>:<sign/s>:<verify/s>
    if (line.rfind("+F4:", 0) != 0) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string part; std::getline(ss, part, ':');) f.push_back(part);
    if (f.size() == 5 && f[2] == "256") return SpeedRates{std::stod(f[3]), std::stod(f[4])};
  }
  return common::InternalError("openssl speed: no ecdsap256 result in\n" + ReadTail(out));
}

void PrintPhase(const std::string& name, const PhaseStats& s) {
  std::cerr << "load: " << name << ": " << s.ok << " ok, " << s.errors << " errors in " << s.wall_seconds << " s ("
            << s.Rate() << "/s), server CPU " << s.server_cpu_seconds << " s";
  if (s.postgres_cpu_seconds) std::cerr << ", postgres CPU " << *s.postgres_cpu_seconds << " s";
  std::cerr << ", client CPU " << s.client_cpu_seconds << " s, p50 " << s.Percentile(0.5) / 1000 << " ms, p99 "
            << s.Percentile(0.99) / 1000 << " ms";
  if (s.inline_proofs > 0) std::cerr << ", " << s.inline_proofs << " proofs signed inline";
  std::cerr << "\n";
  if (!s.first_error.empty()) std::cerr << "load: " << name << ": first error: " << s.first_error << "\n";
}

double Round(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

Json Item(const std::string& name, double value, const std::string& unit, const PhaseStats& phase,
          std::optional<double> ceiling = std::nullopt, const std::string& ceiling_source = "") {
  Json j = {{"name", name}, {"value", Round(value, 1)}, {"unit", unit}, {"ceiling", nullptr},
            {"ceiling_source", ceiling_source}, {"ratio", nullptr},
            {"requests", phase.ok}, {"errors", phase.errors}};
  if (ceiling && *ceiling > 0) {
    j["ceiling"] = Round(*ceiling, 1);
    j["ratio"] = Round(value / *ceiling, 3);
  }
  return j;
}

Result<int> Run(const Options& options) {
  Env env;
  env.options = options;
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/agentroot-load-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return common::InternalError("mkdtemp failed");
  env.dir = templ;
  AR_ASSIGN_OR_RETURN(env.pki, http::testing::TestPki::Create("agentroot load CA"));

  std::cerr << "load: " << options.store << ", " << options.hosts << " hosts x " << options.agents_per_host
            << " agents, " << options.connections << " connections, " << options.duration << " s per phase\n";
  AR_ASSIGN_OR_RETURN(env.hosts, MakeHosts(options.hosts));
  AR_ASSIGN_OR_RETURN(env.agents, MakeAgents(env.hosts, options.agents_per_host));
  AR_ASSIGN_OR_RETURN(env.store_uri, PrepareStore(env));
  {
    const auto t0 = SteadyClock::now();
    AR_ASSIGN_OR_RETURN(auto s, store::Store::Open(env.store_uri, common::Clock::System()));
    AR_RETURN_IF_ERROR(Seed(*s, env.hosts, env.agents));
    std::cerr << "load: seeded the store in " << std::chrono::duration<double>(SteadyClock::now() - t0).count()
              << " s\n";
  }
  AR_RETURN_IF_ERROR(StartVerifier(env));
  std::cerr << "load: agentroot-verifier pid " << env.verifier->pid() << " on 127.0.0.1:" << env.port << "\n";

  AR_ASSIGN_OR_RETURN(SpeedRates speed, OpensslSpeed(env));
  // Per request, from the verifier's code: Attest verifies the quote (1) and
  // signs the EAR (1); Token verifies the DPoP proof (1) and the EAR (1) and
  // signs the access token (1). Challenges and the kept-alive TLS
  // connections cost no signature.
  const double attest_token_ceiling = 1.0 / (3.0 / speed.verify + 2.0 / speed.sign);
  const double token_ceiling = 1.0 / (2.0 / speed.verify + 1.0 / speed.sign);
  std::cerr << "load: openssl speed ecdsap256: " << speed.sign << " sign/s, " << speed.verify << " verify/s\n";

  // a) attest + token: warm up (rate estimate), closed-loop peak, then an
  // open loop at half the peak.
  const double seconds = options.duration;
  AR_ASSIGN_OR_RETURN(PhaseStats warm, RunPhase(env, Op::kAttestToken, options.warmup, 0));
  PrintPhase("attest+token warm-up", warm);
  PregenerateProofs(env, warm.Rate() * seconds * 2);
  AR_ASSIGN_OR_RETURN(PhaseStats peak, RunPhase(env, Op::kAttestToken, seconds, 0));
  PrintPhase("attest+token peak", peak);
  const double half = std::max(1.0, peak.Rate() / 2);
  PregenerateProofs(env, half * seconds * 1.2);
  AR_ASSIGN_OR_RETURN(PhaseStats paced, RunPhase(env, Op::kAttestToken, seconds, half));
  PrintPhase("attest+token at half peak", paced);

  // b) the token endpoint alone, EARs already held.
  AR_RETURN_IF_ERROR(RefreshEars(env, std::chrono::seconds(30)));
  AR_ASSIGN_OR_RETURN(PhaseStats warm_token, RunPhase(env, Op::kToken, options.warmup, 0));
  PrintPhase("token warm-up", warm_token);
  PregenerateProofs(env, warm_token.Rate() * seconds * 2);
  AR_ASSIGN_OR_RETURN(PhaseStats token, RunPhase(env, Op::kToken, seconds, 0));
  PrintPhase("token", token);

  const double tokens_per_agent = static_cast<double>(warm.ok + peak.ok + paced.ok + warm_token.ok + token.ok) /
                                  static_cast<double>(env.agents.size());
  if (tokens_per_agent > kTokensPerAgentPerMinute * 0.8) {
    std::cerr << "load: warning: " << tokens_per_agent << " tokens per agent in this run, near the verifier's "
              << kTokensPerAgentPerMinute << "/minute per-agent limit: use more agents\n";
  }

  const std::string prefix = "verifier_load/" + options.store + "/";
  const std::string at_source = "openssl speed: 3 x ecdsap256 verify + 2 x ecdsap256 sign (per core)";
  const std::string t_source = "openssl speed: 2 x ecdsap256 verify + 1 x ecdsap256 sign (per core)";
  auto per_core = [](const PhaseStats& s) { return s.server_cpu_seconds > 0 ? static_cast<double>(s.ok) / s.server_cpu_seconds : 0; };
  auto cpu_us = [](double cpu_seconds, const PhaseStats& s) { return s.ok > 0 ? cpu_seconds * 1e6 / static_cast<double>(s.ok) : 0; };
  Json items = Json::array();
  items.push_back(Item(prefix + "attest_token_per_core", per_core(peak), "ops/s", peak, attest_token_ceiling, at_source));
  items.push_back(Item(prefix + "attest_token_peak", peak.Rate(), "ops/s", peak));
  items.push_back(Item(prefix + "attest_token_server_cpu", cpu_us(peak.server_cpu_seconds, peak), "us/op", peak,
                       std::nullopt, "verifier utime+stime per attest+token (challenge, attest, token)"));
  items.push_back(Item(prefix + "attest_token_half_peak_rate", paced.Rate(), "ops/s", paced));
  items.push_back(Item(prefix + "attest_token_half_peak_p50", paced.Percentile(0.5) / 1000, "ms", paced));
  items.push_back(Item(prefix + "attest_token_half_peak_p99", paced.Percentile(0.99) / 1000, "ms", paced));
  items.push_back(Item(prefix + "token_per_core", per_core(token), "ops/s", token, token_ceiling, t_source));
  items.push_back(Item(prefix + "token_throughput", token.Rate(), "ops/s", token));
  items.push_back(Item(prefix + "token_server_cpu", cpu_us(token.server_cpu_seconds, token), "us/op", token,
                       std::nullopt, "verifier utime+stime per token request"));
  items.push_back(Item(prefix + "token_p50", token.Percentile(0.5) / 1000, "ms", token));
  items.push_back(Item(prefix + "token_p99", token.Percentile(0.99) / 1000, "ms", token));
  if (peak.postgres_cpu_seconds && token.postgres_cpu_seconds) {
    items.push_back(Item(prefix + "attest_token_postgres_cpu", cpu_us(*peak.postgres_cpu_seconds, peak), "us/op", peak,
                         std::nullopt, "PostgreSQL server processes' CPU per attest+token"));
    items.push_back(Item(prefix + "token_postgres_cpu", cpu_us(*token.postgres_cpu_seconds, token), "us/op", token,
                         std::nullopt, "PostgreSQL server processes' CPU per token request"));
  }
  if (fs::path parent = fs::path(options.out).parent_path(); !parent.empty()) fs::create_directories(parent);
  AR_RETURN_IF_ERROR(WriteFile(options.out, items.dump(2) + "\n",
                               fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read));
  std::cerr << "load: attest+token " << Round(per_core(peak), 1) << " per core-second vs ceiling "
            << Round(attest_token_ceiling, 1) << " (ratio " << Round(per_core(peak) / attest_token_ceiling, 3)
            << "); token " << Round(per_core(token), 1) << " vs " << Round(token_ceiling, 1) << " (ratio "
            << Round(per_core(token) / token_ceiling, 3) << "); wrote " << options.out << "\n";

  env.verifier->Stop();
  if (env.verifier->exit_code() != 0) {
    std::cerr << "load: agentroot-verifier exited with " << env.verifier->exit_code() << ":\n"
              << ReadTail(env.dir / "verifier.log") << "\n";
    return 1;
  }
  const uint64_t errors = warm.errors + peak.errors + paced.errors + warm_token.errors + token.errors;
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace agentroot::load

int main(int argc, char** argv) {
  setenv("TSS2_LOG", "all+NONE", 1);
  agentroot::load::Options o;
  CLI::App app{"agentroot-verifier-load: drives a real agentroot-verifier with simulated hosts and agents over "
               "keep-alive HTTPS and reports throughput, latency and server CPU per request against the ES256 "
               "crypto ceiling (docs/benchmarks.md)."};
  app.add_option("--verifier-bin", o.verifier_bin, "Path of agentroot-verifier")->required()->check(CLI::ExistingFile);
  app.add_option("--store", o.store, "sqlite or postgresql")->check(CLI::IsMember({"sqlite", "postgresql"}));
  app.add_option("--postgres-uri", o.postgres_uri,
                 "An existing empty PostgreSQL database (default: start a private server; its CPU is then reported)");
  app.add_option("--hosts", o.hosts, "Simulated hosts")->check(CLI::Range(1, 100000));
  app.add_option("--agents-per-host", o.agents_per_host, "Agents per host")->check(CLI::Range(1, 10000));
  app.add_option("--connections", o.connections, "Keep-alive connections (one client thread each)")->check(CLI::Range(1, 256));
  app.add_option("--duration", o.duration, "Seconds per measured phase (DPoP proofs are pre-signed, max 45)")
      ->check(CLI::Range(0.5, 45.0));
  app.add_option("--warmup", o.warmup, "Seconds of warm-up before each closed-loop phase")->check(CLI::Range(0.2, 30.0));
  app.add_option("--openssl-seconds", o.openssl_seconds, "Seconds per openssl speed measurement")->check(CLI::Range(1, 30));
  app.add_option("--server-threads", o.server_threads, "server.threads of the verifier (0: one per core)");
  app.add_option("--server-workers", o.server_workers, "server.workers of the verifier (default: the verifier's)");
  app.add_flag("--server-inline-handlers", o.server_inline,
               "server.inline_handlers = true (default: the verifier's, handlers on the worker pool)");
  app.add_option("--out", o.out, "Where to write the JSON results (scripts/bench.py format)")->required();
  app.add_flag("--keep-work-dir", o.keep_work_dir, "Keep the temporary directory (config, logs, SQLite file)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  agentroot::load::InstallStopOnSignal();
  auto result = agentroot::load::Run(o);
  if (!result.ok()) {
    std::cerr << "agentroot-verifier-load: " << result.status().ToString() << "\n";
    return 2;
  }
  return *result;
}
