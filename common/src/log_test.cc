#include "agentroot/common/log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace agentroot::common {
namespace {

TEST(LogJsonTest, OneLineOfJsonWithTheFieldsAndNoThrowOnBadUtf8) {
  ::testing::internal::CaptureStderr();
  LogJson("info", "listening", {{"port", 8443}});
  LogJson("warn", "odd input", {{"value", std::string("\xff\xfe")}});
  LogJson("info", "not an object", Json::array({1}));
  std::string out = ::testing::internal::GetCapturedStderr();
  std::vector<Json> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(Json::parse(out.substr(start, nl - start)));
  }
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0]["msg"], "listening");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["port"], 8443);
  EXPECT_TRUE(lines[0]["ts"].is_number_integer());
  EXPECT_EQ(lines[1]["level"], "warn");
  EXPECT_EQ(lines[2]["msg"], "not an object");
}

TEST(ReadConfiguredFileTest, ReadsTheFileOrNamesTheSetting) {
  const std::string path = ::testing::TempDir() + "/read_configured_file_test.txt";
  { std::ofstream(path, std::ios::binary) << "-----BEGIN CERTIFICATE-----\nMII\n"; }
  auto read = ReadConfiguredFile(path, "server.tls_certificate");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "-----BEGIN CERTIFICATE-----\nMII\n");
  std::remove(path.c_str());
  auto missing = ReadConfiguredFile(path, "server.tls_certificate");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "server.tls_certificate: cannot read " + path);
}

}  // namespace
}  // namespace agentroot::common
