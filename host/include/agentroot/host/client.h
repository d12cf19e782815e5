// host::Client: what an agent process uses to get credentials from the
// agentroot-hostd on its host (docs/hostd.md). It talks HTTP/1.1 + JSON over
// hostd's Unix socket; hostd identifies the calling process from the socket's
// peer credentials, so there is nothing for the agent to configure or hold
// but the socket path.
//
//   auto client = host::Client::Create({}).value();
//   auto h = client->Headers("https://crm.example", "crm.read", "GET",
//                            "https://crm.example/v1/accounts");
//   // send h->authorization as Authorization and h->dpop as DPoP
//
// Errors: a refusal by hostd keeps its problem code at the start of the
// message ("unknown_agent: ...") — ProblemCodeOf extracts it — with the
// StatusCode of its HTTP status: 400 INVALID_ARGUMENT, 403
// PERMISSION_DENIED, 413 RESOURCE_EXHAUSTED, 503 UNAVAILABLE (retry after
// retry_after_seconds()). A socket that is missing or refuses connections is
// UNAVAILABLE ("hostd_unreachable: ..."); an answer that is not the
// contract's is INTERNAL ("bad_response: ...").
//
// Thread safety: a Client may be used from several threads; calls are
// serialized on its one connection (use one Client per thread for
// parallelism).
#ifndef AGENTROOT_HOST_CLIENT_H_
#define AGENTROOT_HOST_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "agentroot/common/status.h"

namespace agentroot::http {
class HttpClient;
}

namespace agentroot::host {

inline constexpr char kDefaultSocketPath[] = "/run/agentroot/hostd.sock";
// The environment variable that overrides the default socket path.
inline constexpr char kSocketEnv[] = "AGENTROOT_HOSTD_SOCKET";

struct ClientOptions {
  // Empty: $AGENTROOT_HOSTD_SOCKET, else kDefaultSocketPath.
  std::string socket_path;
  // A fresh token may need a TPM quote and a round trip to the verifier.
  std::chrono::milliseconds timeout{30'000};
};

struct AgentToken {
  std::string access_token;  // a secret: never log it
  std::string token_type;    // "DPoP"
  int64_t expires_at = 0;    // Unix seconds
  int64_t expires_in = 0;
  std::string scope;
  std::string audience;
  std::string agent_id;
  std::string jkt;         // thumbprint of the key proofs must be signed with
  std::string proof_mode;  // "tpm" or "session"
};

// Ready-made values for one request's Authorization and DPoP headers.
struct RequestHeaders {
  std::string authorization;  // "DPoP <token>"
  std::string dpop;           // the proof
  int64_t expires_at = 0;     // the token's
};

struct HostStatus {
  std::string host_id;
  std::string enrollment;  // unenrolled | pending | approved | revoked | error
  std::string detail;
  std::string verifier;    // reachable | unreachable
  std::string tpm;         // ok | error
};

class Client {
 public:
  static common::Result<std::unique_ptr<Client>> Create(ClientOptions options);
  ~Client();

  // A token for this process's agent (cached by hostd per audience and scope).
  common::Result<AgentToken> Token(std::string_view audience, std::string_view scope);
  // A DPoP proof for one request; with `access_token` it carries `ath`.
  common::Result<std::string> Proof(std::string_view method, std::string_view url,
                                    std::optional<std::string_view> access_token = std::nullopt);
  // Token and proof in one round trip.
  common::Result<RequestHeaders> Headers(std::string_view audience, std::string_view scope, std::string_view method,
                                         std::string_view url);
  common::Result<HostStatus> Status();

  const std::string& socket_path() const { return socket_path_; }
  // Seconds hostd asked to wait (Retry-After) with its last 503; 0 if none.
  int64_t retry_after_seconds() const;

 private:
  Client(std::string socket_path, std::unique_ptr<http::HttpClient> http);
  common::Result<std::string> Call(std::string_view method, std::string_view target, std::string body);

  std::string socket_path_;
  mutable std::mutex mu_;
  std::unique_ptr<http::HttpClient> http_;
  int64_t retry_after_ = 0;
};

// The problem code at the start of `status`'s message ("unknown_agent"), or
// "" when there is none.
std::string_view ProblemCodeOf(const common::Status& status);

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_CLIENT_H_
