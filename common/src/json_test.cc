#include "agentroot/common/json.h"

#include <gtest/gtest.h>

#include <string>

namespace agentroot::common {
namespace {

TEST(ParseJsonStrictTest, ParsesValidDocuments) {
  auto parsed = ParseJsonStrict(R"({"a":1,"b":{"c":[1,2,{"d":"e"}]}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)["b"]["c"][2]["d"], "e");
}

TEST(ParseJsonStrictTest, RejectsDuplicateMembers) {
  EXPECT_FALSE(ParseJsonStrict(R"({"alg":"ES256","alg":"none"})").ok());
  EXPECT_FALSE(ParseJsonStrict(R"({"a":{"x":1,"x":2}})").ok());
  // The same name in sibling objects is fine.
  EXPECT_TRUE(ParseJsonStrict(R"([{"x":1},{"x":2}])").ok());
  EXPECT_TRUE(ParseJsonStrict(R"({"a":{"x":1},"b":{"x":1}})").ok());
}

TEST(ParseJsonStrictTest, RejectsSyntaxErrorsAndTrailingContent) {
  EXPECT_FALSE(ParseJsonStrict("").ok());
  EXPECT_FALSE(ParseJsonStrict("{").ok());
  EXPECT_FALSE(ParseJsonStrict(R"({"a":1} x)").ok());
  EXPECT_FALSE(ParseJsonStrict(R"({"a":1}{"b":2})").ok());
  EXPECT_FALSE(ParseJsonStrict("{'a':1}").ok());
}

TEST(ParseJsonStrictTest, RejectsInvalidUtf8) {
  EXPECT_FALSE(ParseJsonStrict("\"\xff\xfe\"").ok());
  EXPECT_FALSE(ParseJsonStrict("{\"a\":\"\xc0\xaf\"}").ok());
}

TEST(ParseJsonStrictTest, EnforcesLimits) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(ParseJsonStrict(deep).ok());
  EXPECT_TRUE(ParseJsonStrict(deep, JsonLimits{1 << 20, 128}).ok());
  EXPECT_FALSE(ParseJsonStrict(R"({"a":"0123456789"})", JsonLimits{10, 32}).ok());
}

TEST(GetStringTest, NamesTheProblem) {
  Json j = Json::parse(R"({"s":"v","n":1})");
  EXPECT_EQ(*GetString(j, "s"), "v");
  EXPECT_NE(GetString(j, "n").status().message().find("\"n\""), std::string::npos);
  EXPECT_NE(GetString(j, "missing").status().message().find("missing"), std::string::npos);
  EXPECT_FALSE(GetString(Json::array(), "s").ok());
}

}  // namespace
}  // namespace agentroot::common
