#include "agentroot/http/server.h"

#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "agentroot/common/json.h"
#include "test_util.h"

namespace agentroot::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string Get(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

common::Json BodyJson(const Response& r) {
  auto json = common::ParseJsonStrict(r.body);
  EXPECT_TRUE(json.ok()) << r.body;
  return json.ok() ? *json : common::Json();
}

// ---------------------------------------------------------------- routing

TEST_F(HttpTest, RoutesWithParamsOverTls) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/v1/agents/{id}", [](const Request& r) {
                   return JsonResponse(200, {{"id", r.PathParam("id")},
                                             {"query", r.query},
                                             {"tls", r.peer.tls ? r.peer.tls->version : ""}});
                 }).ok());
  });
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);
  auto client = MakeClient(TlsClientOptions(server->port()));

  auto ok = client->Get("/v1/agents/spiffe%3A%2F%2Fexample%2Fagent%2Fbot?x=1");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  common::Json body = BodyJson(*ok);
  EXPECT_EQ(body["id"], "spiffe://example/agent/bot");
  EXPECT_EQ(body["query"], "x=1");
  EXPECT_EQ(body["tls"], "TLSv1.3");
  EXPECT_EQ(FindHeader(ok->headers, "X-Content-Type-Options").value_or(""), "nosniff");

  auto missing = client->Get("/v1/nothing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(FindHeader(missing->headers, "Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(BodyJson(*missing)["type"], kProblemNotFound);
  EXPECT_EQ(BodyJson(*missing)["status"], 404);

  auto wrong_method = client->Post("/v1/agents/x", "{}");
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(FindHeader(wrong_method->headers, "Allow").value_or(""), "GET");

  auto bad_escape = client->Get("/v1/agents/%zz");
  ASSERT_TRUE(bad_escape.ok());
  EXPECT_EQ(bad_escape->status, 400);
}

TEST_F(HttpTest, HandleAfterStartFails) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer&) {});
  ASSERT_NE(server, nullptr);
  auto late = server->Handle("GET", "/x", [](const Request&) { return Response(); });
  EXPECT_EQ(late.code(), common::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server->Start().code(), common::StatusCode::kFailedPrecondition);
}

TEST_F(HttpTest, KeepAliveReusesOneConnection) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("POST", "/echo", [](const Request& r) { return TextResponse(r.body); }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  for (int i = 0; i < 5; ++i) {
    auto r = client->Post("/echo", "n" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "n" + std::to_string(i));
  }
  EXPECT_EQ(client->connections_opened(), 1u);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(server->stats().requests, 5u);
}

TEST_F(HttpTest, MaxRequestsPerConnection) {
  ServerOptions options = TlsServerOptions();
  options.limits.max_requests_per_connection = 2;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  auto first = client->Get("/");
  auto second = client->Get("/");
  auto third = client->Get("/");
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_FALSE(FindHeader(first->headers, "Connection").has_value());
  EXPECT_EQ(FindHeader(second->headers, "Connection").value_or(""), "close");
  EXPECT_EQ(client->connections_opened(), 2u);
}

// ---------------------------------------------------------------- TLS policy

TEST_F(HttpTest, NegotiatesTls13AndTls12) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/tls", [](const Request& r) {
                   return TextResponse(r.peer.tls->version + " " + r.peer.tls->cipher);
                 }).ok());
  });
  auto v13 = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
  ASSERT_TRUE(v13.ok()) << v13.status().ToString();
  EXPECT_EQ((*v13)->tls_version(), "TLSv1.3");

  ht::RawTlsOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  auto v12 = ht::RawConnection::ConnectTls("127.0.0.1", server->port(), tls12);
  ASSERT_TRUE(v12.ok()) << v12.status().ToString();
  EXPECT_EQ((*v12)->tls_version(), "TLSv1.2");
  ASSERT_TRUE((*v12)->Send(Get("/tls")).ok());
  auto response = (*v12)->ReadResponse(5s);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(ht::BodyOf(*response).substr(0, 8), "TLSv1.2 ");
  // ECDHE with an AEAD cipher.
  EXPECT_NE(ht::BodyOf(*response).find("ECDHE-ECDSA-"), std::string::npos) << *response;
  EXPECT_NE(ht::BodyOf(*response).find("GCM"), std::string::npos) << *response;
}

TEST_F(HttpTest, RefusesTls11AndNonAeadTls12Suites) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer&) {});
  ht::RawTlsOptions tls11;
  tls11.min_version = TLS1_1_VERSION;
  tls11.max_version = TLS1_1_VERSION;
  tls11.cipher_list = "DEFAULT@SECLEVEL=0";
  auto old = ht::RawConnection::ConnectTls("127.0.0.1", server->port(), tls11);
  ASSERT_FALSE(old.ok());
  // The server refused it (not our client declining to offer it).
  EXPECT_NE(old.status().message().find("protocol version"), std::string::npos)
      << old.status().ToString();

  for (const char* suite : {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA",
                            "AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"}) {
    ht::RawTlsOptions weak;
    weak.max_version = TLS1_2_VERSION;
    weak.cipher_list = std::string(suite) + ":@SECLEVEL=0";
    auto refused = ht::RawConnection::ConnectTls("127.0.0.1", server->port(), weak);
    EXPECT_FALSE(refused.ok()) << suite;
  }
  // Control: the same client with an allowed suite gets through.
  ht::RawTlsOptions good;
  good.max_version = TLS1_2_VERSION;
  good.cipher_list = "ECDHE-ECDSA-CHACHA20-POLY1305";
  EXPECT_TRUE(ht::RawConnection::ConnectTls("127.0.0.1", server->port(), good).ok());
  EXPECT_GE(server->stats().tls_handshake_failures, 5u);
}

TEST_F(HttpTest, RefusesClientRenegotiation) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  ht::RawTlsOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port(), tls12, 2s);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Send(Get("/")).ok());
  ASSERT_TRUE((*conn)->ReadResponse(5s).ok());
  EXPECT_FALSE((*conn)->Renegotiate());
}

// ---------------------------------------------------------------- mutual TLS

TEST_F(HttpTest, RequiredClientCertificate) {
  std::atomic<int> calls{0};
  common::Bytes seen_der;
  bool seen_verified = false;
  std::mutex mu;
  auto server = StartServer(TlsServerOptions(ClientAuth::kRequired), [&](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/whoami", [&](const Request& r) {
                   calls++;
                   std::lock_guard<std::mutex> lock(mu);
                   seen_der = r.peer.tls->client_certificate_der;
                   seen_verified = r.peer.tls->client_certificate_verified;
                   return TextResponse("hello");
                 }).ok());
  });

  // No certificate.
  auto anonymous = MakeClient(TlsClientOptions(server->port()));
  auto refused = anonymous->Get("/whoami");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), common::StatusCode::kUnauthenticated) << refused.status().ToString();

  // A certificate from another CA.
  auto other_pki = ht::TestPki::Create("another CA");
  ASSERT_TRUE(other_pki.ok());
  auto stranger = (*other_pki)->IssueClient("operator-alice");
  ASSERT_TRUE(stranger.ok());
  auto stranger_client = MakeClient(TlsClientOptions(server->port(), &*stranger));
  auto refused2 = stranger_client->Get("/whoami");
  ASSERT_FALSE(refused2.ok());
  EXPECT_EQ(refused2.status().code(), common::StatusCode::kUnauthenticated);

  // A certificate from the right CA but for servers only (EKU serverAuth).
  auto server_as_client = MakeClient(TlsClientOptions(server->port(), &server_cred_));
  EXPECT_FALSE(server_as_client->Get("/whoami").ok());

  // An expired certificate from the right CA.
  ht::IssueOptions expired_options;
  expired_options.common_name = "operator-expired";
  expired_options.extended_key_usage = "clientAuth";
  expired_options.not_before_offset_seconds = -7200;
  expired_options.not_after_offset_seconds = -3600;
  auto expired = pki_->Issue(expired_options);
  ASSERT_TRUE(expired.ok());
  EXPECT_FALSE(MakeClient(TlsClientOptions(server->port(), &*expired))->Get("/whoami").ok());
  EXPECT_EQ(calls.load(), 0);

  // The right certificate: the handler sees exactly its DER.
  auto good = pki_->IssueClient("operator-alice");
  ASSERT_TRUE(good.ok());
  auto good_client = MakeClient(TlsClientOptions(server->port(), &*good));
  auto ok = good_client->Get("/whoami");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(calls.load(), 1);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen_der, good->certificate_der);
  EXPECT_TRUE(seen_verified);
}

TEST_F(HttpTest, OptionalClientCertificate) {
  auto server = StartServer(TlsServerOptions(ClientAuth::kOptional), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/whoami", [](const Request& r) {
                   const TlsPeerInfo& tls = *r.peer.tls;
                   return TextResponse(std::to_string(tls.client_certificate_der.size()) + " " +
                                       (tls.client_certificate_verified ? "verified" : "none"));
                 }).ok());
  });
  auto anonymous = MakeClient(TlsClientOptions(server->port()));
  auto r1 = anonymous->Get("/whoami");
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->body, "0 none");

  auto good = pki_->IssueClient("operator-bob");
  ASSERT_TRUE(good.ok());
  auto r2 = MakeClient(TlsClientOptions(server->port(), &*good))->Get("/whoami");
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->body, std::to_string(good->certificate_der.size()) + " verified");

  // A presented but untrusted certificate fails even when optional.
  auto other_pki = ht::TestPki::Create("another CA");
  auto stranger = (*other_pki)->IssueClient("operator-bob");
  EXPECT_FALSE(MakeClient(TlsClientOptions(server->port(), &*stranger))->Get("/whoami").ok());
}

TEST_F(HttpTest, RevokedClientCertificateRefused) {
  auto revoked = pki_->IssueClient("operator-revoked");
  auto fine = pki_->IssueClient("operator-fine");
  ASSERT_TRUE(revoked.ok() && fine.ok());
  auto crl = pki_->RevocationList(revoked->certificate_der);
  ASSERT_TRUE(crl.ok()) << crl.status().ToString();
  ServerOptions options = TlsServerOptions(ClientAuth::kRequired);
  options.tcp->tls.client_crl_pem = *crl;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  EXPECT_FALSE(MakeClient(TlsClientOptions(server->port(), &*revoked))->Get("/").ok());
  auto ok = MakeClient(TlsClientOptions(server->port(), &*fine))->Get("/");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST_F(HttpTest, CreateRejectsBadTlsMaterial) {
  ServerOptions mismatched = TlsServerOptions();
  auto other = pki_->IssueServer();
  ASSERT_TRUE(other.ok());
  mismatched.tcp->tls.private_key_pem = other->private_key_pem.Clone();
  auto r1 = HttpServer::Create(std::move(mismatched));
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), common::StatusCode::kInvalidArgument);

  ServerOptions garbage = TlsServerOptions();
  garbage.tcp->tls.certificate_chain_pem = "not a pem";
  EXPECT_FALSE(HttpServer::Create(std::move(garbage)).ok());

  ServerOptions no_ca = TlsServerOptions(ClientAuth::kRequired);
  no_ca.tcp->tls.client_ca_pem.clear();
  EXPECT_FALSE(HttpServer::Create(std::move(no_ca)).ok());

  ServerOptions neither;
  EXPECT_FALSE(HttpServer::Create(std::move(neither)).ok());
}

// ---------------------------------------------------------------- limits

class LimitsTest : public HttpTest {
 protected:
  void SetUp() override {
    HttpTest::SetUp();
    ServerOptions options = TlsServerOptions();
    options.limits.max_header_bytes = 4096;
    options.limits.max_body_bytes = 1024;
    options.limits.request_timeout = 3s;
    server_ = StartServer(std::move(options), [this](HttpServer& s) {
      ASSERT_TRUE(s.Handle("POST", "/echo", [this](const Request& r) {
                     calls_++;
                     return TextResponse(r.body);
                   }).ok());
      ASSERT_TRUE(s.Handle("GET", "/", [this](const Request&) {
                     calls_++;
                     return TextResponse("ok");
                   }).ok());
    });
    ASSERT_NE(server_, nullptr);
  }

  // Sends `raw`, expects a problem response with `status` and the connection
  // closed by the server.
  void ExpectRefused(const std::string& raw, int status) {
    auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server_->port());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    ASSERT_TRUE((*conn)->Send(raw).ok());
    ht::RawConnection::ReadResult result = (*conn)->ReadUntilClose(5s);
    EXPECT_TRUE(result.closed) << "connection left open after:\n" << raw;
    EXPECT_EQ(ht::StatusOf(result.data), status) << raw << "\n---\n" << result.data;
    auto json = common::ParseJsonStrict(ht::BodyOf(result.data));
    ASSERT_TRUE(json.ok()) << result.data;
    EXPECT_EQ((*json)["status"], status);
    EXPECT_TRUE((*json)["type"].is_string());
    EXPECT_TRUE((*json)["title"].is_string());
    EXPECT_NE(result.data.find("Content-Type: application/problem+json"), std::string::npos);
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> calls_{0};
};

TEST_F(LimitsTest, BodyOverLimitIs413) {
  ExpectRefused("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" +
                    std::string(2000, 'x'),
                413);
  // Declared only: refused before the body is read.
  ExpectRefused("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413);
  // Chunked: the sum of the chunks counts.
  ExpectRefused("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" "300\r\n" +
                    std::string(0x300, 'x') + "\r\n300\r\n" + std::string(0x300, 'x') + "\r\n0\r\n\r\n",
                413);
  // A single huge chunk.
  ExpectRefused("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\nxx", 413);
  EXPECT_EQ(calls_.load(), 0);

  // Through the client, which sends the whole body: the 413 still arrives
  // (the server drains instead of resetting the connection).
  auto client = MakeClient(TlsClientOptions(server_->port()));
  auto r = client->Post("/echo", std::string(200 * 1024, 'y'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(common::ParseJsonStrict(r->body).value()["type"], kProblemBodyTooLarge);
  // At the limit is fine.
  auto at_limit = client->Post("/echo", std::string(1024, 'z'));
  ASSERT_TRUE(at_limit.ok());
  EXPECT_EQ(at_limit->status, 200);
}

TEST_F(LimitsTest, HeaderOverLimitIs431) {
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n", 431);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 400; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  ExpectRefused(many + "\r\n", 431);
  ExpectRefused("GET /" + std::string(5000, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n", 431);
  EXPECT_EQ(calls_.load(), 0);
}

struct SmugglingCase {
  const char* name;
  std::string request;
  int status;
};

TEST_F(LimitsTest, AmbiguousFramingIs400AndCloses) {
  const std::string kPost = "POST /echo HTTP/1.1\r\nHost: a\r\n";
  const std::vector<SmugglingCase> cases = {
      {"CL then TE", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE then CL", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
      {"duplicate CL", kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
      {"conflicting CL", kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"CL list", kPost + "Content-Length: 5, 5\r\n\r\nhello", 400},
      {"CL sign", kPost + "Content-Length: +5\r\n\r\nhello", 400},
      {"CL negative", kPost + "Content-Length: -1\r\n\r\n", 400},
      {"CL hex", kPost + "Content-Length: 0x5\r\n\r\nhello", 400},
      {"bad chunk size", kPost + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
      {"overflowing chunk size",
       kPost + "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400},
      {"negative chunk size", kPost + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400},
      {"chunk size with space", kPost + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400},
      {"gzip, chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
      {"chunked, gzip", kPost + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400},
      {"TE twice", kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE identity", kPost + "Transfer-Encoding: identity\r\n\r\n", 400},
      {"TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"absolute-form", "GET http://evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"NUL in value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 38), 400},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400},
      {"garbage", "\x16\x03\x01 hello\r\n\r\n", 400},
      {"unknown Expect", kPost + "Content-Length: 1\r\nExpect: 999-wait\r\n\r\nx", 417},
  };
  for (const SmugglingCase& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectRefused(c.request, c.status);
  }
  EXPECT_EQ(calls_.load(), 0);
  EXPECT_GE(server_->stats().bad_requests, cases.size());

  // A chunked body done right still works, and trailers never become headers.
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server_->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Send(kPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n").ok());
  auto response = (*conn)->ReadResponse(5s);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(ht::StatusOf(*response), 200);
  EXPECT_EQ(ht::BodyOf(*response), "hello!!!");
}

TEST_F(LimitsTest, TrailersDoNotReachHandlerHeaders) {
  std::atomic<bool> saw_injected{false};
  ServerOptions options = TlsServerOptions();
  auto server = StartServer(std::move(options), [&](HttpServer& s) {
    ASSERT_TRUE(s.Handle("POST", "/", [&](const Request& r) {
                   saw_injected = r.Header("X-Injected").has_value();
                   return TextResponse("ok");
                 }).ok());
  });
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\nhi\r\n0\r\nX-Injected: yes\r\n\r\n").ok());
  auto response = (*conn)->ReadResponse(5s);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(ht::StatusOf(*response), 200);
  EXPECT_FALSE(saw_injected.load());
}

TEST_F(LimitsTest, ExpectContinue) {
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server_->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                            "Expect: 100-continue\r\n\r\n").ok());
  auto interim = (*conn)->ReadResponse(5s);
  ASSERT_TRUE(interim.ok()) << interim.status().ToString();
  EXPECT_EQ(ht::StatusOf(*interim), 100);
  ASSERT_TRUE((*conn)->Send("hello").ok());
  auto final_response = (*conn)->ReadResponse(5s);
  ASSERT_TRUE(final_response.ok());
  EXPECT_EQ(ht::StatusOf(*final_response), 200);
  EXPECT_EQ(ht::BodyOf(*final_response), "hello");
}

TEST_F(HttpTest, SlowLorisDoesNotStarveOthers) {
  ServerOptions options = TlsServerOptions();
  options.limits.request_timeout = 1500ms;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  constexpr int kSlow = 100;
  std::vector<std::unique_ptr<ht::RawConnection>> slow;
  for (int i = 0; i < kSlow; ++i) {
    auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    slow.push_back(std::move(conn).value());
  }
  // Each slow client trickles an endless header, one byte every ~100 ms —
  // always "making progress", never finishing.
  std::atomic<bool> done{false};
  std::thread trickler([&] {
    const std::string header = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + std::string(10000, 's');
    std::size_t pos = 0;
    while (!done.load()) {
      for (auto& conn : slow) conn->Send(header.substr(pos % header.size(), 1)).IgnoreError();
      ++pos;
      std::this_thread::sleep_for(100ms);
    }
  });

  ClientOptions client_options = TlsClientOptions(server->port());
  client_options.request_timeout = 1s;
  auto client = MakeClient(std::move(client_options));
  auto max_latency = Clock::duration::zero();
  auto start = Clock::now();
  int served = 0;
  while (Clock::now() - start < 3s) {
    auto t0 = Clock::now();
    auto r = client->Get("/");
    max_latency = std::max(max_latency, Clock::now() - t0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    ++served;
    std::this_thread::sleep_for(50ms);
  }
  done = true;
  trickler.join();
  EXPECT_GT(served, 20);
  EXPECT_LT(max_latency, 1s);
  // Every slow client was dropped at its request deadline, without a response.
  int closed = 0;
  for (auto& conn : slow) {
    ht::RawConnection::ReadResult result = conn->ReadUntilClose(500ms);
    if (result.closed && result.data.empty()) ++closed;
  }
  EXPECT_EQ(closed, kSlow);
  EXPECT_GE(server->stats().timeouts, static_cast<std::uint64_t>(kSlow));
}

TEST_F(HttpTest, ConnectionCap) {
  ServerOptions options = TlsServerOptions();
  options.limits.max_connections = 4;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  std::vector<std::unique_ptr<ht::RawConnection>> held;
  for (int i = 0; i < 4; ++i) {
    auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    held.push_back(std::move(conn).value());
  }
  // The fifth is closed at once (not left hanging until a timeout).
  auto t0 = Clock::now();
  auto fifth = ht::RawConnection::ConnectTls("127.0.0.1", server->port(), {}, 5s);
  EXPECT_FALSE(fifth.ok());
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_GE(server->stats().connections_refused, 1u);
  // The admitted ones are still served.
  ASSERT_TRUE(held[0]->Send(Get("/")).ok());
  auto r = held[0]->ReadResponse(5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ht::StatusOf(*r), 200);
  // Capacity comes back when one leaves.
  held.pop_back();
  auto deadline = Clock::now() + 3s;
  while (server->stats().connections_active >= 4 && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  auto client = MakeClient(TlsClientOptions(server->port()));
  auto after = client->Get("/");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->status, 200);
}

TEST_F(HttpTest, IdleKeepAliveConnectionIsClosedAndClientReconnects) {
  ServerOptions options = TlsServerOptions();
  options.limits.idle_timeout = 300ms;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  ASSERT_TRUE(client->Get("/").ok());
  EXPECT_EQ(server->stats().connections_active, 1u);
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(server->stats().connections_active, 0u);
  auto again = client->Get("/");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(client->connections_opened(), 2u);
  // Idle keep-alive expiry is normal, not a timeout of a slow client.
  EXPECT_EQ(server->stats().timeouts, 0u);
}

TEST_F(HttpTest, SilentConnectionDroppedAtRequestTimeout) {
  ServerOptions options = TlsServerOptions();
  options.limits.request_timeout = 300ms;
  auto server = StartServer(std::move(options), [](HttpServer&) {});
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
  ASSERT_TRUE(conn.ok());
  auto t0 = Clock::now();
  ht::RawConnection::ReadResult result = (*conn)->ReadUntilClose(5s);
  EXPECT_TRUE(result.closed);
  EXPECT_LT(Clock::now() - t0, 2s);
  // Without a TLS handshake at all: the handshake timeout.
  ServerOptions options2 = TlsServerOptions();
  options2.limits.handshake_timeout = 300ms;
  auto server2 = StartServer(std::move(options2), [](HttpServer&) {});
  auto plain = ht::RawConnection::ConnectTcp("127.0.0.1", server2->port());
  ASSERT_TRUE(plain.ok());
  t0 = Clock::now();
  EXPECT_TRUE((*plain)->ReadUntilClose(5s).closed);
  EXPECT_LT(Clock::now() - t0, 2s);
}

// ---------------------------------------------------------------- shutdown

TEST_F(HttpTest, GracefulStopFinishesInFlightRequest) {
  std::atomic<bool> started{false};
  auto server = StartServer(TlsServerOptions(), [&](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/slow", [&](const Request&) {
                   started = true;
                   std::this_thread::sleep_for(700ms);
                   return TextResponse("finished");
                 }).ok());
    ASSERT_TRUE(s.Handle("GET", "/fast", [](const Request&) { return TextResponse("ok"); }).ok());
  });
  std::uint16_t port = server->port();
  // An idle keep-alive connection must not hold up the shutdown.
  auto idle_client = MakeClient(TlsClientOptions(port));
  ASSERT_TRUE(idle_client->Get("/fast").ok());

  auto busy_client = MakeClient(TlsClientOptions(port));
  common::Result<Response> slow_result = common::InternalError("not run");
  std::thread requester([&] { slow_result = busy_client->Get("/slow"); });
  while (!started.load()) std::this_thread::sleep_for(5ms);
  auto t0 = Clock::now();
  server->Stop(10s);
  auto stop_duration = Clock::now() - t0;
  requester.join();
  ASSERT_TRUE(slow_result.ok()) << slow_result.status().ToString();
  EXPECT_EQ(slow_result->status, 200);
  EXPECT_EQ(slow_result->body, "finished");
  EXPECT_EQ(FindHeader(slow_result->headers, "Connection").value_or(""), "close");
  EXPECT_LT(stop_duration, 3s);
  // Nothing is accepted any more.
  EXPECT_FALSE(ht::RawConnection::ConnectTcp("127.0.0.1", port).ok());
  EXPECT_FALSE(idle_client->Get("/fast").ok());
}

TEST_F(HttpTest, StopPastGraceClosesStuckConnections) {
  std::atomic<bool> started{false};
  auto server = StartServer(TlsServerOptions(), [&](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/stuck", [&](const Request&) {
                   started = true;
                   std::this_thread::sleep_for(1500ms);
                   return TextResponse("late");
                 }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  common::Result<Response> result = common::InternalError("not run");
  std::thread requester([&] { result = client->Get("/stuck"); });
  while (!started.load()) std::this_thread::sleep_for(5ms);
  server->Stop(200ms);
  requester.join();
  // The connection was closed at the grace deadline; the late response is
  // never sent.
  EXPECT_FALSE(result.ok());
}

TEST_F(HttpTest, ShutdownSignalHelpers) {
  // In a child process: the signal mask is process state.
  EXPECT_EXIT(
      {
        BlockShutdownSignals();
        auto server = HttpServer::Create(TlsServerOptions());
        if (!server.ok() || !(*server)->Start().ok()) std::_Exit(2);
        std::thread killer([] { kill(getpid(), SIGTERM); });
        int sig = WaitForShutdownSignal();
        killer.join();
        (*server)->Stop(1s);
        std::_Exit(sig == SIGTERM ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(HttpTest, ReloadSignalRunsTheCallbackAndTheWaitGoesOn) {
  EXPECT_EXIT(
      {
        BlockShutdownSignals(/*reload=*/true);
        std::atomic<int> reloads{0};
        std::thread sender([&] {
          kill(getpid(), SIGHUP);
          while (reloads.load() < 1) std::this_thread::sleep_for(1ms);
          kill(getpid(), SIGHUP);
          while (reloads.load() < 2) std::this_thread::sleep_for(1ms);
          kill(getpid(), SIGTERM);
        });
        int sig = WaitForShutdownSignal([&] { reloads.fetch_add(1); });
        sender.join();
        std::_Exit(sig == SIGTERM && reloads.load() == 2 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  // Without a reload callback SIGHUP stays unblocked: its default action ends
  // the process, as it did before.
  EXPECT_EXIT(
      {
        BlockShutdownSignals();
        std::thread sender([] { kill(getpid(), SIGHUP); });
        WaitForShutdownSignal();
        sender.join();
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGHUP), "");
}

// ---------------------------------------------------------------- handlers

TEST_F(HttpTest, HandlerExceptionIs500WithoutItsText) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/throw", [](const Request&) -> Response {
                   throw std::runtime_error("db password=hunter2 at /etc/secret");
                 }).ok());
    ASSERT_TRUE(s.Handle("GET", "/throw-int", [](const Request&) -> Response { throw 42; }).ok());
    ASSERT_TRUE(s.Handle("GET", "/split", [](const Request&) {
                   Response r = TextResponse("x");
                   r.headers.emplace("X-Evil", "a\r\nSet-Cookie: session=stolen");
                   return r;
                 }).ok());
    ASSERT_TRUE(s.Handle("GET", "/fine", [](const Request&) { return TextResponse("fine"); }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  auto r = client->Get("/throw");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body.find("hunter2"), std::string::npos);
  EXPECT_EQ(r->body.find("secret"), std::string::npos);
  EXPECT_EQ(FindHeader(r->headers, "Content-Type").value_or(""), "application/problem+json");
  common::Json problem = BodyJson(*r);
  EXPECT_EQ(problem["type"], kProblemInternal);
  EXPECT_EQ(problem["status"], 500);
  EXPECT_TRUE(problem["title"].is_string());
  EXPECT_TRUE(problem["detail"].is_string());

  auto r2 = client->Get("/throw-int");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->status, 500);

  auto r3 = client->Get("/split");
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->status, 500);
  EXPECT_FALSE(FindHeader(r3->headers, "Set-Cookie").has_value());
  EXPECT_FALSE(FindHeader(r3->headers, "X-Evil").has_value());

  // The server, and even the same connection, carry on.
  auto r4 = client->Get("/fine");
  ASSERT_TRUE(r4.ok());
  EXPECT_EQ(r4->body, "fine");
  EXPECT_EQ(client->connections_opened(), 1u);
  EXPECT_EQ(server->stats().handler_exceptions, 3u);
}

TEST_F(HttpTest, InlineHandlersServeAndContainExceptions) {
  ServerOptions options = TlsServerOptions();
  options.inline_handlers = true;
  options.io_threads = 1;
  auto server = StartServer(std::move(options), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("GET", "/v1/{x}", [](const Request& r) {
                   return TextResponse(std::string(r.PathParam("x")));
                 }).ok());
    ASSERT_TRUE(s.Handle("GET", "/throw", [](const Request&) -> Response {
                   throw std::runtime_error("inline secret");
                 }).ok());
  });
  auto client = MakeClient(TlsClientOptions(server->port()));
  auto r = client->Get("/v1/abc");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "abc");
  auto thrown = client->Get("/throw");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->status, 500);
  EXPECT_EQ(thrown->body.find("inline secret"), std::string::npos);
  EXPECT_EQ(client->Get("/v1/again")->body, "again");
}

TEST_F(HttpTest, HeadGetsHeadersOnly) {
  auto server = StartServer(TlsServerOptions(), [](HttpServer& s) {
    ASSERT_TRUE(s.Handle("HEAD", "/doc", [](const Request&) { return TextResponse("0123456789"); }).ok());
  });
  auto conn = ht::RawConnection::ConnectTls("127.0.0.1", server->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Send("HEAD /doc HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  ht::RawConnection::ReadResult result = (*conn)->ReadUntilClose(500ms);
  EXPECT_FALSE(result.closed);
  EXPECT_EQ(ht::StatusOf(result.data), 200);
  EXPECT_NE(result.data.find("Content-Length: 10\r\n"), std::string::npos) << result.data;
  EXPECT_EQ(result.data.substr(result.data.size() - 4), "\r\n\r\n");  // no body
}

// ---------------------------------------------------------------- Unix socket

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentroot-http-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/hostd.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string path_;
};

TEST_F(UnixSocketTest, PeerCredentialsAndMode) {
  ServerOptions options;
  options.unix_socket.emplace();
  options.unix_socket->path = path_;
  options.unix_socket->mode = 0600;
  options.unix_socket->group = std::to_string(getgid());
  auto created = HttpServer::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto server = std::move(created).value();
  ASSERT_TRUE(server->Handle("GET", "/v1/whoami", [](const Request& r) {
                       const UnixPeerCredentials& peer = *r.peer.unix_peer;
                       return JsonResponse(200, {{"pid", peer.pid},
                                                 {"uid", peer.uid},
                                                 {"gid", peer.gid},
                                                 {"tls", r.peer.tls.has_value()},
                                                 {"remote", r.peer.remote_address}});
                     }).ok());
  ASSERT_TRUE(server->Start().ok());
  EXPECT_EQ(server->port(), 0);

  struct stat st {};
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_gid, getgid());

  ClientOptions client_options;
  client_options.unix_socket_path = path_;
  auto client = HttpClient::Create(std::move(client_options));
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/v1/whoami");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto json = common::ParseJsonStrict(r->body);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ((*json)["pid"], getpid());
  EXPECT_EQ((*json)["uid"], getuid());
  EXPECT_EQ((*json)["gid"], getgid());
  EXPECT_EQ((*json)["tls"], false);
  EXPECT_EQ((*json)["remote"], "unix:" + path_);

  // From another process: the credentials are that process's, not ours.
  std::string curl = "curl -s --max-time 5 --unix-socket " + path_ + " http://localhost/v1/whoami";
  FILE* pipe = popen(curl.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  int rc = pclose(pipe);
  if (rc == 0) {
    auto other = common::ParseJsonStrict(out);
    ASSERT_TRUE(other.ok()) << out;
    EXPECT_NE((*other)["pid"], getpid());
    EXPECT_GT((*other)["pid"].get<int>(), 0);
    EXPECT_EQ((*other)["uid"], getuid());
  } else {
    GTEST_LOG_(INFO) << "curl not available; cross-process check skipped";
  }

  // Malformed framing is refused here too.
  auto raw = ht::RawConnection::ConnectUnix(path_);
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE((*raw)->Send("POST /v1/whoami HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").ok());
  auto refused = (*raw)->ReadUntilClose(5s);
  EXPECT_TRUE(refused.closed);
  EXPECT_EQ(ht::StatusOf(refused.data), 400);

  server->Stop();
  EXPECT_NE(lstat(path_.c_str(), &st), 0) << "socket file left behind";
}

TEST_F(UnixSocketTest, RefusesToReplaceNonSocket) {
  { std::ofstream(path_) << "precious"; }
  ServerOptions options;
  options.unix_socket.emplace();
  options.unix_socket->path = path_;
  auto created = HttpServer::Create(std::move(options));
  EXPECT_FALSE(created.ok());
  std::ifstream in(path_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(UnixSocketTest, ReplacesStaleSocketButNotALiveOne) {
  // A stale socket file, as a crashed daemon leaves behind.
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);
  }
  ServerOptions options;
  options.unix_socket.emplace();
  options.unix_socket->path = path_;
  auto created = HttpServer::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  ServerOptions no_replace;
  no_replace.unix_socket.emplace();
  no_replace.unix_socket->path = path_;
  no_replace.unix_socket->replace_existing_socket = false;
  EXPECT_FALSE(HttpServer::Create(std::move(no_replace)).ok());

  ServerOptions unknown_group;
  unknown_group.unix_socket.emplace();
  unknown_group.unix_socket->path = dir_ + "/other.sock";
  unknown_group.unix_socket->group = "no-such-group-agentroot";
  EXPECT_FALSE(HttpServer::Create(std::move(unknown_group)).ok());
}

}  // namespace
}  // namespace agentroot::http
