// Durable commits per second of Store::IssueToken (token row + audit append
// in one transaction) on SQLite (WAL, synchronous=FULL) and on a private
// PostgreSQL 15 server (fsync=on, synchronous_commit=on) on loopback.
//
// Not part of `make bench` (scripts/bench.py needs an OpenSSL ceiling and no
// OpenSSL operation bounds an fsync): run it by hand, see docs/store.md.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "agentroot/attestation/store/store.h"
#include "testing/postgres_server.h"

namespace agentroot::attestation::store {
namespace {

common::FakeClock g_clock(1'700'000'000);
std::atomic<int64_t> g_counter{0};

void Seed(Store& store) {
  Host host;
  host.id = "host-1";
  host.ek_public = common::Bytes(64, 1);
  host.ak_public = common::Bytes(64, 2);
  host.ak_name = common::Bytes(34, 3);
  host.host_group = "bench";
  if (!store.CreateHost(host, nullptr).ok()) std::abort();
  Operator op;
  op.id = "alice";
  op.display_name = "Alice";
  op.roles = {Role::kOwner};
  if (!store.CreateOperator(op, nullptr).ok()) std::abort();
  Agent agent;
  agent.id = "spiffe://example.org/agent/bench";
  agent.name = "bench";
  agent.host_id = "host-1";
  agent.owners = {"alice"};
  agent.expires_at = 1'800'000'000;
  if (!store.CreateAgent(agent, nullptr).ok()) std::abort();
}

void BM_IssueToken(benchmark::State& state, Store* store) {
  AuditRecord audit;
  audit.actor = "verifier";
  audit.action = "token.issue";
  audit.subject = "spiffe://example.org/agent/bench";
  audit.decision = AuditDecision::kAllow;
  audit.reasons = {"all checks passed"};
  for (auto _ : state) {
    const std::string id = std::to_string(g_counter.fetch_add(1));
    TokenRecord token;
    token.jti = "jti-" + id;
    token.request_id = "req-" + id;
    token.agent_id = "spiffe://example.org/agent/bench";
    token.host_id = "host-1";
    token.cnf_jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    token.scope = "crm.read";
    token.audience = "https://crm.example.org";
    token.issued_at = 1'700'000'000;
    token.expires_at = 1'700'000'300;
    auto issued = store->IssueToken(token, audit);
    if (!issued.ok()) {
      state.SkipWithError(issued.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace
}  // namespace agentroot::attestation::store

int main(int argc, char** argv) {
  using namespace agentroot::attestation::store;
  benchmark::Initialize(&argc, argv);

  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                    "/agentroot-store-bench-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return 1;
  auto sqlite = Store::Open("sqlite:" + dir + "/bench.db", g_clock);
  if (!sqlite.ok()) {
    std::cerr << sqlite.status().ToString() << "\n";
    return 1;
  }
  Seed(**sqlite);

  auto server = testing::ScopedPostgresServer::Start();
  if (!server.ok()) {
    std::cerr << server.status().ToString() << "\n";
    return 1;
  }
  auto uri = (*server)->CreateDatabase();
  auto postgres = uri.ok() ? Store::Open(*uri, g_clock) : uri.status();
  if (!postgres.ok()) {
    std::cerr << postgres.status().ToString() << "\n";
    return 1;
  }
  Seed(**postgres);

  for (int threads : {1, 4}) {
    benchmark::RegisterBenchmark("BM_IssueToken/sqlite", BM_IssueToken, sqlite->get())
        ->Threads(threads)
        ->UseRealTime();
    benchmark::RegisterBenchmark("BM_IssueToken/postgresql", BM_IssueToken, postgres->get())
        ->Threads(threads)
        ->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  postgres->reset();
  sqlite->reset();
  server->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
