// HttpServer: HTTP/1.1 over TLS (TCP) or over a Unix socket, with a router,
// hard limits against abusive and slow clients, and graceful shutdown.
//
// Usage:
//   AR_ASSIGN_OR_RETURN(auto server, HttpServer::Create(std::move(options)));
//   AR_RETURN_IF_ERROR(server->Handle("GET", "/v1/agents/{id}", handler));
//   AR_RETURN_IF_ERROR(server->Start());
//   ... WaitForShutdownSignal(); server->Stop();
//
// Transport: a TCP listener always speaks TLS (1.3 preferred, 1.2 minimum,
// ECDHE + AEAD suites only on 1.2, no compression, no renegotiation, no
// session resumption), optionally with client certificates. A Unix-socket
// listener speaks plain HTTP and hands each request the peer's SO_PEERCRED.
//
// Threads: `io_threads` run all network I/O (TLS included) asynchronously, so
// a slow client holds no thread; handlers run on a separate pool of
// `worker_threads`, so a slow handler (a TPM command) never stalls I/O —
// unless `inline_handlers` asks for them to run on the I/O threads. A
// connection processes one request at a time (no pipelining in parallel).
//
// Limits (ServerLimits) produce problem-details errors and close the
// connection: 400 malformed or ambiguous framing (Content-Length together with
// Transfer-Encoding, duplicate or non-numeric Content-Length, a transfer coding
// other than "chunked", bad chunk sizes, missing Host, non-origin-form target),
// 413 body over the limit, 431 header section over the limit, 417 unknown
// Expect. Connections past the timeouts are dropped without a response; new
// connections past the connection cap are closed at once.
//
// Handlers: `Response(const Request&)`, called on a worker thread, possibly
// concurrently with itself; it may throw: the server answers 500 with a
// generic problem and never sends the exception text. Unknown paths get 404,
// known paths with another method 405 with an Allow header.
//
// Thread safety: Handle() only before Start(); Start(), Stop(), port() and
// stats() from any thread, but never call Stop() from inside a handler (it
// waits for handlers). The destructor calls Stop().
#ifndef AGENTROOT_HTTP_SERVER_H_
#define AGENTROOT_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/http/http.h"

namespace agentroot::http {

enum class ClientAuth {
  kNone,      // no certificate requested
  kOptional,  // requested; a client may send none, but a bad one fails the handshake
  kRequired,  // a certificate chaining to client_ca_pem is required
};

struct TlsServerOptions {
  std::string certificate_chain_pem;  // leaf first, then intermediates
  // Loaded into the TLS context by Create() and not kept by the server
  // afterwards (OpenSSL holds the parsed key).
  common::SecretBytes private_key_pem;
  ClientAuth client_auth = ClientAuth::kNone;
  std::string client_ca_pem;  // one or more CA certificates; required unless kNone
  // Optional CRLs (PEM) for client certificates; when set, every client
  // certificate's revocation status is checked and a missing CRL fails.
  std::string client_crl_pem;
};

struct TcpListenOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 0;              // 0: an ephemeral port, see port()
  TlsServerOptions tls;
};

// "ADDRESS:PORT" as the executables' `listen` settings take it:
// "127.0.0.1:8443", "[::1]:8443", port 0 for an ephemeral one. The address
// must be an IP literal. INVALID_ARGUMENT naming `what` otherwise (no silent
// default on a typo: "8443x" is refused, not read as 8443 or 0).
common::Result<TcpListenOptions> ParseListenAddress(std::string_view listen, std::string_view what);

// `listen` plus the server certificate chain and private key read from PEM
// files; the key's text is wiped once it is in `tls.private_key_pem`.
// NOT_FOUND naming the setting (`certificate_what`, `key_what`) when a file
// cannot be read.
common::Result<TcpListenOptions> TlsListenerFromFiles(std::string_view listen, std::string_view listen_what,
                                                      const std::string& certificate_file,
                                                      std::string_view certificate_what,
                                                      const std::string& private_key_file,
                                                      std::string_view key_what);

struct UnixListenOptions {
  std::string path;
  std::uint32_t mode = 0660;  // applied before listen(): no window with wider access
  // Group owning the socket file: a name or a numeric gid; empty = unchanged.
  std::string group;
  // Replace an existing socket file (a stale one from a crash). Anything at
  // `path` that is not a socket is never removed: Create() fails instead.
  bool replace_existing_socket = true;
};

struct ServerLimits {
  std::size_t max_header_bytes = 16 * 1024;    // request line + fields -> 431
  std::size_t max_body_bytes = 1024 * 1024;    // decoded body -> 413
  // From the first byte of a request (or from connection setup for the
  // first request) to its last byte. A client trickling bytes is dropped at
  // this deadline, however steadily it sends (slow loris).
  std::chrono::milliseconds request_timeout{10'000};
  // Waiting for the next request on a kept-alive connection.
  std::chrono::milliseconds idle_timeout{30'000};
  std::chrono::milliseconds handshake_timeout{10'000};  // TLS handshake
  std::chrono::milliseconds write_timeout{10'000};      // sending one response
  std::size_t max_connections = 1024;  // further connections are closed on accept
  std::size_t max_requests_per_connection = 1000;
};

struct ServerOptions {
  // Exactly one of the two.
  std::optional<TcpListenOptions> tcp;
  std::optional<UnixListenOptions> unix_socket;
  ServerLimits limits;
  int io_threads = 0;      // 0: std::thread::hardware_concurrency()
  int worker_threads = 0;  // 0: std::thread::hardware_concurrency()
  // Run handlers on the I/O threads instead of the worker pool. Saves two
  // thread hand-offs per request (see docs/http.md for the figures); only
  // for handlers that never block (CPU-bound work such as signature checks):
  // a blocking handler would stall the I/O of other connections.
  bool inline_handlers = false;
};

// Counters since Start(), for tests and monitoring.
struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t connections_active = 0;
  std::uint64_t requests = 0;             // handed to a handler or router
  std::uint64_t bad_requests = 0;         // 4xx produced by the HTTP layer
  std::uint64_t timeouts = 0;             // connections dropped by a timeout
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t handler_exceptions = 0;
};

class HttpServer {
 public:
  using Handler = std::function<Response(const Request&)>;

  // Validates options, loads the TLS material and binds and listens (so
  // port() is known), but accepts nothing until Start(). INVALID_ARGUMENT for
  // bad options or PEM (with OpenSSL's reason), UNAVAILABLE when the address
  // or path cannot be bound.
  static common::Result<std::unique_ptr<HttpServer>> Create(ServerOptions options);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes `method` requests whose path matches `path_pattern`: segments
  // separated by '/', each a literal or "{name}" matching one non-empty
  // segment (e.g. "/v1/agents/{id}/keys"). A literal segment wins over a
  // parameter at the same position. INVALID_ARGUMENT for a malformed pattern,
  // ALREADY_EXISTS for a duplicate, FAILED_PRECONDITION after Start().
  common::Status Handle(std::string_view method, std::string_view path_pattern,
                        Handler handler);

  // Starts the threads and accepting. FAILED_PRECONDITION when called twice
  // or after Stop().
  common::Status Start();

  // Graceful shutdown: stops accepting, closes idle connections at once, lets
  // requests already being read or handled finish (their responses carry
  // Connection: close) until `grace` has passed, then closes the rest and
  // joins the threads. A handler still running past `grace` is waited for.
  // Idempotent; the Unix socket file is removed.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // The bound TCP port (the ephemeral one when 0 was asked); 0 for a Unix
  // socket.
  std::uint16_t port() const;

  ServerStats stats() const;

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// For mains: blocks SIGTERM and SIGINT (and SIGHUP when `reload` is true) in
// the calling thread. Call it first in main(), before any thread (or
// HttpServer) exists, so that every thread inherits the mask and
// WaitForShutdownSignal() receives the signal.
void BlockShutdownSignals(bool reload = false);

// Waits for SIGTERM or SIGINT (blocked by BlockShutdownSignals) and returns
// the signal number. With `on_reload`, SIGHUP (blocked by
// BlockShutdownSignals(true)) calls it in the waiting thread and the wait
// goes on; a SIGHUP that arrives while on_reload runs is kept pending and
// handled after it returns. Without `on_reload` SIGHUP is not waited for.
int WaitForShutdownSignal(const std::function<void()>& on_reload = nullptr);

}  // namespace agentroot::http

#endif  // AGENTROOT_HTTP_SERVER_H_
