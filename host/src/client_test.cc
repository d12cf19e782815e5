// host::Client and agentroot-token against a stand-in hostd on a real Unix
// socket that answers as docs/hostd.md specifies. hostd itself is tested
// end to end elsewhere; here: requests as the contract says, answers parsed
// strictly, refusals mapped to status codes, problem codes and exit codes,
// and the caller seen by its peer credentials.
#include "agentroot/host/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "agentroot/common/json.h"
#include "agentroot/http/server.h"
#include "agentroot/simulators/testing/run_command.h"

namespace agentroot::host {
namespace {

namespace fs = std::filesystem;
using common::Json;
using simulators::testing::RunCommand;

constexpr char kToken[] = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.c2ln";
constexpr char kProof[] = "eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJodG0iOiJHRVQifQ.cHJvb2Y";

http::Response Problem(int status, std::string_view code, std::string_view detail) {
  return http::ProblemResponse(status, "urn:agentroot:problem:hostd:" + std::string(code), "Refused", detail);
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("agentroot-client-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    socket_ = (dir_ / "hostd.sock").string();
    http::ServerOptions options;
    http::UnixListenOptions unix_socket;
    unix_socket.path = socket_;
    options.unix_socket = unix_socket;
    options.worker_threads = 2;
    server_ = std::move(http::HttpServer::Create(std::move(options))).value();
    auto record = [this](const http::Request& r) {
      last_pid_ = r.peer.unix_peer ? r.peer.unix_peer->pid : -1;
      last_body_ = r.body;
    };
    ASSERT_TRUE(server_->Handle("POST", "/v1/token", [this, record](const http::Request& r) {
      record(r);
      Json body = Json::parse(r.body);
      if (body["audience"] == "https://unknown.example") return Problem(403, "unknown_agent", "no manifest matches");
      if (body["audience"] == "https://pending.example") {
        auto response = Problem(503, "host_pending", "the host awaits approval");
        response.headers.emplace("Retry-After", "30");
        return response;
      }
      if (body["audience"] == "https://broken.example") return http::JsonResponse(200, {{"access_token", 5}});
      return http::JsonResponse(200, {{"access_token", kToken},
                                      {"token_type", "DPoP"},
                                      {"expires_at", 1900000000},
                                      {"expires_in", 300},
                                      {"scope", body["scope"]},
                                      {"audience", body["audience"]},
                                      {"agent_id", "spiffe://example.org/agent/sales-bot"},
                                      {"jkt", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
                                      {"proof_mode", "tpm"}});
    }).ok());
    ASSERT_TRUE(server_->Handle("POST", "/v1/proof", [this, record](const http::Request& r) {
      record(r);
      return http::JsonResponse(200, {{"dpop", kProof}});
    }).ok());
    ASSERT_TRUE(server_->Handle("POST", "/v1/headers", [this, record](const http::Request& r) {
      record(r);
      Json body = Json::parse(r.body);
      if (body["method"] == "BREW") return Problem(400, "invalid_input", "method must be an HTTP token");
      if (body["scope"] == "crm.export") return Problem(403, "token_refused", "invalid_scope: crm.export not allowed");
      return http::JsonResponse(200, {{"authorization", std::string("DPoP ") + kToken},
                                      {"dpop", kProof},
                                      {"expires_at", 1900000000}});
    }).ok());
    ASSERT_TRUE(server_->Handle("GET", "/v1/status", [this, record](const http::Request& r) {
      record(r);
      return http::JsonResponse(200, {{"host_id", "h-1"}, {"enrollment", "approved"}, {"detail", ""},
                                      {"verifier", "reachable"}, {"tpm", "ok"}});
    }).ok());
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    server_->Stop();
    fs::remove_all(dir_);
  }

  std::unique_ptr<Client> NewClient() {
    ClientOptions options;
    options.socket_path = socket_;
    return std::move(Client::Create(std::move(options))).value();
  }

  simulators::testing::CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {AGENTROOT_TOKEN_BINARY, "--socket", socket_});
    return std::move(RunCommand(args)).value();
  }

  fs::path dir_;
  std::string socket_;
  std::unique_ptr<http::HttpServer> server_;
  std::atomic<int> last_pid_{0};
  std::string last_body_;
};

TEST_F(ClientTest, TokenProofHeadersAndStatusFollowTheContract) {
  auto client = NewClient();
  auto token = client->Token("https://crm.example", "crm.read");
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->access_token, kToken);
  EXPECT_EQ(token->expires_in, 300);
  EXPECT_EQ(token->scope, "crm.read");
  EXPECT_EQ(token->proof_mode, "tpm");
  EXPECT_EQ(last_pid_.load(), ::getpid()) << "hostd sees the calling process";
  EXPECT_EQ(Json::parse(last_body_), (Json{{"audience", "https://crm.example"}, {"scope", "crm.read"}}));

  auto proof = client->Proof("GET", "https://crm.example/v1/accounts", std::string_view(kToken));
  ASSERT_TRUE(proof.ok());
  EXPECT_EQ(*proof, kProof);
  EXPECT_EQ(Json::parse(last_body_)["access_token"], kToken);
  ASSERT_TRUE(client->Proof("GET", "https://crm.example/v1/accounts").ok());
  EXPECT_FALSE(Json::parse(last_body_).contains("access_token"));

  auto headers = client->Headers("https://crm.example", "crm.read", "GET", "https://crm.example/v1/accounts");
  ASSERT_TRUE(headers.ok());
  EXPECT_EQ(headers->authorization, std::string("DPoP ") + kToken);
  auto status = client->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->enrollment, "approved");
}

TEST_F(ClientTest, RefusalsKeepTheirProblemCodeAndStatusCode) {
  auto client = NewClient();
  auto unknown = client->Token("https://unknown.example", "x");
  EXPECT_EQ(unknown.status().code(), common::StatusCode::kPermissionDenied);
  EXPECT_EQ(ProblemCodeOf(unknown.status()), "unknown_agent");
  auto pending = client->Token("https://pending.example", "x");
  EXPECT_EQ(pending.status().code(), common::StatusCode::kUnavailable);
  EXPECT_EQ(ProblemCodeOf(pending.status()), "host_pending");
  EXPECT_EQ(client->retry_after_seconds(), 30);
  auto bad = client->Headers("https://crm.example", "crm.read", "BREW", "https://crm.example/");
  EXPECT_EQ(bad.status().code(), common::StatusCode::kInvalidArgument);
  auto broken = client->Token("https://broken.example", "x");
  EXPECT_EQ(broken.status().code(), common::StatusCode::kInternal);
  EXPECT_EQ(ProblemCodeOf(broken.status()), "bad_response");
  EXPECT_TRUE(client->Token("https://crm.example", "crm.read").ok()) << "the connection survives refusals";
  EXPECT_EQ(client->retry_after_seconds(), 0);
}

TEST_F(ClientTest, AMissingSocketIsUnavailableWithAHint) {
  ClientOptions options;
  options.socket_path = (dir_ / "nope.sock").string();
  auto client = std::move(Client::Create(std::move(options))).value();
  auto status = client->Status();
  EXPECT_EQ(status.status().code(), common::StatusCode::kUnavailable);
  EXPECT_EQ(ProblemCodeOf(status.status()), "hostd_unreachable");
  EXPECT_NE(status.status().message().find("is agentroot-hostd running"), std::string::npos);
}

TEST_F(ClientTest, TheCliPrintsHeadersForCurlAndExitsWithTheDocumentedCodes) {
  auto r = Cli({"headers", "--audience", "https://crm.example", "--scope", "crm.read", "--method", "GET", "--url",
                "https://crm.example/v1/accounts"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, std::string("Authorization: DPoP ") + kToken + "\nDPoP: " + kProof + "\n");
  EXPECT_GT(last_pid_.load(), 0);
  EXPECT_NE(last_pid_.load(), ::getpid()) << "hostd sees the CLI process, not the test";

  r = Cli({"token", "--audience", "https://crm.example", "--scope", "crm.read"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(Json::parse(r.stdout_text)["access_token"], kToken);

  fs::path token_file = dir_ / "token.txt";
  { std::ofstream(token_file) << kToken << "\n"; }
  r = Cli({"proof", "--method", "POST", "--url", "https://crm.example/v1/contacts", "--token-file", token_file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, std::string(kProof) + "\n");
  EXPECT_EQ(Json::parse(last_body_)["access_token"], kToken) << "the trailing newline is not part of the token";

  r = Cli({"headers", "--audience", "https://crm.example", "--scope", "crm.export", "--method", "GET", "--url",
           "https://crm.example/v1/export"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stdout_text, "");
  EXPECT_NE(r.stderr_text.find("token_refused: invalid_scope"), std::string::npos) << r.stderr_text;
  r = Cli({"token", "--audience", "https://pending.example", "--scope", "x"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.stderr_text.find("retry after 30 s"), std::string::npos) << r.stderr_text;
  r = Cli({"token", "--audience", "https://crm.example"});
  EXPECT_EQ(r.exit_code, 2) << "a missing --scope is bad usage";
  r = Cli({"proof", "--method", "GET", "--url", "https://x", "--token-file", (dir_ / "missing").string()});
  EXPECT_EQ(r.exit_code, 2);
  r = std::move(RunCommand({AGENTROOT_TOKEN_BINARY, "--socket", (dir_ / "nope.sock").string(), "status"})).value();
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.stderr_text.find("hostd_unreachable"), std::string::npos);
  r = std::move(RunCommand({AGENTROOT_TOKEN_BINARY, "--help"})).value();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.stdout_text.find("curl -H @-"), std::string::npos);
}

}  // namespace
}  // namespace agentroot::host
