#include "agentroot/host/config.h"

#include <gtest/gtest.h>

namespace agentroot::host {
namespace {

constexpr char kGood[] = R"(
[verifier]
url = "https://verifier.example:8443"
ca_file = "/etc/agentroot/verifier-ca.pem"
trust_domain = "example.org"
[tpm]
tcti = "swtpm:host=127.0.0.1,port=2321"
measurement_pcr = 15
quote_pcrs = [0, 7]
[host]
host_group = "crm-hosts"
state_dir = "/var/lib/agentroot/hostd"
[api]
socket_group = "agents"
)";

TEST(HostdConfigTest, ParsesAndValidates) {
  auto c = ParseHostdConfig(kGood, "good.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->verifier_url, "https://verifier.example:8443");
  EXPECT_EQ(c->tcti, "swtpm:host=127.0.0.1,port=2321");
  EXPECT_EQ(c->quote_pcrs, (std::vector<uint32_t>{0, 7}));
  EXPECT_EQ(c->socket_group, "agents");
  EXPECT_EQ(c->socket_path, "/run/agentroot/hostd.sock");  // default kept
  EXPECT_TRUE(c->Validate().ok()) << c->Validate().ToString();
}

TEST(HostdConfigTest, ClearErrors) {
  auto typo = ParseHostdConfig(std::string(kGood) + "[host2]\nx = 1\n", "typo.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("unknown section [host2]"), std::string::npos);
  auto key = ParseHostdConfig("[tpm]\ntcit = \"x\"\n", "key.toml");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("unknown setting tpm.tcit"), std::string::npos);
  auto type = ParseHostdConfig("[tpm]\nmeasurement_pcr = \"15\"\n", "type.toml");
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("tpm.measurement_pcr must be an integer"), std::string::npos);
  auto syntax = ParseHostdConfig("[tpm\n", "syntax.toml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("syntax.toml"), std::string::npos);

  auto c = ParseHostdConfig(kGood, "good.toml");
  ASSERT_TRUE(c.ok());
  HostdConfig bad = *c;
  bad.verifier_url = "http://verifier.example";
  EXPECT_NE(bad.Validate().message().find("verifier.url"), std::string::npos);
  bad = *c;
  bad.measurement_pcr = 16;
  EXPECT_NE(bad.Validate().message().find("tpm.measurement_pcr"), std::string::npos);
  bad = *c;
  bad.host_group.clear();
  EXPECT_NE(bad.Validate().message().find("host.host_group"), std::string::npos);
  EXPECT_FALSE(LoadHostdConfig("/nonexistent/hostd.toml").ok());
}

}  // namespace
}  // namespace agentroot::host
