// Clock skew between real processes (THREATS.md #7): the resource server and
// the verifier run with their clocks shifted by libfaketime (LD_PRELOAD;
// monotonic clocks left alone so timeouts behave), while tokens and DPoP
// proofs are made on this process's true clock. Outside the configured
// leeway everything time-bound is refused; inside it, accepted.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agentroot/attestation/dpop.h"
#include "agentroot/common/jwt.h"
#include "agentroot/common/random.h"
#include "agentroot/common/signer.h"
#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/common/testing/test_logs.h"
#include "agentroot/simulators/testing/child_process.h"
#include "verifier_process.h"

extern char** environ;

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using common::Json;

constexpr char kFaketime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
constexpr char kIssuer[] = "https://verifier.test";
constexpr char kAudience[] = "https://crm.example";
constexpr char kAgent[] = "spiffe://example.org/agent/sales-bot";

std::vector<std::pair<std::string, std::string>> SkewedClock(int seconds) {
  return {{"LD_PRELOAD", kFaketime},
          {"FAKETIME", (seconds >= 0 ? "+" : "") + std::to_string(seconds) + "s"},
          {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
}

void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

std::string Challenge(const http::Response& r) {
  return std::string(http::FindHeader(r.headers, "WWW-Authenticate").value_or(""));
}

class ClockSkewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kFaketime)) << kFaketime << " is missing: scripts/install-deps.sh installs libfaketime";
    dir_ = fs::temp_directory_path() / ("agentroot-clock-skew-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    pki_ = std::move(http::testing::TestPki::Create("clock skew test CA")).value();
    WriteFile(dir_ / "ca.pem", pki_->ca_certificate_pem());
    auto server = std::move(pki_->IssueServer()).value();
    WriteFile(dir_ / "server.pem", server.certificate_pem);
    WriteFile(dir_ / "server.key", common::ToString(server.private_key_pem.Reveal()));
    issuer_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value();
    agent_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
  }

  void TearDown() override {
    for (pid_t pid : children_) simulators::testing::KillChild(pid);
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.path().extension() == ".log") common::testing::KeepLogForScan(entry.path(), "clock-skew");
    }
    if (jwks_server_) jwks_server_->Stop();
    fs::remove_all(dir_);
  }

  // The issuer's JWKS over HTTPS, in this process (true clock).
  std::string StartJwksServer() {
    http::ServerOptions options;
    options.tcp = std::move(pki_->LoopbackListener()).value();
    jwks_server_ = std::move(http::HttpServer::Create(std::move(options))).value();
    EXPECT_TRUE(jwks_server_->Handle("GET", "/.well-known/jwks.json", [this](const http::Request&) {
      Json jwk = issuer_->public_jwk().ToJson();
      jwk["alg"] = "ES256";
      return http::JsonResponse(200, {{"keys", Json::array({jwk})}});
    }).ok());
    EXPECT_TRUE(jwks_server_->Start().ok());
    return "https://127.0.0.1:" + std::to_string(jwks_server_->port());
  }

  // agentroot-resource-demo with its clock shifted by `skew` seconds; its
  // port once it serves.
  int StartResourceServer(int skew, const std::string& jwks_origin) {
    const fs::path ready = dir_ / ("ready-" + std::to_string(skew));
    const fs::path log = dir_ / ("resource-" + std::to_string(skew) + ".log");
    // The JWKS comes from --issuer's origin; the tokens' iss is checked
    // against the same value.
    issuer_url_ = jwks_origin;
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
    for (const auto& [name, value] : SkewedClock(skew)) env.push_back(name + "=" + value);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    auto pid = simulators::testing::SpawnChild(
        AGENTROOT_RESOURCE_DEMO_BINARY,
        {AGENTROOT_RESOURCE_DEMO_BINARY, "--listen", "127.0.0.1:0", "--ready-file", ready.string(),
         "--tls-certificate", (dir_ / "server.pem").string(), "--tls-private-key", (dir_ / "server.key").string(),
         "--issuer", jwks_origin, "--verifier-ca", (dir_ / "ca.pem").string(), "--audience", kAudience,
         "--public-url", kAudience},
        env, log_fd);
    ::close(log_fd);
    EXPECT_TRUE(pid.ok()) << pid.status().ToString();
    if (!pid.ok()) return 0;
    children_.push_back(*pid);
    for (int i = 0; i < 300; ++i) {
      std::ifstream in(ready);
      int port = 0;
      if (in >> port && port > 0) return port;
      if (auto how = simulators::testing::ChildExitedHow(*pid)) {
        ADD_FAILURE() << "resource demo " << *how << ": " << simulators::testing::FileTail(log);
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "resource demo did not start: " << simulators::testing::FileTail(log);
    return 0;
  }

  std::string Token() {
    const int64_t now = common::Clock::System().NowUnixSeconds();
    Json claims = {{"iss", issuer_url_}, {"aud", kAudience}, {"sub", kAgent}, {"client_id", kAgent},
                   {"jti", common::HexEncode(*common::RandomBytes(16))}, {"iat", now}, {"exp", now + 300},
                   {"scope", "crm.read"}, {"cnf", {{"jkt", agent_->public_jwk().Thumbprint()}}}};
    return std::move(common::SignJwt(claims, *issuer_, "at+jwt")).value();
  }

  http::Response GetAccounts(int port) {
    http::ClientOptions options;
    options.base_url = "https://127.0.0.1:" + std::to_string(port);
    options.ca_pem = pki_->ca_certificate_pem();
    auto client = std::move(http::HttpClient::Create(std::move(options))).value();
    const std::string token = Token();
    http::ClientRequest request;
    request.target = "/v1/accounts";
    request.headers.emplace("Authorization", "DPoP " + token);
    request.headers.emplace(
        "DPoP", *attestation::CreateDpopProof(*agent_, "GET", std::string(kAudience) + "/v1/accounts",
                                              common::Clock::System().NowUnixSeconds(), token));
    return std::move(client->Send(request)).value();
  }

  fs::path dir_;
  std::unique_ptr<http::testing::TestPki> pki_;
  std::unique_ptr<common::OpenSslSigner> issuer_, agent_;
  std::unique_ptr<http::HttpServer> jwks_server_;
  std::string issuer_url_;
  std::vector<pid_t> children_;
};

TEST_F(ClockSkewTest, AResourceServerWhoseClockIsOffRefusesOutsideTheLeewayOnly) {
  const std::string jwks = StartJwksServer();
  // 3 s off: inside the token leeway (30 s) and the proof window (iat from
  // 60 s ago to 5 s ahead).
  for (int skew : {-3, 3}) {
    const int port = StartResourceServer(skew, jwks);
    ASSERT_NE(port, 0);
    auto r = GetAccounts(port);
    EXPECT_EQ(r.status, 200) << "skew " << skew << ": " << Challenge(r);
  }
  // Ten minutes ahead: the five-minute token has expired and the proof is
  // too old.
  int port = StartResourceServer(600, jwks);
  ASSERT_NE(port, 0);
  auto r = GetAccounts(port);
  EXPECT_EQ(r.status, 401);
  const std::string ahead = Challenge(r);
  EXPECT_TRUE(ahead.find("expired") != std::string::npos || ahead.find("too old") != std::string::npos) << ahead;
  // Ten minutes behind: token and proof were made in its future.
  port = StartResourceServer(-600, jwks);
  ASSERT_NE(port, 0);
  r = GetAccounts(port);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("future"), std::string::npos) << Challenge(r);
}

TEST_F(ClockSkewTest, TheVerifierChecksProofTimesOnItsOwnClock) {
  const fs::path toml = dir_ / "verifier.toml";
  WriteFile(dir_ / "roots.pem", pki_->ca_certificate_pem());  // any PEM: no host enrolls here
  WriteFile(toml, "[server]\nlisten = \"127.0.0.1:0\"\ntls_certificate = \"" + (dir_ / "server.pem").string() +
                      "\"\ntls_private_key = \"" + (dir_ / "server.key").string() +
                      "\"\nthreads = 1\n[verifier]\nissuer = \"" + kIssuer +
                      "\"\ntrust_domain = \"example.org\"\nmanufacturer_roots = \"" + (dir_ / "roots.pem").string() +
                      "\"\n[store]\nuri = \"sqlite:" + (dir_ / "verifier.db").string() +
                      "\"\n[issuer_key]\nbackend = \"file\"\ndir = \"" + (dir_ / "issuer").string() +
                      "\"\nkey_id = \"issuer-1\"\n");
  // A token request whose DPoP proof is made now; its subject token is junk,
  // so a proof the verifier accepts is followed by invalid_grant.
  auto token_request = [&](int skew) {
    e2e::VerifierProcessOptions options;
    options.config = toml;
    options.log = dir_ / ("verifier" + std::to_string(skew) + ".log");
    options.args = {"--dev"};
    options.env = SkewedClock(skew);
    options.ca_pem = pki_->ca_certificate_pem();
    auto verifier = e2e::VerifierProcess::Start(std::move(options));
    EXPECT_TRUE(verifier.ok()) << verifier.status().ToString();
    if (!verifier.ok()) return Json();
    http::ClientOptions client_options;
    client_options.base_url = (*verifier)->base_url();
    client_options.ca_pem = pki_->ca_certificate_pem();
    auto client = std::move(http::HttpClient::Create(std::move(client_options))).value();
    http::ClientRequest request;
    request.method = "POST";
    request.target = "/oauth/token";
    request.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
    request.headers.emplace("DPoP", *attestation::CreateDpopProof(*agent_, "POST", std::string(kIssuer) + "/oauth/token",
                                                                  common::Clock::System().NowUnixSeconds()));
    request.body =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
        "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
        "&subject_token=not-an-ear&scope=crm.read&audience=https%3A%2F%2Fcrm.example";
    auto response = client->Send(request);
    EXPECT_TRUE(response.ok());
    EXPECT_EQ((*verifier)->Stop(), 0) << (*verifier)->Log();
    return response.ok() ? Json::parse(response->body, nullptr, false) : Json();
  };
  for (int skew : {-3, 3}) {
    Json answer = token_request(skew);
    EXPECT_EQ(answer.value("error", ""), "invalid_grant") << "skew " << skew << ": " << answer.dump();
  }
  // A verifier 10 s slow already sees proofs from its future: the proof
  // window allows 5 s ahead, less than the 30 s token leeway.
  Json slow = token_request(-10);
  EXPECT_EQ(slow.value("error", ""), "invalid_dpop_proof") << slow.dump();
  Json ahead = token_request(600);
  EXPECT_EQ(ahead.value("error", ""), "invalid_dpop_proof") << ahead.dump();
  EXPECT_NE(ahead.value("error_description", "").find("too old"), std::string::npos) << ahead.dump();
  Json behind = token_request(-600);
  EXPECT_EQ(behind.value("error", ""), "invalid_dpop_proof") << behind.dump();
  EXPECT_NE(behind.value("error_description", "").find("future"), std::string::npos) << behind.dump();
}

}  // namespace
}  // namespace agentroot
