#include "agentroot/http/testing/raw_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "agentroot/common/openssl.h"

namespace agentroot::http::testing {
namespace {

using Clock = std::chrono::steady_clock;

void IgnoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { signal(SIGPIPE, SIG_IGN); });
}

common::Result<int> ConnectIp(std::string_view ip, std::uint16_t port) {
  std::string host(ip);
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return common::InvalidArgumentError("not an IP literal: " + host);
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return common::UnavailableError(std::string("socket: ") + std::strerror(errno));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    return common::UnavailableError(std::string("connect: ") + std::strerror(err));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void SetTimeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

RawConnection::~RawConnection() {
  if (ssl_ != nullptr) SSL_free(static_cast<SSL*>(ssl_));
  if (ssl_ctx_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
  if (fd_ >= 0) close(fd_);
}

common::Result<std::unique_ptr<RawConnection>> RawConnection::ConnectTcp(std::string_view ip,
                                                                         std::uint16_t port) {
  IgnoreSigpipe();
  AR_ASSIGN_OR_RETURN(int fd, ConnectIp(ip, port));
  std::unique_ptr<RawConnection> conn(new RawConnection());
  conn->fd_ = fd;
  return conn;
}

common::Result<std::unique_ptr<RawConnection>> RawConnection::ConnectUnix(std::string_view path) {
  IgnoreSigpipe();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return common::InvalidArgumentError("path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return common::UnavailableError(std::string("socket: ") + std::strerror(errno));
  std::unique_ptr<RawConnection> conn(new RawConnection());
  conn->fd_ = fd;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return common::UnavailableError(std::string("connect: ") + std::strerror(errno));
  }
  return conn;
}

common::Result<std::unique_ptr<RawConnection>> RawConnection::ConnectTls(
    std::string_view ip, std::uint16_t port, const RawTlsOptions& options,
    std::chrono::milliseconds timeout) {
  AR_ASSIGN_OR_RETURN(std::unique_ptr<RawConnection> conn, ConnectTcp(ip, port));
  SetTimeouts(conn->fd_, timeout);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return common::OpenSslInternal("SSL_CTX_new");
  conn->ssl_ctx_ = ctx;
  if (options.min_version != 0 || options.max_version != 0) {
    // Let old versions be offered at all (OpenSSL 3's security level 2
    // forbids < TLS 1.2 on the client side).
    SSL_CTX_set_security_level(ctx, 0);
  }
  if (options.min_version != 0) SSL_CTX_set_min_proto_version(ctx, options.min_version);
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx, options.max_version);
  if (!options.cipher_list.empty() && SSL_CTX_set_cipher_list(ctx, options.cipher_list.c_str()) != 1) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "cipher list");
  }
  if (!options.certificate_pem.empty()) {
    common::BioPtr cert_bio(BIO_new_mem_buf(options.certificate_pem.data(),
                                            static_cast<int>(options.certificate_pem.size())));
    common::X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
    common::BioPtr key_bio(BIO_new_mem_buf(options.private_key_pem.data(),
                                           static_cast<int>(options.private_key_pem.size())));
    common::EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!cert || !key || SSL_CTX_use_certificate(ctx, cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
      return common::OpenSslError(common::StatusCode::kInvalidArgument, "client certificate");
    }
  }
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return common::OpenSslInternal("SSL_new");
  conn->ssl_ = ssl;
  SSL_set_fd(ssl, conn->fd_);
  common::ClearOpenSslErrors();
  if (SSL_connect(ssl) != 1) {
    return common::OpenSslError(common::StatusCode::kUnauthenticated, "SSL_connect");
  }
  return conn;
}

common::Status RawConnection::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    long n;
    if (ssl_ != nullptr) {
      n = SSL_write(static_cast<SSL*>(ssl_), bytes.data(), static_cast<int>(bytes.size()));
    } else {
      n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    if (n <= 0) {
      common::ClearOpenSslErrors();
      return common::UnavailableError("send failed (peer closed?)");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return common::Status::Ok();
}

long RawConnection::ReadSome(char* buf, std::size_t len, Clock::time_point deadline) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  if (ssl == nullptr || SSL_pending(ssl) == 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return -2;
    pollfd pfd{fd_, POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc == 0) return -2;
    if (rc < 0) return -1;
  }
  if (ssl != nullptr) {
    int n = SSL_read(ssl, buf, static_cast<int>(len));
    if (n > 0) return n;
    int err = SSL_get_error(ssl, n);
    common::ClearOpenSslErrors();
    if (err == SSL_ERROR_WANT_READ) return Clock::now() >= deadline ? -2 : ReadSome(buf, len, deadline);
    return err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
  }
  long n = ::recv(fd_, buf, len, 0);
  return n < 0 ? -1 : n;
}

RawConnection::ReadResult RawConnection::ReadUntilClose(std::chrono::milliseconds timeout) {
  ReadResult result;
  result.data = std::move(pending_);
  pending_.clear();
  auto deadline = Clock::now() + timeout;
  char buf[16384];
  while (true) {
    long n = ReadSome(buf, sizeof(buf), deadline);
    if (n > 0) {
      result.data.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    result.closed = n == 0 || n == -1;
    return result;
  }
}

common::Result<std::string> RawConnection::ReadResponse(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[16384];
  while (true) {
    std::size_t end = pending_.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t body_len = 0;
      std::string head = pending_.substr(0, end);
      for (std::size_t pos = 0; pos < head.size();) {
        std::size_t eol = head.find("\r\n", pos);
        std::string line = head.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
        if (line.size() > 15 && strncasecmp(line.c_str(), "content-length:", 15) == 0) {
          body_len = std::stoul(line.substr(15));
        }
        if (eol == std::string::npos) break;
        pos = eol + 2;
      }
      if (pending_.size() >= end + 4 + body_len) {
        std::string out = pending_.substr(0, end + 4 + body_len);
        pending_.erase(0, end + 4 + body_len);
        return out;
      }
    }
    long n = ReadSome(buf, sizeof(buf), deadline);
    if (n == -2) return common::DeadlineExceededError("no complete response in time");
    if (n <= 0) return common::UnavailableError("connection closed before a complete response");
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

bool RawConnection::Renegotiate() {
  SSL* ssl = static_cast<SSL*>(ssl_);
  if (ssl == nullptr || SSL_renegotiate(ssl) != 1) {
    common::ClearOpenSslErrors();
    return false;
  }
  int rc = SSL_do_handshake(ssl);
  common::ClearOpenSslErrors();
  if (rc != 1) return false;
  // The handshake may only complete once the peer answers: push it with a
  // read of whatever follows.
  char byte;
  while (SSL_renegotiate_pending(ssl) == 1) {
    if (SSL_read(ssl, &byte, 1) <= 0) {
      common::ClearOpenSslErrors();
      return false;
    }
  }
  return true;
}

std::string RawConnection::tls_version() const {
  return ssl_ == nullptr ? std::string() : SSL_get_version(static_cast<SSL*>(ssl_));
}

int StatusOf(std::string_view raw) {
  if (raw.size() < 12 || raw.substr(0, 5) != "HTTP/") return -1;
  std::size_t sp = raw.find(' ');
  if (sp == std::string_view::npos || sp + 4 > raw.size()) return -1;
  int code = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (raw[i] < '0' || raw[i] > '9') return -1;
    code = code * 10 + (raw[i] - '0');
  }
  return code;
}

std::string BodyOf(std::string_view raw) {
  std::size_t end = raw.find("\r\n\r\n");
  return end == std::string_view::npos ? std::string() : std::string(raw.substr(end + 4));
}

}  // namespace agentroot::http::testing
