// RawConnection: a deliberately dumb client for tests that must put exact
// bytes on the wire (malformed framing, a byte at a time) or control the TLS
// version and suites offered. Plain OpenSSL over a blocking socket; no HTTP
// logic beyond splitting a response off the stream.
//
// Thread safety: one connection per thread. SIGPIPE is ignored process-wide
// on first use (writes to a closed peer return errors instead).
#ifndef AGENTROOT_HTTP_TESTING_RAW_CONNECTION_H_
#define AGENTROOT_HTTP_TESTING_RAW_CONNECTION_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::http::testing {

struct RawTlsOptions {
  int min_version = 0;  // e.g. TLS1_2_VERSION; 0 = OpenSSL default
  int max_version = 0;
  std::string cipher_list;  // TLS 1.2 suites; empty = default
  // Client certificate for mutual TLS (optional).
  std::string certificate_pem;
  std::string private_key_pem;
  // The server certificate is not verified: these tests attack the server.
};

class RawConnection {
 public:
  static common::Result<std::unique_ptr<RawConnection>> ConnectTls(
      std::string_view ip, std::uint16_t port, const RawTlsOptions& options = {},
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  static common::Result<std::unique_ptr<RawConnection>> ConnectTcp(
      std::string_view ip, std::uint16_t port);
  static common::Result<std::unique_ptr<RawConnection>> ConnectUnix(std::string_view path);

  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  common::Status Send(std::string_view bytes);

  struct ReadResult {
    std::string data;
    bool closed = false;  // the peer closed (EOF or reset) before the timeout
  };
  // Reads until the peer closes the connection or `timeout` passes.
  ReadResult ReadUntilClose(std::chrono::milliseconds timeout);
  // Reads one response (header section + Content-Length body).
  common::Result<std::string> ReadResponse(std::chrono::milliseconds timeout);

  // Attempts a TLS renegotiation (TLS 1.2); true if a new handshake completed.
  bool Renegotiate();

  // "TLSv1.3" etc.; empty for plain connections.
  std::string tls_version() const;
  int fd() const { return fd_; }

 private:
  RawConnection() = default;
  // >0 bytes, 0 EOF, -1 error, -2 timeout.
  long ReadSome(char* buf, std::size_t len, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*
  void* ssl_ = nullptr;      // SSL*
  std::string pending_;
};

// The status code of a raw "HTTP/1.1 NNN ..." response; -1 if malformed.
int StatusOf(std::string_view raw_response);
// The body after the header section ("" if none).
std::string BodyOf(std::string_view raw_response);

}  // namespace agentroot::http::testing

#endif  // AGENTROOT_HTTP_TESTING_RAW_CONNECTION_H_
