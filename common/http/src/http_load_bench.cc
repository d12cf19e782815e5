// Load benchmark of the HTTP layer: requests/s of a trivial handler over
// kept-alive connections on loopback, client and server in this process
// (so both share the machine's cores; the figure is a floor for the server).
//
// Items processed = requests. No "ceiling=" label: there is no openssl-speed
// equivalent for a full HTTPS round trip; the reference figure is nginx's
// ~20-25 us of server CPU per small TLS 1.3 keep-alive request (LAB-NOTES).
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/test_pki.h"

namespace agentroot::http {
namespace {

namespace ht = ::agentroot::http::testing;

struct Env {
  std::unique_ptr<ht::TestPki> pki;
  std::unique_ptr<HttpServer> tls_server;
  std::unique_ptr<HttpServer> unix_server;
  std::string unix_path;

  ~Env() { unlink(unix_path.c_str()); }

  Env() {
    pki = std::move(ht::TestPki::Create("bench CA")).value();
    ht::TestCredential cred = std::move(pki->IssueServer()).value();
    auto routes = [](HttpServer& s) {
      if (!s.Handle("GET", "/ping", [](const Request&) {
              Response r;
              r.headers.emplace("Content-Type", "text/plain");
              r.body = "pong";
              return r;
            }).ok() ||
          !s.Handle("POST", "/v1/echo", [](const Request& r) {
              Response out;
              out.headers.emplace("Content-Type", "application/json");
              out.body = r.body;
              return out;
            }).ok()) {
        std::abort();
      }
    };
    // HTTP_BENCH_IO_THREADS, HTTP_BENCH_WORKER_THREADS, HTTP_BENCH_INLINE=1
    // compare server configurations (defaults: cores, cores, off).
    int io_threads = 0;
    int worker_threads = 0;
    if (const char* v = std::getenv("HTTP_BENCH_IO_THREADS")) io_threads = std::atoi(v);
    if (const char* v = std::getenv("HTTP_BENCH_WORKER_THREADS")) worker_threads = std::atoi(v);
    bool inline_handlers = std::getenv("HTTP_BENCH_INLINE") != nullptr;
    ServerOptions options;
    options.io_threads = io_threads;
    options.worker_threads = worker_threads;
    options.inline_handlers = inline_handlers;
    options.tcp.emplace();
    options.tcp->tls.certificate_chain_pem = cred.certificate_pem;
    options.tcp->tls.private_key_pem = cred.private_key_pem.Clone();
    tls_server = std::move(HttpServer::Create(std::move(options))).value();
    routes(*tls_server);
    if (!tls_server->Start().ok()) std::abort();

    unix_path = "/tmp/agentroot-http-bench-" + std::to_string(getpid()) + ".sock";
    ServerOptions unix_options;
    unix_options.io_threads = io_threads;
    unix_options.worker_threads = worker_threads;
    unix_options.inline_handlers = inline_handlers;
    unix_options.unix_socket.emplace();
    unix_options.unix_socket->path = unix_path;
    unix_options.unix_socket->mode = 0600;
    unix_server = std::move(HttpServer::Create(std::move(unix_options))).value();
    routes(*unix_server);
    if (!unix_server->Start().ok()) std::abort();
  }

  std::unique_ptr<HttpClient> TlsClient() {
    ClientOptions options;
    options.base_url = "https://127.0.0.1:" + std::to_string(tls_server->port());
    options.ca_pem = pki->ca_certificate_pem();
    return std::move(HttpClient::Create(std::move(options))).value();
  }
  std::unique_ptr<HttpClient> UnixClient() {
    ClientOptions options;
    options.unix_socket_path = unix_path;
    return std::move(HttpClient::Create(std::move(options))).value();
  }
};

Env& GetEnv() {
  static Env env;  // shared by every benchmark; stopped (socket file removed) at exit
  return env;
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// With one client thread: the server's CPU per request is the process's CPU
// minus the client thread's (the server threads are the only other ones).
struct ServerCpu {
  explicit ServerCpu(benchmark::State& state) : state_(state) {}
  void Start() {
    process_ = ProcessCpuSeconds();
    thread_ = ThreadCpuSeconds();
  }
  void Stop() {
    if (state_.threads() != 1 || state_.iterations() == 0) return;
    double server = (ProcessCpuSeconds() - process_) - (ThreadCpuSeconds() - thread_);
    state_.counters["server_cpu_us_per_req"] =
        server * 1e6 / static_cast<double>(state_.iterations());
  }
  benchmark::State& state_;
  double process_ = 0;
  double thread_ = 0;
};

void Run(benchmark::State& state, HttpClient& client, const ClientRequest& request) {
  ServerCpu cpu(state);
  // Warm the connection up outside the measurement.
  if (!client.Send(request).ok()) {
    state.SkipWithError("warm-up request failed");
    return;
  }
  cpu.Start();
  for (auto _ : state) {
    auto r = client.Send(request);
    if (!r.ok() || r->status != 200) {
      state.SkipWithError(r.ok() ? "unexpected status" : r.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(r->body.data());
  }
  cpu.Stop();
  state.SetItemsProcessed(state.iterations());
}

void BM_TlsKeepAliveGet(benchmark::State& state) {
  auto client = GetEnv().TlsClient();
  ClientRequest request;
  request.target = "/ping";
  Run(state, *client, request);
  state.SetLabel("TLS 1.3 keep-alive GET, 4-byte response");
}

void BM_TlsKeepAlivePostJson1k(benchmark::State& state) {
  auto client = GetEnv().TlsClient();
  ClientRequest request;
  request.method = "POST";
  request.target = "/v1/echo";
  request.headers.emplace("Content-Type", "application/json");
  request.body = "{\"pad\":\"" + std::string(1000, 'x') + "\"}";
  Run(state, *client, request);
  state.SetLabel("TLS 1.3 keep-alive POST, 1 KiB JSON echoed");
}

void BM_UnixSocketGet(benchmark::State& state) {
  auto client = GetEnv().UnixClient();
  ClientRequest request;
  request.target = "/ping";
  Run(state, *client, request);
  state.SetLabel("Unix socket keep-alive GET (hostd local API)");
}

void BM_TlsNewConnectionPerRequest(benchmark::State& state) {
  auto client = GetEnv().TlsClient();
  ClientRequest request;
  request.target = "/ping";
  ServerCpu cpu(state);
  cpu.Start();
  for (auto _ : state) {
    client->CloseConnection();
    auto r = client->Send(request);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
  }
  cpu.Stop();
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("full TLS 1.3 handshake (ECDSA P-256) + GET per request");
}

BENCHMARK(BM_TlsKeepAliveGet)->UseRealTime()->Threads(1)->Threads(4);
BENCHMARK(BM_TlsKeepAlivePostJson1k)->UseRealTime()->Threads(1);
BENCHMARK(BM_UnixSocketGet)->UseRealTime()->Threads(1)->Threads(4);
BENCHMARK(BM_TlsNewConnectionPerRequest)->UseRealTime()->Threads(1);

}  // namespace
}  // namespace agentroot::http

BENCHMARK_MAIN();
