#include "agentroot/provisioning/cli_support.h"

#include <gtest/gtest.h>

namespace agentroot::provisioning {
namespace {

using common::StatusCode;

TEST(ParseDuration, Units) {
  EXPECT_EQ(ParseDuration("90s").value(), 90);
  EXPECT_EQ(ParseDuration("30m").value(), 1800);
  EXPECT_EQ(ParseDuration("2h").value(), 7200);
  EXPECT_EQ(ParseDuration("7d").value(), 604800);
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* bad : {"", "s", "90", "0s", "-5m", "+5m", "5 m", "5M", "1.5h", "2w", "h2", "99999999999d",
                          "5mm"}) {
    auto r = ParseDuration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ParseTime, Forms) {
  EXPECT_EQ(ParseTime("1970-01-01").value(), 0);
  EXPECT_EQ(ParseTime("2025-03-01").value(), 1740787200);
  EXPECT_EQ(ParseTime("2024-02-29").value(), 1709164800);
  EXPECT_EQ(ParseTime("2025-03-01T12:00:00Z").value(), 1740830400);
  EXPECT_EQ(ParseTime("2025-03-01T14:00:00+02:00").value(), 1740830400);
  EXPECT_EQ(ParseTime("2025-03-01T07:30:00-04:30").value(), 1740830400);
  EXPECT_EQ(ParseTime("2025-03-01T12:00:00.123456Z").value(), 1740830400);
  EXPECT_EQ(ParseTime("1740830400").value(), 1740830400);
}

TEST(ParseTime, RejectsMalformed) {
  for (const char* bad : {"", "2025-02-29", "2025-13-01", "2025-00-10", "2025-3-1", "2025-03-01T12:00Z",
                          "2025-03-01T12:00:00", "2025-03-01T25:00:00Z", "2025-03-01T12:00:00+0200",
                          "2025-03-01T12:00:00.Z", "yesterday", "-5", "1e9", "2025-03-01x"}) {
    EXPECT_FALSE(ParseTime(bad).ok()) << bad;
  }
}

TEST(FormatTime, UtcMinutesAndZero) {
  EXPECT_EQ(FormatTime(1740830400), "2025-03-01 12:00");
  EXPECT_EQ(FormatTime(1740830459), "2025-03-01 12:00");
  EXPECT_EQ(FormatTime(0), "-");
  EXPECT_EQ(FormatTime(0, "never"), "never");
}

TEST(ExitCodes, FromHttpStatus) {
  struct Case {
    int http;
    int exit;
  } cases[] = {{400, 2}, {401, 4}, {403, 4}, {404, 3}, {409, 5}, {429, 6}, {500, 6}, {502, 6}, {503, 6}, {418, 1}};
  for (const auto& c : cases) {
    common::Status s = StatusForHttp(c.http, "");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(ExitCodeForStatus(s), c.exit) << c.http;
  }
  EXPECT_TRUE(StatusForHttp(200, "").ok());
  EXPECT_TRUE(StatusForHttp(201, "{}").ok());
  EXPECT_EQ(ExitCodeForStatus(common::Status::Ok()), 0);
}

TEST(ExitCodes, FromLocalStatus) {
  EXPECT_EQ(ExitCodeForStatus(common::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeForStatus(common::UnauthenticatedError("x")), 4);
  EXPECT_EQ(ExitCodeForStatus(common::AlreadyExistsError("x")), 5);
  EXPECT_EQ(ExitCodeForStatus(common::UnavailableError("x")), 6);
  EXPECT_EQ(ExitCodeForStatus(common::DataLossError("x")), 7);
  EXPECT_EQ(ExitCodeForStatus(common::InternalError("x")), 1);
}

TEST(StatusForHttp, CarriesTheProblemDetailOnOneLine) {
  common::Status s = StatusForHttp(
      404, R"({"type":"urn:agentroot:problem:agent_unknown","title":"agent_unknown","status":404,"detail":"no agent\r\nnamed x"})");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "404 agent_unknown: no agent  named x");
}

TEST(StatusForHttp, OAuthErrorAndNonJsonBodies) {
  EXPECT_EQ(StatusForHttp(400, R"({"error":"invalid_request","error_description":"bad"})").message(),
            "400 invalid_request: bad");
  EXPECT_EQ(StatusForHttp(502, "<html>bad gateway</html>").message(), "502 Bad Gateway");
}

TEST(Anchor, RoundTripAndRejects) {
  const std::string hash(64, 'a');
  auto a = ParseAnchor("41:" + hash);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->seq, 41);
  EXPECT_EQ(FormatAnchor(*a), "41:" + hash);
  for (const std::string& bad : {std::string("41"), ":" + hash, "x:" + hash, "-1:" + hash, "41:" + hash.substr(2),
                                "41:" + std::string(64, 'g')}) {
    EXPECT_FALSE(ParseAnchor(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace agentroot::provisioning
