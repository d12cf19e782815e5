// ResourceDemo: a small CRM-like HTTPS API (accounts, contacts, an export)
// that accepts only agentroot tokens, the way a real resource server would:
// every request carries `Authorization: DPoP <token>` and a `DPoP` proof, and
// both are checked with attestation::AccessTokenValidator (issuer keys from
// the verifier's JWKS, proof bound to the token's cnf.jkt, single-use proof
// jti, htm/htu/ath) before the endpoint's scope is enforced.
//
//   GET  /v1/accounts          crm.read
//   GET  /v1/accounts/{id}     crm.read
//   GET  /v1/contacts          crm.read
//   POST /v1/contacts          crm.write   {"name","email","account_id"} -> 201
//   GET  /v1/export            crm.export
//   GET  /healthz              no token (readiness)
//
// Refusals follow RFC 9449 §7.1 / RFC 6750 §3: 401 with
// `WWW-Authenticate: DPoP error="invalid_token"|"invalid_dpop_proof"`, 403
// with error="insufficient_scope". Every decision is reported to `on_decision`
// (who, what, allowed or why not; never the token itself).
//
// Thread safety: handlers run concurrently; the data and counters are
// guarded.
#ifndef AGENTROOT_SIMULATORS_RESOURCE_DEMO_H_
#define AGENTROOT_SIMULATORS_RESOURCE_DEMO_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agentroot/attestation/access_token.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"
#include "agentroot/http/server.h"

namespace agentroot::simulators {

struct ResourceDemoOptions {
  // The tokens' `aud`: this resource server's identifier, e.g. https://crm.example.
  std::string audience;
  // scheme://host[:port] the clients address; a proof's htu must be this plus
  // the request path (behind a proxy the local port differs from it).
  std::string public_url;
  std::string issuer;  // the verifier's issuer URL
  std::shared_ptr<attestation::JwksCache> jwks;
  // Proof jtis seen (a bounded in-memory cache when null).
  std::shared_ptr<attestation::ReplayCache> replay;
  // Optional: true when the verifier says the token's jti is revoked.
  std::function<bool(std::string_view jti)> is_revoked;
  // Called once per request with a JSON decision record.
  std::function<void(const common::Json&)> on_decision;
};

struct ResourceDemoCounters {
  std::uint64_t allowed = 0;
  std::uint64_t refused = 0;
};

class ResourceDemo {
 public:
  static common::Result<std::unique_ptr<ResourceDemo>> Create(ResourceDemoOptions options,
                                                              const common::Clock& clock);

  // Installs the routes above on `server` (before it starts).
  common::Status Register(http::HttpServer& server);

  ResourceDemoCounters counters() const;

 private:
  struct Contact {
    std::string id, name, email, account_id;
  };
  ResourceDemo(ResourceDemoOptions options, std::unique_ptr<attestation::AccessTokenValidator> validator);

  using Endpoint = std::function<http::Response(const http::Request&, const attestation::AuthorizedRequest&)>;
  http::HttpServer::Handler Guard(std::string scope, Endpoint endpoint);

  http::Response Accounts() const;
  http::Response Account(std::string_view id) const;
  http::Response Contacts() const;
  http::Response AddContact(const http::Request& request, const attestation::AuthorizedRequest& who);
  http::Response Export() const;

  ResourceDemoOptions options_;
  std::unique_ptr<attestation::AccessTokenValidator> validator_;
  mutable std::mutex mu_;
  common::Json accounts_;
  std::vector<Contact> contacts_;
  ResourceDemoCounters counters_;
};

}  // namespace agentroot::simulators

#endif  // AGENTROOT_SIMULATORS_RESOURCE_DEMO_H_
