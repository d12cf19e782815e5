// End-to-end tests of `agentroot-sim tpm ...` run as a separate process.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agentroot/hsm/tpm/tpm_context.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "test_util.h"

namespace agentroot::tests {
namespace {

namespace fs = std::filesystem;
using simulators::testing::AgentrootSimBinary;
using simulators::testing::CommandResult;
using simulators::testing::RunCommand;
using simulators::testing::ScopedFleetDir;

CommandResult Sim(std::vector<std::string> args) {
  args.insert(args.begin(), AgentrootSimBinary().string());
  auto result = RunCommand(args, std::chrono::seconds(120));
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() ? std::move(result).value() : CommandResult{};
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<ScopedFleetDir> MakeDir() {
  auto dir = ScopedFleetDir::Create();
  EXPECT_TRUE(dir.ok()) << dir.status().ToString();
  return dir.ok() ? std::move(dir).value() : nullptr;
}

std::vector<pid_t> Pids(const nlohmann::json& fleet) {
  std::vector<pid_t> pids;
  for (const auto& m : fleet.at("machines")) pids.push_back(m.at("pid").get<pid_t>());
  return pids;
}

TEST(AgentrootSimTpmTest, StartPrintsFleetJsonAndStopEndsEveryInstance) {
  auto dir = MakeDir();
  ASSERT_NE(dir, nullptr);
  CommandResult start = Sim({"tpm", "start", "--machines", "2", "--dir", dir->path().string()});
  ASSERT_EQ(start.exit_code, 0) << start.stderr_text;
  const nlohmann::json fleet = nlohmann::json::parse(start.stdout_text, nullptr, false);
  ASSERT_FALSE(fleet.is_discarded()) << start.stdout_text;
  EXPECT_EQ(nlohmann::json::parse(ReadText(dir->path() / "fleet.json"), nullptr, false), fleet);

  const std::string ca = fleet.at("manufacturer_ca").get<std::string>();
  const std::string intermediate = fleet.at("manufacturer_intermediate").get<std::string>();
  EXPECT_TRUE(fs::exists(ca));
  ASSERT_EQ(fleet.at("machines").size(), 2u);
  for (const auto& m : fleet.at("machines")) {
    const pid_t pid = m.at("pid").get<pid_t>();
    const std::string state_dir = m.at("state_dir").get<std::string>();
    EXPECT_EQ(state_dir.rfind(dir->path().string() + "/machines/", 0), 0u) << state_dir;
    EXPECT_TRUE(ProcessAlive(pid)) << pid;
    EXPECT_NE(ProcessCmdline(pid).find("swtpm"), std::string::npos);
    EXPECT_NE(ProcessCmdline(pid).find(state_dir), std::string::npos);

    // The TCTI works from this process.
    const std::string tcti = m.at("tcti").get<std::string>();
    auto ctx = hsm::tpm::TpmContext::Create(tcti);
    ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
    EXPECT_TRUE((*ctx)->Startup().ok());

    // Every reported EK certificate verifies with the openssl CLI.
    ASSERT_TRUE(m.at("ek_certificates").contains("rsa2048"));
    ASSERT_TRUE(m.at("ek_certificates").contains("p384"));
    for (const auto& [kind, path] : m.at("ek_certificates").items()) {
      auto verify = RunCommand({"openssl", "verify", "-CAfile", ca, "-untrusted", intermediate,
                                path.get<std::string>()});
      ASSERT_TRUE(verify.ok()) << verify.status().ToString();
      EXPECT_EQ(verify->exit_code, 0) << kind << ": " << verify->stdout_text
                                      << verify->stderr_text;
    }

    // `ek-cert` reads the same certificate back from NV.
    const fs::path out = dir->path() / ("cli-" + m.at("name").get<std::string>() + ".pem");
    CommandResult ek = Sim({"tpm", "ek-cert", "--tcti", tcti, "--kind", "p384", "--out",
                            out.string()});
    EXPECT_EQ(ek.exit_code, 0) << ek.stderr_text;
    EXPECT_EQ(ReadText(out), ReadText(m.at("ek_certificates").at("p384").get<std::string>()));
  }

  CommandResult stop = Sim({"tpm", "stop", "--dir", dir->path().string()});
  EXPECT_EQ(stop.exit_code, 0) << stop.stderr_text;
  for (pid_t pid : Pids(fleet)) {
    EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(pid); }, std::chrono::seconds(5))) << pid;
  }
  // Idempotent.
  CommandResult again = Sim({"tpm", "stop", "--dir", dir->path().string()});
  EXPECT_EQ(again.exit_code, 0) << again.stderr_text;
}

TEST(AgentrootSimTpmTest, StopFromAFreshProcessAfterTheStarterCrashed) {
  auto dir = MakeDir();
  ASSERT_NE(dir, nullptr);
  CommandResult start = Sim({"tpm", "start", "--machines", "2", "--dir", dir->path().string()});
  ASSERT_EQ(start.exit_code, 0) << start.stderr_text;
  const nlohmann::json fleet = nlohmann::json::parse(start.stdout_text, nullptr, false);
  ASSERT_FALSE(fleet.is_discarded());
  // The starter is gone; pretend it crashed before writing fleet.json.
  fs::remove(dir->path() / "fleet.json");
  for (pid_t pid : Pids(fleet)) ASSERT_TRUE(ProcessAlive(pid));

  CommandResult stop = Sim({"tpm", "stop", "--dir", dir->path().string()});
  EXPECT_EQ(stop.exit_code, 0) << stop.stderr_text;
  EXPECT_NE(stop.stdout_text.find("\"stopped\": 2"), std::string::npos) << stop.stdout_text;
  for (pid_t pid : Pids(fleet)) {
    EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(pid); }, std::chrono::seconds(5))) << pid;
  }
}

TEST(AgentrootSimTpmTest, SecondStartIntoARunningFleetFailsAndLeavesItAlone) {
  auto dir = MakeDir();
  ASSERT_NE(dir, nullptr);
  CommandResult first = Sim({"tpm", "start", "--machines", "1", "--dir", dir->path().string()});
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  const nlohmann::json fleet = nlohmann::json::parse(first.stdout_text, nullptr, false);
  ASSERT_FALSE(fleet.is_discarded());

  CommandResult second = Sim({"tpm", "start", "--machines", "1", "--dir", dir->path().string()});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.stderr_text.find("already running"), std::string::npos) << second.stderr_text;
  for (pid_t pid : Pids(fleet)) EXPECT_TRUE(ProcessAlive(pid));

  // After a stop the directory can be reused; the CA stays the same.
  const std::string ca_before = ReadText(fleet.at("manufacturer_ca").get<std::string>());
  ASSERT_EQ(Sim({"tpm", "stop", "--dir", dir->path().string()}).exit_code, 0);
  CommandResult third = Sim({"tpm", "start", "--machines", "1", "--dir", dir->path().string()});
  ASSERT_EQ(third.exit_code, 0) << third.stderr_text;
  const nlohmann::json refleet = nlohmann::json::parse(third.stdout_text, nullptr, false);
  ASSERT_FALSE(refleet.is_discarded());
  EXPECT_EQ(ReadText(refleet.at("manufacturer_ca").get<std::string>()), ca_before);
}

TEST(AgentrootSimTpmTest, BadInputFailsWithOneLineAndStartsNothing) {
  auto dir = MakeDir();
  ASSERT_NE(dir, nullptr);
  const std::string d = dir->path().string();
  const fs::path a_file = dir->path() / "plain-file";
  std::ofstream(a_file) << "x";

  struct Case {
    std::vector<std::string> args;
    std::string expect;  // substring of stderr
  };
  const std::vector<Case> cases = {
      {{"tpm", "start", "--machines", "0", "--dir", d + "/a"}, "between 1 and"},
      {{"tpm", "start", "--machines", "-3", "--dir", d + "/b"}, "between 1 and"},
      {{"tpm", "start", "--machines", "100000", "--dir", d + "/c"}, "between 1 and"},
      {{"tpm", "start", "--machines", "1", "--dir", (a_file / "sub").string()},
       "cannot create fleet directory"},
      {{"tpm", "start", "--machines", "1", "--dir", d + "/d", "--swtpm",
        "/nonexistent/bin/swtpm"},
       "/nonexistent/bin/swtpm"},
      {{"tpm", "start", "--machines", "1", "--dir", d + "/e", "--swtpm-setup",
        "agentroot-no-such-swtpm_setup"},
       "not found in PATH"},
      {{"tpm", "ek-cert", "--tcti", "swtpm:host=127.0.0.1,port=1", "--kind", "p521", "--out",
        d + "/x.pem"},
       "unknown EK kind"},
      {{"tpm", "ek-cert", "--tcti", "swtpm:host=127.0.0.1,port=1", "--out", d + "/x.pem"},
       "UNAVAILABLE"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    SCOPED_TRACE(joined);
    CommandResult r = Sim(c.args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.stderr_text.find(c.expect), std::string::npos) << r.stderr_text;
    // One line.
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "");
  }
  // No fleet was started anywhere under the directory.
  for (const char* sub : {"a", "b", "c", "d", "e"}) {
    EXPECT_FALSE(fs::exists(dir->path() / sub / "machines")) << sub;
  }
  // And a command line CLI11 rejects is still a non-zero exit.
  EXPECT_NE(Sim({"tpm", "start", "--dir", d}).exit_code, 0);
  EXPECT_NE(Sim({"tpm", "frobnicate"}).exit_code, 0);
}

}  // namespace
}  // namespace agentroot::tests
