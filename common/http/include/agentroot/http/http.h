// Plain HTTP message types shared by HttpServer and HttpClient, and helpers
// for JSON and RFC 9457 problem-details responses.
//
// No Boost or Beast type appears here (nor in any agentroot/http header): the
// HTTP layer keeps Beast inside its own .cc files so the rest of the build
// stays fast and independent of it.
//
// Thread safety: plain values; safe to copy between threads, not to mutate
// concurrently.
#ifndef AGENTROOT_HTTP_HTTP_H_
#define AGENTROOT_HTTP_HTTP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::http {

// ASCII case-insensitive ordering (field names are case-insensitive, RFC
// 9110 §5.1). Transparent, so lookups by std::string_view do not allocate.
struct CaseInsensitiveLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept;
};

// Header fields in arrival order per name; a name may repeat.
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;

// The first value of `name`, or nullopt. The view points into `headers`.
std::optional<std::string_view> FindHeader(const Headers& headers, std::string_view name);

// Credentials of the process at the other end of a Unix socket (SO_PEERCRED:
// taken by the kernel at connect() time, not spoofable by the peer).
struct UnixPeerCredentials {
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

// What the TLS handshake established about the peer.
struct TlsPeerInfo {
  std::string version;  // "TLSv1.3", "TLSv1.2"
  std::string cipher;   // OpenSSL name, e.g. "TLS_AES_128_GCM_SHA256"
  // The client's leaf certificate (DER) when it sent one. It chained to the
  // configured client CA when `client_certificate_verified`; with client
  // authentication kOptional a client may also send none (empty DER).
  common::Bytes client_certificate_der;
  bool client_certificate_verified = false;
};

struct PeerInfo {
  // "127.0.0.1:40312", "[::1]:40312", or "unix:<socket path>".
  std::string remote_address;
  std::optional<TlsPeerInfo> tls;                   // TCP listeners (always TLS)
  std::optional<UnixPeerCredentials> unix_peer;     // Unix-socket listeners
};

struct Request {
  std::string method;  // as sent; methods are case-sensitive (RFC 9110 §9.1)
  std::string target;  // origin-form: "/v1/agents/x?y=1"
  std::string path;    // target before '?', still percent-encoded
  std::string query;   // target after '?', without it, still percent-encoded
  // Values of the route's {param} segments, percent-decoded.
  std::map<std::string, std::string, std::less<>> path_params;
  Headers headers;  // header section only; chunked trailers are discarded
  std::string body;
  PeerInfo peer;

  std::optional<std::string_view> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
  // The decoded value of path parameter `name`; empty when absent.
  std::string_view PathParam(std::string_view name) const;
};

struct Response {
  int status = 200;
  // The server owns framing: Content-Length, Transfer-Encoding and Connection
  // set here are ignored. Names and values must not contain CR, LF or NUL
  // (the server answers 500 instead of sending such a response).
  Headers headers;
  std::string body;
};

// Stable problem type URIs of the failures the HTTP layer itself reports.
// Handlers define their own types in the same "urn:agentroot:problem:" space.
inline constexpr std::string_view kProblemBadRequest = "urn:agentroot:problem:http:bad-request";
inline constexpr std::string_view kProblemNotFound = "urn:agentroot:problem:http:not-found";
inline constexpr std::string_view kProblemMethodNotAllowed =
    "urn:agentroot:problem:http:method-not-allowed";
inline constexpr std::string_view kProblemBodyTooLarge =
    "urn:agentroot:problem:http:body-too-large";
inline constexpr std::string_view kProblemHeaderTooLarge =
    "urn:agentroot:problem:http:header-too-large";
inline constexpr std::string_view kProblemExpectationFailed =
    "urn:agentroot:problem:http:expectation-failed";
inline constexpr std::string_view kProblemInternal = "urn:agentroot:problem:http:internal";

// An RFC 9457 problem-details response: Content-Type
// application/problem+json, Cache-Control no-store, a JSON object with
// `type`, `title`, `status` and `detail` (omitted when empty). `detail` is
// shown to the client: never put secrets, tokens or exception text in it.
Response ProblemResponse(int status, std::string_view type, std::string_view title,
                         std::string_view detail);

// `body` serialized as application/json.
Response JsonResponse(int status, const common::Json& body);

// Percent-decodes `text` (RFC 3986 §2.1; '+' is left as is). INVALID_ARGUMENT
// on a truncated or non-hex escape.
common::Result<std::string> PercentDecode(std::string_view text);

// Percent-encodes `text` for an application/x-www-form-urlencoded value or a
// query component: every byte but ALPHA / DIGIT / "-" / "." / "_" / "~"
// becomes %XX (upper-case hex).
std::string FormUrlEncode(std::string_view text);

// Splits an application/x-www-form-urlencoded string or URL query ("a=1&b=2")
// into decoded pairs; '+' decodes to a space. INVALID_ARGUMENT on a bad
// escape.
common::Result<std::multimap<std::string, std::string>> ParseQuery(std::string_view query);

// The standard reason phrase for `status` ("Not Found"), or "Unknown".
std::string_view ReasonPhrase(int status);

}  // namespace agentroot::http

#endif  // AGENTROOT_HTTP_HTTP_H_
