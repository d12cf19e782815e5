// agentroot-token: credentials for an agent in any language, from the
// agentroot-hostd on this host (docs/hostd.md). The calling process is the
// agent: hostd identifies it from the socket's peer credentials.
//
// Output goes to stdout only (it is for the agent); errors are one line on
// stderr. Exit codes: 0 done; 1 refused by hostd or the verifier (unknown
// agent, measurement or token refused); 2 bad usage or input; 3 unavailable
// for now (hostd not running, host pending approval, verifier unreachable,
// TPM busy: retry later); 4 anything else.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agentroot/common/json.h"
#include "agentroot/host/client.h"

namespace {

using agentroot::common::Json;
using agentroot::common::StatusCode;

int Fail(const agentroot::common::Status& status, const agentroot::host::Client* client = nullptr) {
  std::string line = "agentroot-token: " + status.message();
  if (client != nullptr && client->retry_after_seconds() > 0) {
    line += " (retry after " + std::to_string(client->retry_after_seconds()) + " s)";
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  switch (status.code()) {
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated:
      return 1;
    case StatusCode::kInvalidArgument:
    case StatusCode::kResourceExhausted:
      return 2;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return 3;
    default:
      return 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "agentroot-token: a short-lived, TPM-bound token and DPoP proofs for this agent, from agentroot-hostd.\n"
      "\n"
      "Examples:\n"
      "  agentroot-token headers --audience https://crm.example --scope crm.read \\\n"
      "      --method GET --url https://crm.example/v1/accounts | curl -H @- https://crm.example/v1/accounts\n"
      "  agentroot-token token --audience https://crm.example --scope 'crm.read crm.write'\n"
      "  agentroot-token proof --method POST --url https://crm.example/v1/contacts --token-file tok.txt\n"
      "  agentroot-token status\n"
      "\n"
      "Exit codes: 0 done, 1 refused, 2 bad usage, 3 unavailable for now (retry), 4 other errors."};
  app.require_subcommand(1);
  std::string socket;
  app.add_option("--socket", socket, std::string("hostd's socket (default $") + agentroot::host::kSocketEnv + ", else " +
                                         agentroot::host::kDefaultSocketPath + ")");

  std::string audience, scope, method, url, format = "lines", token_file;
  CLI::App* headers = app.add_subcommand("headers", "Print the Authorization and DPoP headers for one request");
  headers->add_option("--audience", audience, "The API the token is for (its aud), e.g. https://crm.example")->required();
  headers->add_option("--scope", scope, "Space-separated scopes, e.g. 'crm.read'")->required();
  headers->add_option("--method", method, "The request's HTTP method")->required();
  headers->add_option("--url", url, "The request's URL (scheme, host, path; the query is not signed)")->required();
  headers->add_option("--format", format, "lines: 'Name: value' lines (for curl -H @-); json")
      ->check(CLI::IsMember({"lines", "json"}))
      ->capture_default_str();

  CLI::App* token = app.add_subcommand("token", "Print the token JSON (access_token, expires_at, jkt, ...)");
  token->add_option("--audience", audience, "The API the token is for (its aud)")->required();
  token->add_option("--scope", scope, "Space-separated scopes")->required();

  CLI::App* proof = app.add_subcommand("proof", "Print a DPoP proof for one request");
  proof->add_option("--method", method, "The request's HTTP method")->required();
  proof->add_option("--url", url, "The request's URL")->required();
  proof->add_option("--token-file", token_file, "File holding the access token the proof accompanies ('-': stdin)");

  app.add_subcommand("status", "Print hostd's status: enrollment, verifier, TPM");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  agentroot::host::ClientOptions options;
  options.socket_path = socket;
  auto client = agentroot::host::Client::Create(std::move(options));
  if (!client.ok()) return Fail(client.status());
  agentroot::host::Client& c = **client;

  if (*headers) {
    auto h = c.Headers(audience, scope, method, url);
    if (!h.ok()) return Fail(h.status(), &c);
    if (format == "json") {
      std::cout << Json{{"Authorization", h->authorization}, {"DPoP", h->dpop}, {"expires_at", h->expires_at}}.dump()
                << "\n";
    } else {
      std::cout << "Authorization: " << h->authorization << "\nDPoP: " << h->dpop << "\n";
    }
  } else if (*token) {
    auto t = c.Token(audience, scope);
    if (!t.ok()) return Fail(t.status(), &c);
    std::cout << Json{{"access_token", t->access_token}, {"token_type", t->token_type},
                      {"expires_at", t->expires_at},     {"expires_in", t->expires_in},
                      {"scope", t->scope},               {"audience", t->audience},
                      {"agent_id", t->agent_id},         {"jkt", t->jkt},
                      {"proof_mode", t->proof_mode}}
                     .dump()
              << "\n";
  } else if (*proof) {
    std::optional<std::string> access_token;
    if (!token_file.empty()) {
      std::stringstream buf;
      if (token_file == "-") {
        buf << std::cin.rdbuf();
      } else {
        std::ifstream in(token_file);
        if (!in) return Fail(agentroot::common::InvalidArgumentError("invalid_input: cannot read " + token_file));
        buf << in.rdbuf();
      }
      access_token = buf.str();
      while (!access_token->empty() && std::isspace(static_cast<unsigned char>(access_token->back()))) {
        access_token->pop_back();
      }
      if (access_token->empty()) return Fail(agentroot::common::InvalidArgumentError("invalid_input: the token file is empty"));
    }
    auto p = c.Proof(method, url, access_token);
    if (!p.ok()) return Fail(p.status(), &c);
    std::cout << *p << "\n";
  } else {
    auto s = c.Status();
    if (!s.ok()) return Fail(s.status(), &c);
    std::cout << Json{{"host_id", s->host_id}, {"enrollment", s->enrollment}, {"detail", s->detail},
                      {"verifier", s->verifier}, {"tpm", s->tpm}}
                     .dump()
              << "\n";
  }
  return 0;
}
