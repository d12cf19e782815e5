// HttpClient: a synchronous HTTP/1.1 client for HTTPS (server authenticated
// against a given CA bundle, hostname verification always on, optional client
// certificate for mutual TLS) and for plain HTTP over a Unix socket.
//
// One client keeps at most one connection open and reuses it (keep-alive).
// A connection the server closed while idle is detected before reuse; a
// request that fails on a reused connection before any response byte arrived
// is retried once on a new connection, but only for idempotent methods
// (GET, HEAD, PUT, DELETE, OPTIONS) — a POST is never sent twice.
//
// Errors (Result<Response>; an HTTP error status is a Response, not an error):
//   UNAVAILABLE        name resolution failed, connection refused or reset
//   UNAUTHENTICATED    TLS handshake failed; the message has OpenSSL's verify
//                      error ("hostname mismatch", "certificate has expired")
//   DEADLINE_EXCEEDED  connect or request timeout
//   INVALID_ARGUMENT   bad options, URL, or a header with CR/LF/NUL
//   RESOURCE_EXHAUSTED response header or body over its limit
//
// Thread safety: thread-safe; calls are serialized by an internal mutex, so
// use one client per thread for parallel requests.
#ifndef AGENTROOT_HTTP_CLIENT_H_
#define AGENTROOT_HTTP_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/http/http.h"

namespace agentroot::http {

struct ClientOptions {
  // Exactly one of the two.
  // "https://host[:port]" (no path; default port 443). host may be a DNS
  // name, an IPv4 literal or a bracketed IPv6 literal; the server
  // certificate must name it (SAN DNS or IP entry).
  std::string base_url;
  std::string unix_socket_path;  // plain HTTP over this socket

  // HTTPS only. The trust anchors for the server certificate (the system
  // store is not used).
  std::string ca_pem;
  // Optional client certificate (leaf first) and its key, for mutual TLS.
  // The key is loaded into the TLS context by Create() and not kept.
  std::string client_certificate_chain_pem;
  common::SecretBytes client_private_key_pem;

  std::chrono::milliseconds connect_timeout{5'000};  // resolve + connect + handshake
  std::chrono::milliseconds request_timeout{30'000};  // write request + read response
  std::size_t max_response_header_bytes = 64 * 1024;
  std::size_t max_response_body_bytes = 8 * 1024 * 1024;
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";  // origin-form: path and optional query
  Headers headers;           // Host, Content-Length are set by the client
  std::string body;
};

class HttpClient {
 public:
  static common::Result<std::unique_ptr<HttpClient>> Create(ClientOptions options);

  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  common::Result<Response> Send(const ClientRequest& request);

  common::Result<Response> Get(std::string_view target);
  common::Result<Response> Post(std::string_view target, std::string body,
                                std::string_view content_type = "application/json");

  // Closes the kept-alive connection, if any; the next request reconnects.
  void CloseConnection();

  // Connections opened so far (for tests of keep-alive reuse).
  std::size_t connections_opened() const;

 private:
  class Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentroot::http

#endif  // AGENTROOT_HTTP_CLIENT_H_
