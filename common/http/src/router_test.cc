#include "router.h"

#include <gtest/gtest.h>

#include "agentroot/http/http.h"
#include "agentroot/http/server.h"

namespace agentroot::http::internal {
namespace {

Handler Named(std::string name) {
  return [name](const Request&) {
    Response r;
    r.body = name;
    return r;
  };
}

std::string Call(const Router::Match& m) {
  if (m.kind != Router::Match::Kind::kFound) return "<none>";
  return (*m.handler)(Request()).body;
}

TEST(RouterTest, MatchesLiteralsAndParams) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/agents", Named("list")).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/agents/{id}", Named("get")).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/agents/{id}/keys/{kid}", Named("key")).ok());

  EXPECT_EQ(Call(router.Find("GET", "/v1/agents")), "list");
  Router::Match m = router.Find("GET", "/v1/agents/a%2Fb%20c");
  EXPECT_EQ(Call(m), "get");
  EXPECT_EQ(m.params.at("id"), "a/b c");
  m = router.Find("GET", "/v1/agents/x/keys/k1");
  EXPECT_EQ(Call(m), "key");
  EXPECT_EQ(m.params.at("id"), "x");
  EXPECT_EQ(m.params.at("kid"), "k1");
}

TEST(RouterTest, NoPartialOrEmptySegmentMatches) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/agents/{id}", Named("get")).ok());
  EXPECT_EQ(router.Find("GET", "/v1/agents").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/agents/").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/agents/x/y").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/Agents/x").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1//x").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/agents/../x").kind, Router::Match::Kind::kNotFound);
}

TEST(RouterTest, LiteralBeatsParam) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/agents/{id}", Named("param")).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/agents/self", Named("self")).ok());
  EXPECT_EQ(Call(router.Find("GET", "/v1/agents/self")), "self");
  EXPECT_EQ(Call(router.Find("GET", "/v1/agents/other")), "param");
}

TEST(RouterTest, MethodNotAllowedListsAllowed) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/x", Named("get")).ok());
  ASSERT_TRUE(router.Add("POST", "/v1/x", Named("post")).ok());
  Router::Match m = router.Find("DELETE", "/v1/x");
  EXPECT_EQ(m.kind, Router::Match::Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, POST");
  // Methods are case-sensitive.
  EXPECT_EQ(router.Find("get", "/v1/x").kind, Router::Match::Kind::kMethodNotAllowed);
}

TEST(RouterTest, BadPercentEscapeInParam) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/agents/{id}", Named("get")).ok());
  EXPECT_EQ(router.Find("GET", "/v1/agents/%zz").kind, Router::Match::Kind::kBadPath);
  EXPECT_EQ(router.Find("GET", "/v1/agents/%2").kind, Router::Match::Kind::kBadPath);
}

TEST(RouterTest, RejectsBadPatternsAndDuplicates) {
  Router router;
  EXPECT_FALSE(router.Add("GET", "v1/x", Named("a")).ok());
  EXPECT_FALSE(router.Add("GET", "/v1/{}", Named("a")).ok());
  EXPECT_FALSE(router.Add("GET", "/v1/{a-b}", Named("a")).ok());
  EXPECT_FALSE(router.Add("GET", "/v1/{id}/{id}", Named("a")).ok());
  EXPECT_FALSE(router.Add("GET", "/v1//x", Named("a")).ok());
  EXPECT_FALSE(router.Add("GE T", "/v1/x", Named("a")).ok());
  EXPECT_FALSE(router.Add("GET", "/v1/x", nullptr).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/{id}", Named("a")).ok());
  common::Status dup = router.Add("GET", "/v1/{other}", Named("b"));
  EXPECT_EQ(dup.code(), common::StatusCode::kAlreadyExists);
  EXPECT_TRUE(router.Add("PUT", "/v1/{id}", Named("c")).ok());
}

TEST(HttpTypesTest, HeadersAreCaseInsensitive) {
  Headers h;
  h.emplace("Content-Type", "a");
  h.emplace("content-type", "b");
  EXPECT_EQ(FindHeader(h, "CONTENT-TYPE").value(), "a");
  EXPECT_EQ(h.count("Content-type"), 2u);
  EXPECT_FALSE(FindHeader(h, "Content-Length").has_value());
}

TEST(HttpTypesTest, ProblemResponseIsRfc9457) {
  Response r = ProblemResponse(409, "urn:agentroot:problem:test", "Conflict", "already there");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(FindHeader(r.headers, "Content-Type").value(), "application/problem+json");
  auto json = common::ParseJsonStrict(r.body);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ((*json)["type"], "urn:agentroot:problem:test");
  EXPECT_EQ((*json)["title"], "Conflict");
  EXPECT_EQ((*json)["status"], 409);
  EXPECT_EQ((*json)["detail"], "already there");
  // Invalid UTF-8 in a detail does not throw.
  Response bad = ProblemResponse(400, "urn:x", "Bad", std::string("\xff\xfe", 2));
  EXPECT_TRUE(common::ParseJsonStrict(bad.body).ok());
}

TEST(HttpTypesTest, QueryAndPercentDecoding) {
  auto q = ParseQuery("a=1&b=x+y&c=%41%42&d&&e=");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->find("a")->second, "1");
  EXPECT_EQ(q->find("b")->second, "x y");
  EXPECT_EQ(q->find("c")->second, "AB");
  EXPECT_EQ(q->find("d")->second, "");
  EXPECT_EQ(q->find("e")->second, "");
  EXPECT_FALSE(ParseQuery("a=%4").ok());
  EXPECT_FALSE(PercentDecode("%").ok());
  EXPECT_FALSE(PercentDecode("%g0").ok());
  EXPECT_EQ(PercentDecode("a+b%2B").value(), "a+b+");
}

TEST(HttpTypesTest, FormUrlEncodingRoundTrips) {
  EXPECT_EQ(FormUrlEncode("urn:a b&c=d+e~f.g_h-i/\xff"), "urn%3Aa%20b%26c%3Dd%2Be~f.g_h-i%2F%FF");
  const std::string every_byte = [] {
    std::string s;
    for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
    return s;
  }();
  auto q = ParseQuery("v=" + FormUrlEncode(every_byte));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->find("v")->second, every_byte);
}

}  // namespace
}  // namespace agentroot::http::internal

namespace agentroot::http {
namespace {

TEST(ParseListenAddressTest, TakesIpLiteralsAndPortsAndRefusesTheRest) {
  auto v4 = ParseListenAddress("127.0.0.1:8443", "server.listen");
  ASSERT_TRUE(v4.ok()) << v4.status().ToString();
  EXPECT_EQ(v4->address, "127.0.0.1");
  EXPECT_EQ(v4->port, 8443);
  auto v6 = ParseListenAddress("[::1]:0", "server.listen");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->address, "::1");
  EXPECT_EQ(v6->port, 0);
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:8443x", "127.0.0.1:65536", "127.0.0.1:-1",
                          "localhost:8443", "::1:8443", "[127.0.0.1]:8443", ":8443", "[::1]:+1"}) {
    auto r = ParseListenAddress(bad, "server.listen");
    EXPECT_EQ(r.status().code(), common::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("server.listen"), std::string::npos) << r.status().message();
  }
}

TEST(ParseListenAddressTest, TlsListenerFromFilesNamesTheMissingFile) {
  auto r = TlsListenerFromFiles("127.0.0.1:0", "--listen", "/nonexistent/cert.pem", "--tls-certificate",
                                "/nonexistent/key.pem", "--tls-private-key");
  EXPECT_EQ(r.status().code(), common::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("--tls-certificate"), std::string::npos);
}

}  // namespace
}  // namespace agentroot::http
