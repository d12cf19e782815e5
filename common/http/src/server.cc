// HttpServer on Boost.Beast/Asio. This and client.cc are the only translation
// units that include Beast (LAB-NOTES: each one costs seconds to compile).
//
// Structure: one io_context run by `io_threads`; every connection (Session)
// lives on its own strand, so its state needs no lock. A request that was
// read completely is handed to the `worker_threads` pool; the handler's
// Response is posted back to the session's strand to be written. One steady
// timer per session enforces the handshake / request / idle / write
// deadlines: when it fires, the socket is closed, which aborts whatever
// operation is pending.
#include "agentroot/http/server.h"

#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "router.h"
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
using UnixStream = UnixProtocol::socket;
using BeastResponse = bhttp::response<bhttp::string_body>;

constexpr std::size_t kReadChunk = 16 * 1024;
// After an error response: how long and how much we read and discard before
// closing, so the kernel does not answer the client's unread body with a RST
// that destroys our response in flight.
constexpr std::chrono::milliseconds kLingerTimeout{1000};
constexpr std::size_t kLingerMaxBytes = 1024 * 1024;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view View(beast::string_view s) { return std::string_view(s.data(), s.size()); }
beast::string_view BView(std::string_view s) { return beast::string_view(s.data(), s.size()); }

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool ValidFieldName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), IsTokenChar);
}

bool ValidFieldValue(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// The HTTP layer's own error responses.
Response Problem(int status, std::string_view type, std::string_view detail) {
  return ProblemResponse(status, type, ReasonPhrase(status), detail);
}

struct HeaderProblem {
  int status;
  std::string_view type;
  std::string detail;
};

// Framing checks beyond Beast's parser (which accepts repeated identical
// Content-Length fields and ignores unknown transfer codings). Anything a
// proxy in front of us could read differently is refused.
std::optional<HeaderProblem> ValidateHeader(const bhttp::request_parser<bhttp::string_body>& parser) {
  const auto& req = parser.get();
  if (req.version() != 11 && req.version() != 10) {
    return HeaderProblem{400, kProblemBadRequest, "only HTTP/1.1 and HTTP/1.0 are supported"};
  }
  int content_length = 0;
  int transfer_encoding = 0;
  int host = 0;
  std::string_view te_value;
  std::optional<std::string_view> expect;
  for (const auto& field : req) {
    switch (field.name()) {
      case bhttp::field::content_length: {
        ++content_length;
        std::string_view v = View(field.value());
        if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return HeaderProblem{400, kProblemBadRequest, "invalid Content-Length"};
        }
        break;
      }
      case bhttp::field::transfer_encoding:
        ++transfer_encoding;
        te_value = View(field.value());
        break;
      case bhttp::field::host:
        ++host;
        break;
      case bhttp::field::expect:
        expect = View(field.value());
        break;
      default:
        break;
    }
  }
  if (content_length > 1) return HeaderProblem{400, kProblemBadRequest, "repeated Content-Length"};
  if (content_length > 0 && transfer_encoding > 0) {
    return HeaderProblem{400, kProblemBadRequest, "both Content-Length and Transfer-Encoding"};
  }
  if (transfer_encoding > 1 || (transfer_encoding == 1 && !IEquals(Trim(te_value), "chunked"))) {
    return HeaderProblem{400, kProblemBadRequest, "only Transfer-Encoding: chunked is supported"};
  }
  if (transfer_encoding > 0 && req.version() < 11) {
    return HeaderProblem{400, kProblemBadRequest, "Transfer-Encoding in an HTTP/1.0 request"};
  }
  if ((req.version() == 11 && host != 1) || host > 1) {
    return HeaderProblem{400, kProblemBadRequest, "exactly one Host field is required"};
  }
  std::string_view target = View(req.target());
  if (target.empty() || target.front() != '/') {
    return HeaderProblem{400, kProblemBadRequest, "the request target must be origin-form"};
  }
  if (expect.has_value() && !IEquals(Trim(*expect), "100-continue")) {
    return HeaderProblem{417, kProblemExpectationFailed, "unsupported Expect"};
  }
  return std::nullopt;
}

// Turns a handler's Response into Beast's. Fails on what must not reach the
// wire: a status outside 200..599, CR/LF/NUL in a field (response
// splitting), a body on 204/304.
common::Status ToBeast(Response&& r, bool head, bool close, BeastResponse& out) {
  if (r.status < 200 || r.status > 599) {
    return common::InternalError("handler returned status " + std::to_string(r.status));
  }
  out = BeastResponse();
  out.version(11);
  out.result(static_cast<unsigned>(r.status));
  std::string_view reason = ReasonPhrase(r.status);
  if (reason != "Unknown") out.reason(BView(reason));
  bool has_nosniff = false;
  for (const auto& [name, value] : r.headers) {
    if (!ValidFieldName(name) || !ValidFieldValue(value)) {
      return common::InternalError("handler returned an invalid header field");
    }
    if (IEquals(name, "Content-Length") || IEquals(name, "Transfer-Encoding") ||
        IEquals(name, "Connection")) {
      continue;
    }
    if (IEquals(name, "X-Content-Type-Options")) has_nosniff = true;
    out.insert(BView(name), BView(value));
  }
  if (!has_nosniff) out.set(BView("X-Content-Type-Options"), "nosniff");
  bool bodiless = r.status == 204 || r.status == 304;
  if (bodiless && !r.body.empty()) {
    return common::InternalError("handler returned a body with status " + std::to_string(r.status));
  }
  if (head) {
    out.content_length(r.body.size());
  } else if (!bodiless) {
    out.body() = std::move(r.body);
    out.prepare_payload();
  }
  out.keep_alive(!close);
  return common::Status::Ok();
}

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  // Any thread. Graceful: close when idle, else after the current response.
  // Forced: close now.
  virtual void RequestStop(bool force) = 0;
};

}  // namespace

namespace internal {

// Everything a session needs from its server. Member order matters for
// destruction: `ioc` is destroyed before the members pending handlers touch
// (session registry, counters, TLS context) and after the acceptors.
struct ServerCore {
  ServerLimits limits;
  internal::Router router;
  int io_thread_count = 1;
  int worker_thread_count = 1;
  bool inline_handlers = false;
  std::uint16_t port = 0;
  std::string unix_path;
  ino_t unix_inode = 0;

  std::mutex lifecycle_mu;
  bool started = false;
  bool stopped = false;
  std::atomic<bool> stopping{false};

  std::atomic<std::uint64_t> accepted{0}, refused{0}, requests{0}, bad_requests{0}, timeouts{0},
      handshake_failures{0}, handler_exceptions{0};

  std::mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::unordered_map<std::uint64_t, std::weak_ptr<SessionBase>> sessions;
  std::uint64_t next_session_id = 0;

  std::unique_ptr<asio::thread_pool> workers;
  std::vector<std::thread> io_threads;
  std::optional<asio::ssl::context> ssl_ctx;
  std::unique_ptr<asio::io_context> ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<UnixProtocol::acceptor> unix_acceptor;

  std::size_t ActiveSessions() {
    std::lock_guard<std::mutex> lock(sessions_mu);
    return sessions.size();
  }

  std::uint64_t Register(const std::shared_ptr<SessionBase>& session) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    std::uint64_t id = ++next_session_id;
    sessions.emplace(id, session);
    return id;
  }

  void Unregister(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.erase(id);
    sessions_cv.notify_all();
  }

  std::vector<std::shared_ptr<SessionBase>> Snapshot() {
    std::vector<std::shared_ptr<SessionBase>> out;
    std::lock_guard<std::mutex> lock(sessions_mu);
    for (auto& [id, weak] : sessions) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

  // Runs on a worker thread.
  Response Dispatch(Request& request) {
    internal::Router::Match match = router.Find(request.method, request.path);
    switch (match.kind) {
      case internal::Router::Match::Kind::kNotFound:
        return Problem(404, kProblemNotFound, "no resource at this path");
      case internal::Router::Match::Kind::kBadPath:
        return Problem(400, kProblemBadRequest, "invalid percent-encoding in the path");
      case internal::Router::Match::Kind::kMethodNotAllowed: {
        Response r = Problem(405, kProblemMethodNotAllowed, "method not allowed on this resource");
        r.headers.emplace("Allow", match.allow);
        return r;
      }
      case internal::Router::Match::Kind::kFound:
        break;
    }
    request.path_params = std::move(match.params);
    try {
      return (*match.handler)(request);
    } catch (...) {
      // Never echo the exception: its text may carry internals or secrets.
      handler_exceptions.fetch_add(1, std::memory_order_relaxed);
      return Problem(500, kProblemInternal, "the request could not be processed");
    }
  }

  void AcceptTcp();
  void AcceptUnix();
};

}  // namespace internal

using internal::ServerCore;

namespace {

template <class Stream>
class Session final : public SessionBase {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(ServerCore* core, Stream stream, PeerInfo peer)
      : core_(core),
        stream_(std::move(stream)),
        timer_(stream_.get_executor()),
        buffer_(core->limits.max_header_bytes + 2 * kReadChunk),
        peer_(std::move(peer)) {}

  ~Session() override {
    if (id_ != 0) core_->Unregister(id_);
  }

  // Called once, right after construction, from the accepting thread.
  void Start() {
    id_ = core_->Register(shared_from_this());
    asio::post(stream_.get_executor(), [self = Self()] { self->OnStart(); });
  }

  void RequestStop(bool force) override {
    asio::post(stream_.get_executor(), [self = Self(), force] { self->OnStopRequested(force); });
  }

 private:
  enum class State { kNew, kHandshake, kIdle, kReading, kHandling, kWriting, kDraining, kClosed };

  std::shared_ptr<Session> Self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  auto& Lowest() { return beast::get_lowest_layer(stream_); }

  void OnStart() {
    if (state_ == State::kClosed) return;
    if constexpr (kTls) {
      state_ = State::kHandshake;
      ArmTimer(core_->limits.handshake_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = Self()](const error_code& ec) { self->OnHandshake(ec); });
    } else {
      WaitForRequest();
    }
  }

  void OnHandshake(const error_code& ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      core_->handshake_failures.fetch_add(1, std::memory_order_relaxed);
      return Close();
    }
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      TlsPeerInfo tls;
      tls.version = SSL_get_version(ssl);
      tls.cipher = SSL_get_cipher_name(ssl);
      tls.client_certificate_der = internal::PeerCertificateDer(ssl);
      tls.client_certificate_verified =
          !tls.client_certificate_der.empty() && SSL_get_verify_result(ssl) == X509_V_OK;
      peer_.tls = std::move(tls);
    }
    WaitForRequest();
  }

  // Waits for the first byte of the next request: the idle deadline on a
  // kept-alive connection, the request deadline (counted from connection
  // setup) for the first request.
  void WaitForRequest() {
    if (stop_requested_) return Close();
    bool first = served_ == 0;
    if (buffer_.size() > 0) return BeginRead(first);  // pipelined bytes
    state_ = State::kIdle;
    ArmTimer(first ? core_->limits.request_timeout : core_->limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = Self(), first](const error_code& ec, std::size_t n) {
                              if (self->state_ == State::kClosed) return;
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->BeginRead(first);
                            });
  }

  void BeginRead(bool first) {
    state_ = State::kReading;
    if (!first) ArmTimer(core_->limits.request_timeout);
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(core_->limits.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(core_->limits.max_body_bytes);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = Self()](const error_code& ec, std::size_t) {
                               self->OnHeader(ec);
                             });
  }

  void OnHeader(const error_code& ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    if (std::optional<HeaderProblem> problem = ValidateHeader(*parser_)) {
      return SendProblem(problem->status, problem->type, problem->detail);
    }
    const auto& req = parser_->get();
    request_ = Request();
    request_.method = std::string(View(req.method_string()));
    request_.target = std::string(View(req.target()));
    std::size_t q = request_.target.find('?');
    request_.path = request_.target.substr(0, q);
    if (q != std::string::npos) request_.query = request_.target.substr(q + 1);
    // Captured now: fields that arrive later as chunked trailers never
    // reach the handler.
    for (const auto& field : req) {
      request_.headers.emplace(std::string(View(field.name_string())),
                               std::string(View(field.value())));
    }
    keep_alive_ = req.keep_alive();
    if (req[bhttp::field::expect].size() > 0 && !parser_->is_done()) {
      continue_ = bhttp::response<bhttp::empty_body>(bhttp::status::continue_, 11);
      bhttp::async_write(stream_, continue_, [self = Self()](const error_code& wec, std::size_t) {
        if (self->state_ == State::kClosed) return;
        if (wec) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnBody(error_code());
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = Self()](const error_code& ec, std::size_t) { self->OnBody(ec); });
  }

  void OnBody(const error_code& ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    timer_.cancel();
    state_ = State::kHandling;
    request_.body = std::move(parser_->get().body());
    parser_.reset();
    request_.peer = peer_;
    head_ = request_.method == "HEAD";
    core_->requests.fetch_add(1, std::memory_order_relaxed);
    if (core_->inline_handlers) {
      Response response = core_->Dispatch(request_);
      return OnResponse(std::move(response));
    }
    asio::post(*core_->workers, [self = Self(), request = std::move(request_)]() mutable {
      Response response = self->core_->Dispatch(request);
      asio::post(self->stream_.get_executor(),
                 [self, response = std::move(response)]() mutable {
                   self->OnResponse(std::move(response));
                 });
    });
  }

  void OnReadError(const error_code& ec) {
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      return SendProblem(431, kProblemHeaderTooLarge,
                         "the request header section exceeds " +
                             std::to_string(core_->limits.max_header_bytes) + " bytes");
    }
    if (ec == bhttp::error::body_limit) {
      return SendProblem(413, kProblemBodyTooLarge,
                         "the request body exceeds " +
                             std::to_string(core_->limits.max_body_bytes) + " bytes");
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      // Beast's messages ("bad chunk", "bad Content-Length") describe the
      // client's own input and nothing of ours.
      return SendProblem(400, kProblemBadRequest, "malformed request: " + ec.message());
    }
    Close();  // EOF, reset, timeout-induced abort
  }

  void SendProblem(int status, std::string_view type, std::string detail) {
    core_->bad_requests.fetch_add(1, std::memory_order_relaxed);
    parser_.reset();
    keep_alive_ = false;
    head_ = false;
    OnResponse(Problem(status, type, detail));
  }

  void OnResponse(Response response) {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    ++served_;
    close_after_write_ = !keep_alive_ || stop_requested_ || core_->stopping.load() ||
                         served_ >= core_->limits.max_requests_per_connection;
    common::Status built = ToBeast(std::move(response), head_, close_after_write_, response_);
    if (!built.ok()) {
      core_->handler_exceptions.fetch_add(1, std::memory_order_relaxed);
      common::Status fallback =
          ToBeast(Problem(500, kProblemInternal, "the request could not be processed"), false,
                  close_after_write_, response_);
      fallback.IgnoreError();  // a fixed, valid response
    }
    ArmTimer(core_->limits.write_timeout);
    bhttp::async_write(stream_, response_, [self = Self()](const error_code& ec, std::size_t) {
      self->OnWrite(ec);
    });
  }

  void OnWrite(const error_code& ec) {
    if (state_ == State::kClosed) return;
    if (ec) return Close();
    response_ = BeastResponse();
    if (close_after_write_) return Linger();
    WaitForRequest();
  }

  // Half-close, then discard what the client still sends for a moment.
  void Linger() {
    state_ = State::kDraining;
    error_code ignored;
    Lowest().shutdown(asio::socket_base::shutdown_send, ignored);
    ArmTimer(kLingerTimeout);
    Drain();
  }

  void Drain() {
    Lowest().async_read_some(asio::buffer(drain_), [self = Self()](const error_code& ec,
                                                                   std::size_t n) {
      if (self->state_ == State::kClosed) return;
      self->drained_ += n;
      if (ec || self->drained_ > kLingerMaxBytes) return self->Close();
      self->Drain();
    });
  }

  void OnStopRequested(bool force) {
    stop_requested_ = true;
    if (force || state_ == State::kNew || state_ == State::kIdle || state_ == State::kHandshake) {
      Close();
    }
  }

  void ArmTimer(std::chrono::milliseconds d) {
    timer_.expires_after(d);
    timer_.async_wait([self = Self()](const error_code& ec) {
      if (!ec) self->OnTimer();
    });
  }

  void OnTimer() {
    if (state_ == State::kClosed || timer_.expiry() > Clock::now()) return;  // re-armed
    bool keep_alive_idle = state_ == State::kIdle && served_ > 0;
    if (state_ != State::kDraining && !keep_alive_idle) {
      core_->timeouts.fetch_add(1, std::memory_order_relaxed);
    }
    Close();
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    timer_.cancel();
    error_code ignored;
    Lowest().shutdown(asio::socket_base::shutdown_both, ignored);
    Lowest().close(ignored);
  }

  ServerCore* core_;
  Stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  BeastResponse response_;
  bhttp::response<bhttp::empty_body> continue_;
  Request request_;
  PeerInfo peer_;
  std::array<char, 4096> drain_{};
  std::size_t drained_ = 0;
  std::uint64_t id_ = 0;
  std::size_t served_ = 0;
  State state_ = State::kNew;
  bool keep_alive_ = true;
  bool head_ = false;
  bool close_after_write_ = false;
  bool stop_requested_ = false;
};

// Whether a new connection may be served; closes it otherwise.
template <class Socket>
bool Admit(ServerCore* core, Socket& socket) {
  if (!core->stopping.load() && core->ActiveSessions() < core->limits.max_connections) {
    core->accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  core->refused.fetch_add(1, std::memory_order_relaxed);
  error_code ignored;
  socket.close(ignored);
  return false;
}

// Accept errors such as EMFILE would repeat at once: pause before retrying.
template <class Acceptor, class Retry>
void BackOff(Acceptor& acceptor, Retry retry) {
  auto timer = std::make_shared<asio::steady_timer>(acceptor.get_executor(),
                                                    std::chrono::milliseconds(50));
  timer->async_wait([timer, retry](const error_code&) { retry(); });
}

}  // namespace

void internal::ServerCore::AcceptTcp() {
  tcp_acceptor->async_accept(asio::make_strand(*ioc), [this](const error_code& ec, auto accepted_socket) {
    if (ec == asio::error::operation_aborted || stopping.load()) return;
    if (ec) return BackOff(*tcp_acceptor, [this] { if (!stopping.load()) AcceptTcp(); });
    tcp::socket socket(std::move(accepted_socket));
    if (Admit(this, socket)) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      PeerInfo peer;
      tcp::endpoint remote = socket.remote_endpoint(ignored);
      peer.remote_address = FormatEndpoint(remote);
      auto session =
          std::make_shared<Session<TlsStream>>(this, TlsStream(std::move(socket), *ssl_ctx), std::move(peer));
      session->Start();
    }
    AcceptTcp();
  });
}

void internal::ServerCore::AcceptUnix() {
  unix_acceptor->async_accept(asio::make_strand(*ioc), [this](const error_code& ec, auto accepted_socket) {
    if (ec == asio::error::operation_aborted || stopping.load()) return;
    if (ec) return BackOff(*unix_acceptor, [this] { if (!stopping.load()) AcceptUnix(); });
    UnixStream socket(std::move(accepted_socket));
    if (Admit(this, socket)) {
      PeerInfo peer;
      peer.remote_address = "unix:" + unix_path;
      struct ucred cred {};
      socklen_t len = sizeof(cred);
      if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
          len == sizeof(cred)) {
        peer.unix_peer = UnixPeerCredentials{cred.pid, cred.uid, cred.gid};
      }
      if (!peer.unix_peer.has_value()) {
        // No credentials, no service: handlers rely on them for identity.
        error_code ignored;
        socket.close(ignored);
      } else {
        auto session = std::make_shared<Session<UnixStream>>(this, std::move(socket), std::move(peer));
        session->Start();
      }
    }
    AcceptUnix();
  });
}

class HttpServer::Impl : public ServerCore {};

namespace {

common::Result<gid_t> ResolveGroup(const std::string& group) {
  if (!group.empty() && std::all_of(group.begin(), group.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return static_cast<gid_t>(std::stoul(group));
  }
  struct group grp {};
  struct group* result = nullptr;
  std::vector<char> buf(16384);
  int rc = getgrnam_r(group.c_str(), &grp, buf.data(), buf.size(), &result);
  if (rc != 0 || result == nullptr) {
    return common::InvalidArgumentError("unknown group \"" + group + "\"");
  }
  return result->gr_gid;
}

common::Status ListenUnix(ServerCore& core, const UnixListenOptions& options) {
  if (options.path.empty() || options.path.size() >= sizeof(sockaddr_un::sun_path)) {
    return common::InvalidArgumentError("Unix socket path is empty or too long");
  }
  if ((options.mode & ~0777u) != 0) return common::InvalidArgumentError("bad socket mode");
  struct stat st {};
  if (lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || !options.replace_existing_socket) {
      return common::AlreadyExistsError(options.path + " exists and is not a replaceable socket");
    }
    if (unlink(options.path.c_str()) != 0) {
      return common::UnavailableError("unlink " + options.path + ": " + std::strerror(errno));
    }
  }
  std::optional<gid_t> gid;
  if (!options.group.empty()) {
    AR_ASSIGN_OR_RETURN(gid, ResolveGroup(options.group));
  }
  error_code ec;
  core.unix_acceptor.emplace(asio::make_strand(*core.ioc));
  core.unix_acceptor->open(UnixProtocol(), ec);
  if (!ec) core.unix_acceptor->bind(UnixProtocol::endpoint(options.path), ec);
  if (ec) return common::UnavailableError("bind " + options.path + ": " + ec.message());
  core.unix_path = options.path;
  if (lstat(options.path.c_str(), &st) == 0) core.unix_inode = st.st_ino;
  // Permissions before listen(): until then every connect() is refused, so
  // there is no window in which the socket is reachable with the umask's mode.
  if (chmod(options.path.c_str(), options.mode) != 0) {
    return common::UnavailableError("chmod " + options.path + ": " + std::strerror(errno));
  }
  if (gid.has_value() && chown(options.path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    return common::PermissionDeniedError("chown " + options.path + ": " + std::strerror(errno));
  }
  core.unix_acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return common::UnavailableError("listen " + options.path + ": " + ec.message());
  return common::Status::Ok();
}

common::Status ListenTcp(ServerCore& core, const TcpListenOptions& options) {
  error_code ec;
  asio::ip::address address = asio::ip::make_address(options.address, ec);
  if (ec) return common::InvalidArgumentError("bad listen address \"" + options.address + "\"");
  tcp::endpoint endpoint(address, options.port);
  core.tcp_acceptor.emplace(asio::make_strand(*core.ioc));
  core.tcp_acceptor->open(endpoint.protocol(), ec);
  if (!ec) core.tcp_acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && address.is_v6()) core.tcp_acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) core.tcp_acceptor->bind(endpoint, ec);
  if (!ec) core.tcp_acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return common::UnavailableError("listen on " + FormatEndpoint(endpoint) + ": " + ec.message());
  }
  core.port = core.tcp_acceptor->local_endpoint(ec).port();
  return common::Status::Ok();
}

void RemoveUnixSocket(ServerCore& core) {
  if (core.unix_path.empty()) return;
  struct stat st {};
  // Only our own socket: another server may have replaced it meanwhile.
  if (lstat(core.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_ino == core.unix_inode) {
    unlink(core.unix_path.c_str());
  }
  core.unix_path.clear();
}

int DefaultThreads(int requested) {
  if (requested > 0) return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

common::Result<std::unique_ptr<HttpServer>> HttpServer::Create(ServerOptions options) {
  if (options.tcp.has_value() == options.unix_socket.has_value()) {
    return common::InvalidArgumentError("set exactly one of ServerOptions.tcp and .unix_socket");
  }
  const ServerLimits& limits = options.limits;
  if (limits.max_header_bytes < 256 || limits.max_connections == 0 ||
      limits.max_requests_per_connection == 0 || limits.request_timeout.count() <= 0 ||
      limits.idle_timeout.count() <= 0 || limits.handshake_timeout.count() <= 0 ||
      limits.write_timeout.count() <= 0) {
    return common::InvalidArgumentError("ServerLimits out of range");
  }
  auto impl = std::unique_ptr<Impl>(new Impl());
  impl->limits = limits;
  impl->io_thread_count = DefaultThreads(options.io_threads);
  impl->worker_thread_count = options.inline_handlers ? 1 : DefaultThreads(options.worker_threads);
  impl->inline_handlers = options.inline_handlers;
  try {
    impl->ioc = std::make_unique<asio::io_context>(impl->io_thread_count);
    if (options.tcp.has_value()) {
      TlsServerOptions& tls = options.tcp->tls;
      if (tls.client_auth != ClientAuth::kNone && tls.client_ca_pem.empty()) {
        return common::InvalidArgumentError("client authentication needs client_ca_pem");
      }
      impl->ssl_ctx.emplace(asio::ssl::context::tls_server);
      common::Status configured = internal::ConfigureServerContext(impl->ssl_ctx->native_handle(), tls);
      tls.private_key_pem.Clear();
      AR_RETURN_IF_ERROR(configured);
      AR_RETURN_IF_ERROR(ListenTcp(*impl, *options.tcp));
    } else {
      AR_RETURN_IF_ERROR(ListenUnix(*impl, *options.unix_socket));
    }
  } catch (const std::exception& e) {
    RemoveUnixSocket(*impl);
    return common::InternalError(std::string("HTTP server setup: ") + e.what());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

common::Status HttpServer::Handle(std::string_view method, std::string_view path_pattern,
                                  Handler handler) {
  std::lock_guard<std::mutex> lock(impl_->lifecycle_mu);
  if (impl_->started || impl_->stopped) {
    return common::FailedPreconditionError("routes must be added before Start()");
  }
  return impl_->router.Add(method, path_pattern, std::move(handler));
}

common::Status HttpServer::Start() {
  std::lock_guard<std::mutex> lock(impl_->lifecycle_mu);
  if (impl_->started || impl_->stopped) {
    return common::FailedPreconditionError("HttpServer::Start called twice or after Stop");
  }
  ServerCore& core = *impl_;
  try {
    core.workers = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(core.worker_thread_count));
    core.work.emplace(core.ioc->get_executor());
    for (int i = 0; i < core.io_thread_count; ++i) {
      core.io_threads.emplace_back([&core] {
        while (true) {
          try {
            core.ioc->run();
            return;
          } catch (...) {
            // A handler threw (out of memory, a bug): keep the other
            // connections served; that session's objects are released.
          }
        }
      });
    }
  } catch (const std::exception& e) {
    return common::ResourceExhaustedError(std::string("starting HTTP server threads: ") + e.what());
  }
  core.started = true;
  if (core.tcp_acceptor) {
    asio::post(core.tcp_acceptor->get_executor(), [&core] { core.AcceptTcp(); });
  } else {
    asio::post(core.unix_acceptor->get_executor(), [&core] { core.AcceptUnix(); });
  }
  return common::Status::Ok();
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  ServerCore& core = *impl_;
  {
    std::lock_guard<std::mutex> lock(core.lifecycle_mu);
    if (core.stopped) return;
    core.stopped = true;
    core.stopping = true;
    if (!core.started) {
      error_code ignored;
      if (core.tcp_acceptor) core.tcp_acceptor->close(ignored);
      if (core.unix_acceptor) core.unix_acceptor->close(ignored);
      RemoveUnixSocket(core);
      return;
    }
  }
  auto deadline = Clock::now() + grace;
  // 1. No new connections.
  std::promise<void> closed;
  auto close_acceptor = [&core, &closed] {
    error_code ignored;
    if (core.tcp_acceptor) core.tcp_acceptor->close(ignored);
    if (core.unix_acceptor) core.unix_acceptor->close(ignored);
    closed.set_value();
  };
  if (core.tcp_acceptor) {
    asio::post(core.tcp_acceptor->get_executor(), close_acceptor);
  } else {
    asio::post(core.unix_acceptor->get_executor(), close_acceptor);
  }
  closed.get_future().wait();
  RemoveUnixSocket(core);
  // 2. Idle connections close now, busy ones after their response.
  for (auto& session : core.Snapshot()) session->RequestStop(/*force=*/false);
  {
    std::unique_lock<std::mutex> lock(core.sessions_mu);
    core.sessions_cv.wait_until(lock, deadline, [&core] { return core.sessions.empty(); });
  }
  // 3. Past the grace period: close whatever is left.
  for (auto& session : core.Snapshot()) session->RequestStop(/*force=*/true);
  core.workers->join();
  {
    std::unique_lock<std::mutex> lock(core.sessions_mu);
    core.sessions_cv.wait_for(lock, std::chrono::seconds(1),
                              [&core] { return core.sessions.empty(); });
  }
  core.work.reset();
  core.ioc->stop();
  for (std::thread& t : core.io_threads) t.join();
  core.io_threads.clear();
  // Tasks an I/O thread queued after the pool's join never run; destroying
  // the pool now releases their sessions while the io_context still exists.
  core.workers.reset();
}

std::uint16_t HttpServer::port() const { return impl_->port; }

ServerStats HttpServer::stats() const {
  ServerStats s;
  s.connections_accepted = impl_->accepted.load();
  s.connections_refused = impl_->refused.load();
  s.connections_active = impl_->ActiveSessions();
  s.requests = impl_->requests.load();
  s.bad_requests = impl_->bad_requests.load();
  s.timeouts = impl_->timeouts.load();
  s.tls_handshake_failures = impl_->handshake_failures.load();
  s.handler_exceptions = impl_->handler_exceptions.load();
  return s;
}

namespace {

sigset_t ServiceSignals(bool reload) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (reload) sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockShutdownSignals(bool reload) {
  sigset_t set = ServiceSignals(reload);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal(const std::function<void()>& on_reload) {
  const sigset_t set = ServiceSignals(static_cast<bool>(on_reload));
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    on_reload();
  }
}

}  // namespace agentroot::http
