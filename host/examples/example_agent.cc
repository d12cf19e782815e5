// agentroot-example-agent: the smallest useful agent. It asks hostd (through
// host::Client) for a token and a DPoP proof for one request, sends the
// request to a resource API over HTTPS, and prints the answer. It holds no
// key and no long-lived secret: run it as a process hostd recognises (its
// executable is named by a local agent manifest).
//
//   agentroot-example-agent --api https://127.0.0.1:9443 --public-url https://crm.example
//       --ca ca.pem --scope crm.read GET /v1/accounts
//
// --save-request FILE (demos only) writes the Authorization and DPoP headers
// it sent to FILE (mode 0600): what an attacker who reads the agent's memory
// or its traffic would hold. `make demo` uses it to show that a stolen token
// and proof are useless elsewhere. A real agent never writes them anywhere.
//
// Exit codes: 0 the API answered 2xx; 1 refused (by hostd, the verifier or
// the API); 2 bad usage; 3 unavailable (retry later); 4 other errors.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agentroot/host/client.h"
#include "agentroot/http/client.h"

namespace {

int ExitCodeOf(const agentroot::common::Status& status) {
  switch (status.code()) {
    case agentroot::common::StatusCode::kPermissionDenied:
    case agentroot::common::StatusCode::kUnauthenticated:
      return 1;
    case agentroot::common::StatusCode::kInvalidArgument:
      return 2;
    case agentroot::common::StatusCode::kUnavailable:
      return 3;
    default:
      return 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"agentroot-example-agent: calls an API with a TPM-bound token from agentroot-hostd"};
  std::string api, public_url, ca, audience, scope = "crm.read", socket, method = "GET", path = "/v1/accounts", body;
  std::string save_request;
  app.add_option("--api", api, "Where to connect: https://host:port")->required();
  app.add_option("--public-url", public_url, "The API's URL as tokens and proofs name it (default: --api)");
  app.add_option("--ca", ca, "CA certificate (PEM) of the API's TLS certificate")->required();
  app.add_option("--audience", audience, "The token's audience (default: --public-url)");
  app.add_option("--scope", scope, "Scopes to ask for")->capture_default_str();
  app.add_option("--socket", socket, "hostd's socket");
  app.add_option("--body", body, "JSON body to send");
  app.add_option("--save-request", save_request,
                 "Demos only: write the Authorization and DPoP headers sent to this file (mode 0600)");
  app.add_option("method", method, "HTTP method")->capture_default_str();
  app.add_option("path", path, "Request path")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (public_url.empty()) public_url = api;
  if (audience.empty()) audience = public_url;
  std::ifstream ca_file(ca);
  if (!ca_file) {
    std::fprintf(stderr, "example-agent: cannot read --ca %s\n", ca.c_str());
    return 2;
  }
  std::stringstream ca_pem;
  ca_pem << ca_file.rdbuf();

  agentroot::host::ClientOptions options;
  options.socket_path = socket;
  auto hostd = agentroot::host::Client::Create(std::move(options));
  if (!hostd.ok()) {
    std::fprintf(stderr, "example-agent: %s\n", hostd.status().message().c_str());
    return ExitCodeOf(hostd.status());
  }
  // The proof names the request's URL without its query (RFC 9449 §4.2).
  std::string htu = public_url + path.substr(0, path.find('?'));
  auto headers = (*hostd)->Headers(audience, scope, method, htu);
  if (!headers.ok()) {
    std::fprintf(stderr, "example-agent: hostd: %s\n", headers.status().message().c_str());
    return ExitCodeOf(headers.status());
  }

  agentroot::http::ClientOptions http_options;
  http_options.base_url = api;
  http_options.ca_pem = ca_pem.str();
  auto http = agentroot::http::HttpClient::Create(std::move(http_options));
  if (!http.ok()) {
    std::fprintf(stderr, "example-agent: %s\n", http.status().message().c_str());
    return 2;
  }
  agentroot::http::ClientRequest request;
  request.method = method;
  request.target = path;
  request.headers.emplace("Authorization", headers->authorization);
  request.headers.emplace("DPoP", headers->dpop);
  if (!body.empty()) {
    request.headers.emplace("Content-Type", "application/json");
    request.body = body;
  }
  if (!save_request.empty()) {
    // O_EXCL: never follow or overwrite something already there.
    int fd = open(save_request.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    std::string saved = "Authorization: " + headers->authorization + "\nDPoP: " + headers->dpop + "\n";
    bool written = fd >= 0 && write(fd, saved.data(), saved.size()) == static_cast<ssize_t>(saved.size());
    if (fd >= 0) close(fd);
    if (!written) {
      std::fprintf(stderr, "example-agent: cannot write --save-request %s\n", save_request.c_str());
      return 4;
    }
  }
  auto response = (*http)->Send(request);
  if (!response.ok()) {
    std::fprintf(stderr, "example-agent: %s %s: %s\n", method.c_str(), path.c_str(),
                 response.status().message().c_str());
    return 3;
  }
  std::cout << response->status << " " << response->body << "\n";
  return response->status / 100 == 2 ? 0 : 1;
}
