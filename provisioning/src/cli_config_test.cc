#include "agentroot/provisioning/cli_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_util.h"

namespace agentroot::provisioning {
namespace {

using testing::TempDir;
using testing::WriteFile;

TEST(CliConfig, FileWithRelativePathsAgainstItsDirectory) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir / "conf").c_str(), 0700), 0);
  WriteFile(dir / "conf/agentroot.toml",
            "verifier = \"https://verifier.example:8443\"\n"
            "ca = \"ca.pem\"\n"
            "certificate = \"../creds/alice.crt\"\n"
            "private_key = \"/abs/alice.key\"\n"
            "output = \"json\"\n");
  CliFlags flags;
  flags.config = dir / "conf/agentroot.toml";
  auto s = ResolveSettings(flags);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->config_loaded);
  EXPECT_EQ(s->verifier, "https://verifier.example:8443");
  EXPECT_EQ(s->ca, dir / "conf/ca.pem");
  EXPECT_EQ(s->certificate, dir / "creds/alice.crt");
  EXPECT_EQ(s->private_key, "/abs/alice.key");
  EXPECT_EQ(s->output, "json");
}

TEST(CliConfig, FlagsWinAndAreTakenAsGiven) {
  TempDir dir;
  WriteFile(dir / "a.toml", "verifier = \"https://one\"\nca = \"ca.pem\"\noutput = \"json\"\n");
  CliFlags flags;
  flags.config = dir / "a.toml";
  flags.verifier = "https://two:9443";
  flags.ca = "rel/ca.pem";
  flags.output = "csv";
  auto s = ResolveSettings(flags);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->verifier, "https://two:9443");
  EXPECT_EQ(s->ca, "rel/ca.pem");
  EXPECT_EQ(s->output, "csv");
}

TEST(CliConfig, EnvironmentThenDefaultFile) {
  TempDir dir;
  WriteFile(dir / "env.toml", "verifier = \"https://from-env\"\n");
  CliFlags flags;
  flags.env_config = dir / "env.toml";
  flags.home = dir.path();
  auto s = ResolveSettings(flags);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->verifier, "https://from-env");

  // No env: ~/.config/agentroot/agentroot.toml, which may be missing.
  flags.env_config.reset();
  auto missing = ResolveSettings(flags);
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_FALSE(missing->config_loaded);
  EXPECT_EQ(missing->config_path, dir / ".config/agentroot/agentroot.toml");
  EXPECT_EQ(missing->output, "table");

  std::filesystem::create_directories(dir / ".config/agentroot");
  WriteFile(dir / ".config/agentroot/agentroot.toml", "certificate = \"~/creds/me.crt\"\n");
  auto home = ResolveSettings(flags);
  ASSERT_TRUE(home.ok());
  EXPECT_TRUE(home->config_loaded);
  EXPECT_EQ(home->certificate, dir / "creds/me.crt");
}

TEST(CliConfig, Errors) {
  TempDir dir;
  CliFlags flags;
  flags.config = dir / "missing.toml";
  auto missing = ResolveSettings(flags);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), common::StatusCode::kInvalidArgument);

  flags.config.reset();
  flags.env_config = dir / "missing-env.toml";
  EXPECT_FALSE(ResolveSettings(flags).ok());
  flags.env_config.reset();

  WriteFile(dir / "syntax.toml", "verifier = \n");
  flags.config = dir / "syntax.toml";
  EXPECT_FALSE(ResolveSettings(flags).ok());

  WriteFile(dir / "unknown.toml", "verifer = \"https://typo\"\n");
  flags.config = dir / "unknown.toml";
  auto unknown = ResolveSettings(flags);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("verifer"), std::string::npos);

  WriteFile(dir / "type.toml", "ca = 5\n");
  flags.config = dir / "type.toml";
  EXPECT_FALSE(ResolveSettings(flags).ok());

  WriteFile(dir / "output.toml", "output = \"yaml\"\n");
  flags.config = dir / "output.toml";
  EXPECT_FALSE(ResolveSettings(flags).ok());
}

TEST(CliConfig, ShowNamesPathsOnly) {
  CliSettings s;
  s.private_key = "/k/alice.key";
  common::Json j = SettingsToJson(s);
  EXPECT_EQ(j["private_key"], "/k/alice.key");
  EXPECT_EQ(j.size(), 7u);
}

}  // namespace
}  // namespace agentroot::provisioning
