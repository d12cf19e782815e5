// Shared fixtures for the HTTP layer's tests: a fresh PKI per test and
// helpers to build TLS servers and clients on loopback.
#ifndef AGENTROOT_HTTP_SRC_TEST_UTIL_H_
#define AGENTROOT_HTTP_SRC_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/raw_connection.h"
#include "agentroot/http/testing/test_pki.h"

namespace agentroot::http {

namespace ht = ::agentroot::http::testing;

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = ht::TestPki::Create("agentroot test CA");
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::move(pki).value();
    auto server = pki_->IssueServer();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_cred_ = std::move(server).value();
  }

  ServerOptions TlsServerOptions(ClientAuth auth = ClientAuth::kNone) {
    ServerOptions options;
    options.tcp.emplace();
    options.tcp->address = "127.0.0.1";
    options.tcp->tls.certificate_chain_pem = server_cred_.certificate_pem;
    options.tcp->tls.private_key_pem = server_cred_.private_key_pem.Clone();
    options.tcp->tls.client_auth = auth;
    if (auth != ClientAuth::kNone) options.tcp->tls.client_ca_pem = pki_->ca_certificate_pem();
    options.io_threads = 2;
    options.worker_threads = 2;
    return options;
  }

  // Creates, routes (through `routes`) and starts a server; fails the test
  // on error.
  std::unique_ptr<HttpServer> StartServer(ServerOptions options,
                                          const std::function<void(HttpServer&)>& routes) {
    auto server = HttpServer::Create(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (!server.ok()) return nullptr;
    routes(**server);
    common::Status started = (*server)->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    return std::move(server).value();
  }

  ClientOptions TlsClientOptions(std::uint16_t port, const ht::TestCredential* client = nullptr,
                                 const std::string& host = "127.0.0.1") {
    ClientOptions options;
    options.base_url = "https://" + host + ":" + std::to_string(port);
    options.ca_pem = pki_->ca_certificate_pem();
    options.connect_timeout = std::chrono::seconds(5);
    options.request_timeout = std::chrono::seconds(5);
    if (client != nullptr) {
      options.client_certificate_chain_pem = client->certificate_pem;
      options.client_private_key_pem = client->private_key_pem.Clone();
    }
    return options;
  }

  std::unique_ptr<HttpClient> MakeClient(ClientOptions options) {
    auto client = HttpClient::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  std::unique_ptr<ht::TestPki> pki_;
  ht::TestCredential server_cred_;
};

inline Response TextResponse(std::string body) {
  Response r;
  r.headers.emplace("Content-Type", "text/plain");
  r.body = std::move(body);
  return r;
}

}  // namespace agentroot::http

#endif  // AGENTROOT_HTTP_SRC_TEST_UTIL_H_
