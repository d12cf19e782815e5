// The demo resource server over real HTTPS on loopback, with its JWKS fetched
// over HTTPS from a stand-in issuer: a token with the right proof is served;
// a stolen token without its key, a replayed or misdirected proof, a Bearer
// token or a missing scope are refused with the RFC 9449 / RFC 6750 answers.
#include "agentroot/simulators/resource_demo.h"

#include <gtest/gtest.h>

#include <mutex>

#include "agentroot/attestation/dpop.h"
#include "agentroot/common/jwt.h"
#include "agentroot/common/random.h"
#include "agentroot/common/signer.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"

namespace agentroot::simulators {
namespace {

using common::Json;

constexpr char kIssuer[] = "https://verifier.test";
constexpr char kAudience[] = "https://crm.example";
constexpr char kAgent[] = "spiffe://example.org/agent/sales-bot";

class ResourceDemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::move(http::testing::TestPki::Create("resource demo test CA")).value();
    issuer_key_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value();
    agent_key_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();
    thief_key_ = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256)).value();

    // The stand-in issuer serves its JWKS over HTTPS.
    jwks_server_ = StartServer([this](http::HttpServer& server) {
      return server.Handle("GET", "/.well-known/jwks.json", [this](const http::Request&) {
        ++jwks_requests_;
        Json jwk = issuer_key_->public_jwk().ToJson();
        jwk["alg"] = "ES256";
        jwk["use"] = "sig";
        return http::JsonResponse(200, {{"keys", Json::array({jwk})}});
      });
    });
    http::ClientOptions jwks_client;
    jwks_client.base_url = "https://127.0.0.1:" + std::to_string(jwks_server_->port());
    jwks_client.ca_pem = pki_->ca_certificate_pem();
    std::shared_ptr<http::HttpClient> client(std::move(http::HttpClient::Create(std::move(jwks_client))).value());
    auto jwks = std::make_shared<attestation::JwksCache>(
        [client]() -> common::Result<std::string> {
          AR_ASSIGN_OR_RETURN(auto response, client->Get("/.well-known/jwks.json"));
          return response.body;
        },
        common::Clock::System(), attestation::JwksCache::Options{});

    ResourceDemoOptions options;
    options.audience = kAudience;
    options.issuer = kIssuer;
    options.public_url = kAudience;  // clients address it as https://crm.example
    options.jwks = jwks;
    options.on_decision = [this](const Json& d) {
      std::lock_guard<std::mutex> lock(mu_);
      decisions_.push_back(d);
    };
    demo_ = std::move(ResourceDemo::Create(options, common::Clock::System())).value();
    server_ = StartServer([this](http::HttpServer& server) { return demo_->Register(server); });
    http::ClientOptions api;
    api.base_url = "https://127.0.0.1:" + std::to_string(server_->port());
    api.ca_pem = pki_->ca_certificate_pem();
    client_ = std::move(http::HttpClient::Create(std::move(api))).value();
  }

  std::unique_ptr<http::HttpServer> StartServer(const std::function<common::Status(http::HttpServer&)>& routes) {
    http::ServerOptions options;
    options.tcp = std::move(pki_->LoopbackListener()).value();
    auto server = std::move(http::HttpServer::Create(std::move(options))).value();
    EXPECT_TRUE(routes(*server).ok());
    EXPECT_TRUE(server->Start().ok());
    return server;
  }

  std::string Token(const std::string& scope, int64_t issued_ago = 0, int64_t lifetime = 300) {
    int64_t now = common::Clock::System().NowUnixSeconds() - issued_ago;
    Json claims = {{"iss", kIssuer},   {"aud", kAudience}, {"sub", kAgent},
                   {"client_id", kAgent}, {"jti", common::HexEncode(*common::RandomBytes(16))},
                   {"iat", now},       {"exp", now + lifetime}, {"scope", scope},
                   {"cnf", {{"jkt", agent_key_->public_jwk().Thumbprint()}}}};
    return std::move(common::SignJwt(claims, *issuer_key_, "at+jwt")).value();
  }

  std::string Proof(const common::Signer& key, std::string_view method, std::string_view path,
                    const std::string& token) {
    return std::move(attestation::CreateDpopProof(key, method, std::string(kAudience) + std::string(path),
                                                  common::Clock::System().NowUnixSeconds(), token))
        .value();
  }

  http::Response Call(std::string_view method, std::string_view path, const std::string& authorization,
                      const std::vector<std::string>& proofs, std::string body = "") {
    http::ClientRequest request;
    request.method = std::string(method);
    request.target = std::string(path);
    if (!authorization.empty()) request.headers.emplace("Authorization", authorization);
    for (const auto& p : proofs) request.headers.emplace("DPoP", p);
    if (!body.empty()) {
      request.headers.emplace("Content-Type", "application/json");
      request.body = std::move(body);
    }
    return std::move(client_->Send(request)).value();
  }

  static std::string Challenge(const http::Response& r) {
    return std::string(http::FindHeader(r.headers, "WWW-Authenticate").value_or(""));
  }

  std::unique_ptr<http::testing::TestPki> pki_;
  std::unique_ptr<common::OpenSslSigner> issuer_key_, agent_key_, thief_key_;
  std::unique_ptr<http::HttpServer> jwks_server_;
  std::unique_ptr<ResourceDemo> demo_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<http::HttpClient> client_;
  std::atomic<int> jwks_requests_{0};
  std::mutex mu_;
  std::vector<Json> decisions_;
};

TEST_F(ResourceDemoTest, ATokenWithItsProofReadsAccounts) {
  std::string token = Token("crm.read");
  auto r = Call("GET", "/v1/accounts", "DPoP " + token, {Proof(*agent_key_, "GET", "/v1/accounts", token)});
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["accounts"].size(), 3u);
  EXPECT_EQ(jwks_requests_.load(), 1);

  r = Call("GET", "/v1/accounts/acc-002", "DPoP " + token,
           {Proof(*agent_key_, "GET", "/v1/accounts/acc-002", token)});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["name"], "Contoso Health");
  EXPECT_EQ(demo_->counters().allowed, 2u);
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(decisions_.size(), 2u);
  EXPECT_EQ(decisions_[0]["sub"], kAgent);
  EXPECT_EQ(decisions_[0]["allowed"], true);
  EXPECT_EQ(decisions_[0]["jkt"], agent_key_->public_jwk().Thumbprint());
  for (const Json& d : decisions_) EXPECT_EQ(d.dump().find(token), std::string::npos) << "the token is logged";
}

TEST_F(ResourceDemoTest, AStolenTokenIsRefusedEveryWay) {
  std::string token = Token("crm.read");
  std::string good = Proof(*agent_key_, "GET", "/v1/accounts", token);
  ASSERT_EQ(Call("GET", "/v1/accounts", "DPoP " + token, {good}).status, 200);

  // No proof at all.
  auto r = Call("GET", "/v1/accounts", "DPoP " + token, {});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("error=\"invalid_token\""), std::string::npos) << Challenge(r);
  // A proof by the thief's own key.
  r = Call("GET", "/v1/accounts", "DPoP " + token, {Proof(*thief_key_, "GET", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("error=\"invalid_dpop_proof\""), std::string::npos) << Challenge(r);
  // The agent's proof, replayed.
  r = Call("GET", "/v1/accounts", "DPoP " + token, {good});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("invalid_dpop_proof"), std::string::npos);
  // A proof made for another endpoint or method.
  r = Call("GET", "/v1/contacts", "DPoP " + token, {Proof(*agent_key_, "GET", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  r = Call("GET", "/v1/accounts", "DPoP " + token, {Proof(*agent_key_, "POST", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  // The token presented as a bearer token.
  r = Call("GET", "/v1/accounts", "Bearer " + token, {Proof(*agent_key_, "GET", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  // Two proofs.
  r = Call("GET", "/v1/accounts", "DPoP " + token,
           {Proof(*agent_key_, "GET", "/v1/accounts", token), Proof(*agent_key_, "GET", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  // No token.
  r = Call("GET", "/v1/accounts", "", {});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("algs=\"ES256 PS256 RS256\""), std::string::npos);
  // A token from another issuer key (forged).
  auto forger = std::move(common::OpenSslSigner::Generate(common::JwsAlgorithm::kEs256, "issuer-1")).value();
  int64_t now = common::Clock::System().NowUnixSeconds();
  std::string forged = std::move(common::SignJwt({{"iss", kIssuer}, {"aud", kAudience}, {"sub", kAgent},
                                                  {"client_id", kAgent}, {"jti", "f"}, {"iat", now},
                                                  {"exp", now + 60}, {"scope", "crm.read"},
                                                  {"cnf", {{"jkt", agent_key_->public_jwk().Thumbprint()}}}},
                                                 *forger, "at+jwt"))
                           .value();
  r = Call("GET", "/v1/accounts", "DPoP " + forged, {Proof(*agent_key_, "GET", "/v1/accounts", forged)});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("invalid_token"), std::string::npos);
  EXPECT_EQ(demo_->counters().allowed, 1u);
  EXPECT_EQ(demo_->counters().refused, 9u);
}

TEST_F(ResourceDemoTest, EachEndpointEnforcesItsScope) {
  std::string reader = Token("crm.read");
  auto r = Call("GET", "/v1/export", "DPoP " + reader, {Proof(*agent_key_, "GET", "/v1/export", reader)});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(Challenge(r).find("error=\"insufficient_scope\""), std::string::npos) << Challenge(r);
  EXPECT_NE(Challenge(r).find("scope=\"crm.export\""), std::string::npos) << Challenge(r);
  r = Call("POST", "/v1/contacts", "DPoP " + reader, {Proof(*agent_key_, "POST", "/v1/contacts", reader)},
           R"({"name":"A","email":"a@x.example","account_id":"acc-001"})");
  EXPECT_EQ(r.status, 403);

  std::string writer = Token("crm.read crm.write crm.export");
  r = Call("POST", "/v1/contacts", "DPoP " + writer, {Proof(*agent_key_, "POST", "/v1/contacts", writer)},
           R"({"name":"Ola Nordmann","email":"ola@fabrikam.example","account_id":"acc-003"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Json::parse(r.body)["created_by"], kAgent);
  r = Call("GET", "/v1/export", "DPoP " + writer, {Proof(*agent_key_, "GET", "/v1/export", writer)});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body)["contacts"].size(), 3u);
}

TEST_F(ResourceDemoTest, BadInputFromAnAuthorizedAgentIsAClearError) {
  std::string writer = Token("crm.read crm.write");
  auto post = [&](std::string body) {
    return Call("POST", "/v1/contacts", "DPoP " + writer, {Proof(*agent_key_, "POST", "/v1/contacts", writer)},
                std::move(body));
  };
  EXPECT_EQ(post("{not json").status, 400);
  EXPECT_EQ(post(R"({"name":"A","email":"a@x.example"})").status, 400);
  EXPECT_EQ(post(R"({"name":"","email":"a@x.example","account_id":"acc-001"})").status, 400);
  EXPECT_EQ(post(R"({"name":"A","email":"a@x.example","account_id":"acc-999"})").status, 422);
  auto r = Call("GET", "/v1/accounts/acc-999", "DPoP " + writer,
                {Proof(*agent_key_, "GET", "/v1/accounts/acc-999", writer)});
  EXPECT_EQ(r.status, 404);
  r = Call("GET", "/v1/contacts", "DPoP " + writer, {Proof(*agent_key_, "GET", "/v1/contacts", writer)});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body)["contacts"].size(), 2u) << "a refused contact was stored";
}

TEST_F(ResourceDemoTest, AnExpiredTokenIsRefused) {
  std::string token = Token("crm.read", /*issued_ago=*/900);
  auto r = Call("GET", "/v1/accounts", "DPoP " + token, {Proof(*agent_key_, "GET", "/v1/accounts", token)});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Challenge(r).find("invalid_token"), std::string::npos);
}

TEST(ResourceDemoCreateTest, MissingSettingsAreRefused) {
  ResourceDemoOptions options;
  options.audience = kAudience;
  EXPECT_EQ(ResourceDemo::Create(options, common::Clock::System()).status().code(),
            common::StatusCode::kInvalidArgument);
  options.issuer = kIssuer;
  options.public_url = kAudience;
  EXPECT_EQ(ResourceDemo::Create(options, common::Clock::System()).status().code(),
            common::StatusCode::kInvalidArgument);  // no JWKS
}

}  // namespace
}  // namespace agentroot::simulators
