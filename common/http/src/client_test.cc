#include "agentroot/http/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.h"

namespace agentroot::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_F(HttpTest, ClientRefusesHostnameMismatch) {
  // A certificate valid from our CA, but for another name.
  auto wrong = pki_->IssueServer("DNS:verifier.other.example");
  ASSERT_TRUE(wrong.ok());
  ServerOptions options = TlsServerOptions();
  options.tcp->tls.certificate_chain_pem = wrong->certificate_pem;
  options.tcp->tls.private_key_pem = wrong->private_key_pem.Clone();
  std::atomic<int> calls{0};
  auto server = StartServer(std::move(options), [&](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [&](const Request&) {
                   calls++;
                   return TextResponse("ok");
                 }).ok());
  });

  auto by_name = MakeClient(TlsClientOptions(server->port(), nullptr, "localhost"));
  auto r1 = by_name->Get("/");
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), common::StatusCode::kUnauthenticated);
  EXPECT_NE(r1.status().message().find("hostname mismatch"), std::string::npos)
      << r1.status().ToString();

  auto by_ip = MakeClient(TlsClientOptions(server->port(), nullptr, "127.0.0.1"));
  auto r2 = by_ip->Get("/");
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("IP address mismatch"), std::string::npos)
      << r2.status().ToString();
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(HttpTest, ClientVerifiesNamesThatMatch) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request& r) {
                   return TextResponse(std::string(r.Header("Host").value_or("")));
                 }).ok());
  });
  auto by_name = MakeClient(TlsClientOptions(server->port(), nullptr, "localhost"));
  auto r = by_name->Get("/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "localhost:" + std::to_string(server->port()));
}

TEST_F(HttpTest, ClientRefusesUntrustedServer) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer&) {});
  auto other = ht::TestPki::Create("not the verifier's CA");
  ASSERT_TRUE(other.ok());
  ClientOptions options = TlsClientOptions(server->port());
  options.ca_pem = (*other)->ca_certificate_pem();
  auto r = MakeClient(std::move(options))->Get("/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string::npos)
      << r.status().ToString();
}

TEST_F(HttpTest, ClientConnectionRefused) {
  std::uint16_t port;
  {
    auto server = StartServer(TlsServerOptions(), [](HttpServer&) {});
    port = server->port();
  }
  auto r = MakeClient(TlsClientOptions(port))->Get("/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("refused"), std::string::npos) << r.status().ToString();

  ClientOptions unix_options;
  unix_options.unix_socket_path = "/nonexistent/agentroot.sock";
  auto unix_client = HttpClient::Create(std::move(unix_options));
  ASSERT_TRUE(unix_client.ok());
  auto r2 = (*unix_client)->Get("/");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), common::StatusCode::kUnavailable);
}

TEST_F(HttpTest, ClientTimesOut) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/slow", [](const Request&) {
                   std::this_thread::sleep_for(1500ms);
                   return TextResponse("late");
                 }).ok());
    ASSERT_TRUE(s.Handle("GET", "/fast", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  ClientOptions options = TlsClientOptions(server->port());
  options.request_timeout = 300ms;
  auto client = MakeClient(std::move(options));
  auto t0 = Clock::now();
  auto r = client->Get("/slow");
  auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kDeadlineExceeded) << r.status().ToString();
  EXPECT_LT(elapsed, 1s);
  // The client recovers on a fresh connection.
  auto ok = client->Get("/fast");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->body, "ok");
}

TEST_F(HttpTest, ClientHandshakeTimeoutAgainstSilentPeer) {
  // A listening socket that never speaks TLS: the TCP connect succeeds
  // (backlog) and the handshake must time out.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ClientOptions options = TlsClientOptions(ntohs(addr.sin_port));
  options.connect_timeout = 300ms;
  auto t0 = Clock::now();
  auto r = MakeClient(std::move(options))->Get("/");
  EXPECT_LT(Clock::now() - t0, 2s);
  close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kDeadlineExceeded) << r.status().ToString();
}

TEST_F(HttpTest, ClientResponseLimits) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/big", [](const Request&) {
                   return TextResponse(std::string(2 * 1024 * 1024, 'b'));
                 }).ok());
  });
  ClientOptions options = TlsClientOptions(server->port());
  options.max_response_body_bytes = 1024 * 1024;
  auto r = MakeClient(std::move(options))->Get("/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kResourceExhausted);
}

TEST_F(HttpTest, ClientRejectsBadInput) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer&) {});
  auto client = MakeClient(TlsClientOptions(server->port()));
  ClientRequest injected;
  injected.target = "/";
  injected.headers.emplace("Authorization", "DPoP secret-token\r\nX-Evil: 1");
  auto r = client->Send(injected);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::StatusCode::kInvalidArgument);
  // The error names the field, never its value.
  EXPECT_EQ(r.status().message().find("secret-token"), std::string::npos);

  ClientRequest bad_target;
  bad_target.target = "/a b";
  EXPECT_FALSE(client->Send(bad_target).ok());
  ClientRequest absolute;
  absolute.target = "http://x/";
  EXPECT_FALSE(client->Send(absolute).ok());

  for (const char* url : {"http://127.0.0.1:1", "https://", "https://host/path", "https://h:0",
                          "https://h:70000", "https://u@h", "https://[::1"}) {
    ClientOptions options = TlsClientOptions(1);
    options.base_url = url;
    EXPECT_FALSE(HttpClient::Create(std::move(options)).ok()) << url;
  }
  ClientOptions no_ca = TlsClientOptions(1);
  no_ca.ca_pem.clear();
  EXPECT_FALSE(HttpClient::Create(std::move(no_ca)).ok());
}

TEST_F(HttpTest, ClientOverIpv6Loopback) {
  ServerOptions options = TlsServerOptions();
  options.tcp->address = "::1";
  // Skip only when the machine itself has no ::1 (checked independently of
  // the server); any other failure to listen on ::1 is a failure.
  {
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    bool has_ipv6 = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (fd >= 0) ::close(fd);
    if (!has_ipv6) GTEST_SKIP() << "this machine has no IPv6 loopback (::1): cannot bind a plain socket to it";
  }
  auto created = HttpServer::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto server = std::move(created).value();
  ASSERT_TRUE(server->Handle("GET", "/", [](const Request& r) {
                       return TextResponse(r.peer.remote_address);
                     }).ok());
  ASSERT_TRUE(server->Start().ok());
  auto client = MakeClient(TlsClientOptions(server->port(), nullptr, "[::1]"));
  auto r = client->Get("/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body.substr(0, 6), "[::1]:");
}

TEST_F(HttpTest, ClientIsThreadSafe) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("POST", "/echo", [](const Request& r) { return TextResponse(r.body); }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::string body = std::to_string(t) + ":" + std::to_string(i);
        auto r = client->Post("/echo", body);
        if (r.ok() && r->body == body) good++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 80);
  EXPECT_EQ(client->connections_opened(), 1u);
}

}  // namespace
}  // namespace agentroot::http
