// agentroot-resource-demo: a CRM-like HTTPS API that accepts only
// agentroot's DPoP-bound tokens (see resource_demo.h). Logs are JSON lines on
// stderr: one per decision, without the token.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "agentroot/common/log.h"
#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/simulators/resource_demo.h"

namespace {

using agentroot::common::Json;
using agentroot::common::Result;
using agentroot::common::Status;

struct Settings {
  std::string listen = "127.0.0.1:9443";
  std::string tls_certificate, tls_private_key;
  std::string issuer, verifier_ca, audience, public_url, ready_file;
};

// "https://host:port/path" -> "https://host:port".
std::string Origin(const std::string& url) {
  std::size_t scheme = url.find("://");
  return url.substr(0, url.find('/', scheme == std::string::npos ? 0 : scheme + 3));
}

Status Run(const Settings& s) {
  AR_ASSIGN_OR_RETURN(agentroot::http::TcpListenOptions tcp,
                      agentroot::http::TlsListenerFromFiles(s.listen, "--listen", s.tls_certificate, "--tls-certificate",
                                                            s.tls_private_key, "--tls-private-key"));
  const std::string address = tcp.address;
  agentroot::http::BlockShutdownSignals();
  AR_ASSIGN_OR_RETURN(std::string verifier_ca, agentroot::common::ReadConfiguredFile(s.verifier_ca, "--verifier-ca"));

  // The verifier's JWKS, fetched on demand (and again on an unknown kid).
  agentroot::http::ClientOptions client_options;
  client_options.base_url = Origin(s.issuer);
  client_options.ca_pem = verifier_ca;
  AR_ASSIGN_OR_RETURN(auto client, agentroot::http::HttpClient::Create(std::move(client_options)));
  std::shared_ptr<agentroot::http::HttpClient> jwks_client(std::move(client));
  auto jwks = std::make_shared<agentroot::attestation::JwksCache>(
      [jwks_client]() -> Result<std::string> {
        AR_ASSIGN_OR_RETURN(auto response, jwks_client->Get("/.well-known/jwks.json"));
        if (response.status != 200) {
          return agentroot::common::UnavailableError("JWKS fetch: HTTP " + std::to_string(response.status));
        }
        return response.body;
      },
      agentroot::common::Clock::System(), agentroot::attestation::JwksCache::Options{});

  agentroot::http::ServerOptions options;
  options.tcp = std::move(tcp);
  AR_ASSIGN_OR_RETURN(auto server, agentroot::http::HttpServer::Create(std::move(options)));

  agentroot::simulators::ResourceDemoOptions demo_options;
  demo_options.audience = s.audience;
  demo_options.issuer = s.issuer;
  demo_options.public_url =
      s.public_url.empty()
          ? "https://" + (address.find(':') == std::string::npos ? address : "[" + address + "]") + ":" +
                std::to_string(server->port())
          : s.public_url;
  demo_options.jwks = jwks;
  demo_options.on_decision = [](const Json& decision) { agentroot::common::LogJson("info", "decision", decision); };
  AR_ASSIGN_OR_RETURN(auto demo, agentroot::simulators::ResourceDemo::Create(std::move(demo_options),
                                                                             agentroot::common::Clock::System()));
  AR_RETURN_IF_ERROR(demo->Register(*server));
  AR_RETURN_IF_ERROR(server->Start());
  agentroot::common::LogJson("info", "listening", {{"address", address}, {"port", server->port()}, {"audience", s.audience}});
  if (!s.ready_file.empty()) {
    std::ofstream ready(s.ready_file);
    ready << server->port() << "\n";
    if (!ready) return agentroot::common::InternalError("--ready-file: cannot write " + s.ready_file);
  }
  int sig = agentroot::http::WaitForShutdownSignal();
  agentroot::common::LogJson("info", "shutting down", {{"signal", sig}});
  server->Stop(std::chrono::seconds(5));
  auto counters = demo->counters();
  agentroot::common::LogJson("info", "stopped", {{"allowed", counters.allowed}, {"refused", counters.refused}});
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "agentroot-resource-demo: a CRM-like HTTPS API that accepts only DPoP-bound agentroot tokens.\n"
      "Endpoints: GET /v1/accounts, /v1/accounts/{id}, /v1/contacts (scope crm.read); POST /v1/contacts (crm.write);\n"
      "GET /v1/export (crm.export); GET /healthz.\n"
      "Example: agentroot-resource-demo --tls-certificate crm.pem --tls-private-key crm.key \\\n"
      "           --issuer https://127.0.0.1:8443 --verifier-ca ca.pem --audience https://crm.example"};
  Settings s;
  app.add_option("--listen", s.listen, "ADDRESS:PORT to serve HTTPS on (port 0: any free port)")->capture_default_str();
  app.add_option("--tls-certificate", s.tls_certificate, "Server certificate chain (PEM)")->required();
  app.add_option("--tls-private-key", s.tls_private_key, "Server private key (PEM)")->required();
  app.add_option("--issuer", s.issuer, "The verifier's issuer URL (tokens' iss; JWKS at its /.well-known/jwks.json)")
      ->required();
  app.add_option("--verifier-ca", s.verifier_ca, "CA certificate (PEM) that the verifier's TLS certificate chains to")
      ->required();
  app.add_option("--audience", s.audience, "This API's identifier, the tokens' aud (e.g. https://crm.example)")
      ->required();
  app.add_option("--public-url", s.public_url,
                 "scheme://host[:port] clients use to reach this API (DPoP htu); default https://<listen address>");
  app.add_option("--ready-file", s.ready_file, "Write the bound port to this file once serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  Status status = Run(s);
  if (!status.ok()) {
    std::fprintf(stderr, "agentroot-resource-demo: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
