// HttpClient on Boost.Beast/Asio (see server.cc about keeping Beast here).
//
// Synchronous API, asynchronous inside: every network step is started as an
// async operation and the private io_context is run until it completes or
// its deadline passes; on a timeout the socket is closed, which aborts the
// operation. (Asio's blocking calls cannot time out.)
#include "agentroot/http/client.h"

#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "tls.h"

namespace agentroot::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using UnixProtocol = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using TlsStream = beast::ssl_stream<tcp::socket>;

std::string_view View(beast::string_view s) { return std::string_view(s.data(), s.size()); }
beast::string_view BView(std::string_view s) { return beast::string_view(s.data(), s.size()); }

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }
bool ValidFieldValue(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}
bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CaseInsensitiveLess()(a, b) == CaseInsensitiveLess()(b, a);
}

bool Idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

bool IsSslError(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec.category() == asio::ssl::error::get_stream_category();
}

}  // namespace

class HttpClient::Impl {
 public:
  ClientOptions options;
  bool unix = false;
  std::string host;  // without brackets
  std::string port;
  std::string host_header;
  std::string peer_name;  // for messages: "host:port" or "unix:path"
  bool host_is_ip = false;

  std::mutex mu;
  asio::io_context ioc;  // declared before the streams: destroyed after them
  std::optional<asio::ssl::context> ssl_ctx;
  std::optional<TlsStream> tls;
  std::optional<UnixProtocol::socket> unix_socket;
  beast::flat_buffer buffer;
  bool connected = false;
  std::size_t connections_opened = 0;

  // Runs the io_context until *done or `deadline`. On timeout closes the
  // connection, lets the aborted operation finish, and returns false.
  bool Run(Clock::time_point deadline, const bool& done) {
    ioc.restart();
    while (!done) {
      if (ioc.run_one_until(deadline) == 0 && !done) {
        if (Clock::now() < deadline && !ioc.stopped()) continue;
        CloseSocket();
        ioc.restart();
        ioc.run();
        return false;
      }
    }
    return true;
  }

  void CloseSocket() {
    error_code ignored;
    if (tls) beast::get_lowest_layer(*tls).close(ignored);
    if (unix_socket) unix_socket->close(ignored);
  }

  void Disconnect() {
    CloseSocket();
    tls.reset();
    unix_socket.reset();
    buffer.clear();
    connected = false;
  }

  int NativeHandle() {
    if (tls) return beast::get_lowest_layer(*tls).native_handle();
    if (unix_socket) return unix_socket->native_handle();
    return -1;
  }

  // A kept-alive connection the server has since closed (or that holds
  // unexpected bytes) is readable while idle.
  bool Stale() {
    if (!connected || buffer.size() > 0) return true;
    pollfd pfd{NativeHandle(), POLLIN, 0};
    return poll(&pfd, 1, 0) != 0;
  }

  common::Status Timeout(std::string_view what, std::chrono::milliseconds limit) {
    return common::DeadlineExceededError(std::string(what) + " " + peer_name + ": timed out after " +
                                         std::to_string(limit.count()) + " ms");
  }

  common::Status Connect() {
    Disconnect();
    auto deadline = Clock::now() + options.connect_timeout;
    bool done = false;
    error_code result;
    if (unix) {
      unix_socket.emplace(ioc);
      unix_socket->async_connect(UnixProtocol::endpoint(options.unix_socket_path),
                                 [&](const error_code& ec) { result = ec, done = true; });
      if (!Run(deadline, done)) return Timeout("connect to", options.connect_timeout);
      if (result) {
        Disconnect();
        return common::UnavailableError("connect to " + peer_name + ": " + result.message());
      }
    } else {
      tcp::resolver resolver(ioc);
      tcp::resolver::results_type endpoints;
      resolver.async_resolve(host, port, [&](const error_code& ec, tcp::resolver::results_type r) {
        result = ec, endpoints = std::move(r), done = true;
      });
      if (!Run(deadline, done)) {
        resolver.cancel();
        return Timeout("resolve", options.connect_timeout);
      }
      if (result) return common::UnavailableError("resolve " + host + ": " + result.message());

      tls.emplace(ioc, *ssl_ctx);
      done = false;
      asio::async_connect(beast::get_lowest_layer(*tls), endpoints,
                          [&](const error_code& ec, const tcp::endpoint&) { result = ec, done = true; });
      if (!Run(deadline, done)) {
        Disconnect();
        return Timeout("connect to", options.connect_timeout);
      }
      if (result) {
        Disconnect();
        return common::UnavailableError("connect to " + peer_name + ": " + result.message());
      }
      error_code ignored;
      beast::get_lowest_layer(*tls).set_option(tcp::no_delay(true), ignored);

      SSL* ssl = tls->native_handle();
      if (host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
          Disconnect();
          return common::InternalError("X509_VERIFY_PARAM_set1_ip_asc failed");
        }
      } else if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 ||
                 SSL_set1_host(ssl, host.c_str()) != 1) {
        Disconnect();
        return common::InternalError("setting the TLS server name failed");
      }
      done = false;
      tls->async_handshake(asio::ssl::stream_base::client,
                           [&](const error_code& ec) { result = ec, done = true; });
      if (!Run(deadline, done)) {
        Disconnect();
        return Timeout("TLS handshake with", options.connect_timeout);
      }
      if (result) {
        std::string why = internal::VerifyFailureText(ssl);
        if (why.empty()) why = result.message();
        Disconnect();
        return common::UnauthenticatedError("TLS handshake with " + peer_name + " failed: " + why);
      }
    }
    connected = true;
    ++connections_opened;
    return common::Status::Ok();
  }

  template <class Stream>
  common::Result<Response> RoundTripOn(Stream& stream, const ClientRequest& request,
                                       bool* nothing_received) {
    *nothing_received = true;
    bhttp::request<bhttp::string_body> req;
    req.version(11);
    req.method_string(BView(request.method));
    req.target(BView(request.target));
    req.set(bhttp::field::host, BView(host_header));
    for (const auto& [name, value] : request.headers) {
      if (IEquals(name, "Host") || IEquals(name, "Content-Length") ||
          IEquals(name, "Transfer-Encoding") || IEquals(name, "Connection")) {
        continue;
      }
      req.insert(BView(name), BView(value));
    }
    req.body() = request.body;
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
        request.method == "PATCH") {
      req.content_length(request.body.size());
    }
    req.keep_alive(true);

    auto deadline = Clock::now() + options.request_timeout;
    bool done = false;
    error_code result;
    bhttp::async_write(stream, req, [&](const error_code& ec, std::size_t) { result = ec, done = true; });
    if (!Run(deadline, done)) {
      Disconnect();
      return Timeout("request to", options.request_timeout);
    }
    if (result) {
      Disconnect();
      if (IsSslError(result)) {
        return common::UnauthenticatedError("TLS error sending to " + peer_name + ": " + result.message());
      }
      return common::UnavailableError("sending request to " + peer_name + ": " + result.message());
    }

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(options.max_response_header_bytes, UINT32_MAX)));
    parser.body_limit(options.max_response_body_bytes);
    if (request.method == "HEAD") parser.skip(true);
    done = false;
    bhttp::async_read(stream, buffer, parser, [&](const error_code& ec, std::size_t) { result = ec, done = true; });
    bool finished = Run(deadline, done);
    *nothing_received = !parser.got_some();
    if (!finished) {
      Disconnect();
      return Timeout("response from", options.request_timeout);
    }
    if (result) {
      Disconnect();
      if (result == bhttp::error::header_limit || result == bhttp::error::body_limit ||
          result == bhttp::error::buffer_overflow) {
        return common::ResourceExhaustedError("response from " + peer_name + ": " + result.message());
      }
      if (IsSslError(result) && !(*nothing_received && result == asio::ssl::error::stream_truncated)) {
        // TLS 1.3 reports a refused client certificate here, at the first read.
        return common::UnauthenticatedError("TLS error reading from " + peer_name + ": " +
                                            result.message());
      }
      return common::UnavailableError("reading response from " + peer_name + ": " + result.message());
    }
    const auto& res = parser.get();
    Response response;
    response.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      response.headers.emplace(std::string(View(field.name_string())), std::string(View(field.value())));
    }
    bool keep_alive = res.keep_alive();
    response.body = std::move(parser.get().body());
    if (!keep_alive) Disconnect();
    return response;
  }

  common::Result<Response> RoundTrip(const ClientRequest& request, bool* nothing_received) {
    if (unix) return RoundTripOn(*unix_socket, request, nothing_received);
    return RoundTripOn(*tls, request, nothing_received);
  }
};

namespace {

// "https://host[:port]" -> host (brackets stripped), port.
common::Status ParseBaseUrl(std::string_view url, std::string& host, std::string& port,
                            std::string& host_header) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return common::InvalidArgumentError("base_url must start with https://");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return common::InvalidArgumentError("base_url must be https://host[:port] without path or userinfo");
  }
  std::string_view port_part;
  if (rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return common::InvalidArgumentError("unterminated IPv6 literal");
    host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return common::InvalidArgumentError("bad base_url authority");
      port_part = after.substr(1);
    }
  } else {
    std::size_t colon = rest.find(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_part = rest.substr(colon + 1);
  }
  if (host.empty()) return common::InvalidArgumentError("empty host in base_url");
  if (!port_part.empty()) {
    if (port_part.size() > 5 ||
        !std::all_of(port_part.begin(), port_part.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoul(std::string(port_part)) == 0 || std::stoul(std::string(port_part)) > 65535) {
      return common::InvalidArgumentError("bad port in base_url");
    }
    port = std::string(port_part);
  } else {
    port = "443";
  }
  host_header = std::string(rest);
  return common::Status::Ok();
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->Disconnect();
}

common::Result<std::unique_ptr<HttpClient>> HttpClient::Create(ClientOptions options) {
  if (options.base_url.empty() == options.unix_socket_path.empty()) {
    return common::InvalidArgumentError("set exactly one of base_url and unix_socket_path");
  }
  if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0) {
    return common::InvalidArgumentError("timeouts must be positive");
  }
  auto impl = std::unique_ptr<Impl>(new Impl());
  if (!options.unix_socket_path.empty()) {
    impl->unix = true;
    impl->host_header = "localhost";
    impl->peer_name = "unix:" + options.unix_socket_path;
  } else {
    AR_RETURN_IF_ERROR(ParseBaseUrl(options.base_url, impl->host, impl->port, impl->host_header));
    impl->host_is_ip = IsIpLiteral(impl->host);
    impl->peer_name = impl->host_header;
    if (options.ca_pem.empty()) {
      return common::InvalidArgumentError("HTTPS needs ca_pem (the server's trust anchors)");
    }
    if (options.client_certificate_chain_pem.empty() != options.client_private_key_pem.empty()) {
      return common::InvalidArgumentError("a client certificate needs its key and vice versa");
    }
    try {
      impl->ssl_ctx.emplace(asio::ssl::context::tls_client);
    } catch (const std::exception& e) {
      return common::InternalError(std::string("TLS context: ") + e.what());
    }
    SSL_CTX* ctx = impl->ssl_ctx->native_handle();
    AR_RETURN_IF_ERROR(internal::ApplyTlsPolicy(ctx));
    AR_RETURN_IF_ERROR(internal::AddTrustAnchors(ctx, options.ca_pem, false).WithContext("ca_pem"));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!options.client_certificate_chain_pem.empty()) {
      common::Status loaded = internal::LoadCertificateAndKey(
          ctx, options.client_certificate_chain_pem, options.client_private_key_pem);
      options.client_private_key_pem.Clear();
      AR_RETURN_IF_ERROR(loaded.WithContext("client certificate"));
    }
  }
  impl->options = std::move(options);
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

common::Result<Response> HttpClient::Send(const ClientRequest& request) {
  if (!IsToken(request.method)) return common::InvalidArgumentError("invalid method");
  if (request.target.empty() || request.target.front() != '/' ||
      std::any_of(request.target.begin(), request.target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#'; })) {
    return common::InvalidArgumentError("request target must be origin-form without spaces or controls");
  }
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || !ValidFieldValue(value)) {
      return common::InvalidArgumentError("invalid header field \"" + name + "\"");  // never the value
    }
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  bool reused = !impl_->Stale();
  if (!reused) AR_RETURN_IF_ERROR(impl_->Connect());
  bool nothing_received = false;
  common::Result<Response> response = impl_->RoundTrip(request, &nothing_received);
  if (!response.ok() && reused && nothing_received && Idempotent(request.method) &&
      response.status().code() == common::StatusCode::kUnavailable) {
    // The server closed the kept-alive connection as we sent: one retry.
    AR_RETURN_IF_ERROR(impl_->Connect());
    response = impl_->RoundTrip(request, &nothing_received);
  }
  return response;
}

common::Result<Response> HttpClient::Get(std::string_view target) {
  ClientRequest request;
  request.method = "GET";
  request.target = std::string(target);
  return Send(request);
}

common::Result<Response> HttpClient::Post(std::string_view target, std::string body,
                                          std::string_view content_type) {
  ClientRequest request;
  request.method = "POST";
  request.target = std::string(target);
  request.headers.emplace("Content-Type", std::string(content_type));
  request.body = std::move(body);
  return Send(request);
}

void HttpClient::CloseConnection() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->Disconnect();
}

std::size_t HttpClient::connections_opened() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections_opened;
}

}  // namespace agentroot::http
