// agentroot-verifier-load end to end against the real agentroot-verifier on
// SQLite, briefly: every phase completes requests with zero errors, the
// results are well-formed bench.py items, and the verifier child is gone
// afterwards, also when the load generator is stopped by a signal. Asserts
// no timing (the figures live in `make bench`).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "agentroot/common/json.h"
#include "child_process.h"

namespace agentroot::load {
namespace {

namespace fs = std::filesystem;
using common::Json;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The verifier's pid as the load generator logged it, 0 until then.
pid_t VerifierPid(const fs::path& log) {
  std::smatch m;
  std::string text = ReadFile(log);
  static const std::regex kPid("agentroot-verifier pid ([0-9]+)");
  return std::regex_search(text, m, kPid) ? static_cast<pid_t>(std::stol(m[1])) : 0;
}

// True while `pid` runs agentroot-verifier (a reused pid runs something else).
bool VerifierAlive(pid_t pid) {
  std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t paren = stat.rfind(')');
  const bool zombie = paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
  return !zombie && cmdline.find("agentroot-verifier") != std::string::npos &&
         cmdline.find("agentroot-verifier-load") == std::string::npos;
}

class VerifierLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "agentroot-load-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    // The load generator's work directory (config, logs, SQLite file) goes
    // in here too, so nothing is left behind even after a signal.
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> Argv(const std::string& duration) {
    // 100 agents keep every agent well under the verifier's per-agent token
    // rate limit at any speed this machine reaches in these short phases.
    return {AGENTROOT_VERIFIER_LOAD_BIN, "--verifier-bin", AGENTROOT_VERIFIER_BIN, "--store", "sqlite",
            "--hosts", "10", "--agents-per-host", "10", "--connections", "3", "--duration", duration,
            "--warmup", "0.5", "--openssl-seconds", "1", "--out", (dir_ / "out" / "results.json").string()};
  }

  fs::path dir_;
};

TEST_F(VerifierLoadTest, CompletesEveryPhaseWithoutErrorsAndWritesBenchItems) {
  const fs::path log = dir_ / "load.log";
  auto load = ChildProcess::Start(Argv("2"), log);
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  ASSERT_TRUE((*load)->Wait(std::chrono::seconds(150))) << "still running:\n" << ReadFile(log);
  ASSERT_EQ((*load)->exit_code(), 0) << ReadFile(log);

  Json items = Json::parse(ReadFile(dir_ / "out" / "results.json"), nullptr, false);
  ASSERT_TRUE(items.is_array()) << ReadFile(dir_ / "out" / "results.json");
  std::set<std::string> names;
  for (const Json& item : items) {
    ASSERT_TRUE(item.is_object());
    const std::string name = item.at("name").get<std::string>();
    names.insert(name);
    EXPECT_TRUE(item.at("value").is_number()) << name;
    EXPECT_GT(item.at("value").get<double>(), 0) << name;
    EXPECT_TRUE(item.at("unit").is_string()) << name;
    EXPECT_TRUE(item.contains("ceiling") && item.contains("ratio") && item.contains("ceiling_source")) << name;
    EXPECT_GT(item.at("requests").get<int64_t>(), 0) << name;
    EXPECT_EQ(item.at("errors").get<int64_t>(), 0) << name;
  }
  for (const char* per_core : {"verifier_load/sqlite/attest_token_per_core", "verifier_load/sqlite/token_per_core"}) {
    ASSERT_EQ(names.count(per_core), 1u) << per_core;
    for (const Json& item : items) {
      if (item["name"] != per_core) continue;
      EXPECT_GT(item["ceiling"].get<double>(), 0) << per_core;
      EXPECT_NEAR(item["ratio"].get<double>(), item["value"].get<double>() / item["ceiling"].get<double>(), 0.01);
    }
  }
  for (const char* other : {"attest_token_peak", "attest_token_server_cpu", "attest_token_half_peak_p50",
                            "attest_token_half_peak_p99", "token_throughput", "token_server_cpu", "token_p99"}) {
    EXPECT_EQ(names.count(std::string("verifier_load/sqlite/") + other), 1u) << other;
  }
  const pid_t verifier = VerifierPid(log);
  ASSERT_NE(verifier, 0) << ReadFile(log);
  EXPECT_FALSE(VerifierAlive(verifier));
}

TEST_F(VerifierLoadTest, StopsTheVerifierWhenItIsStoppedBySignal) {
  const fs::path log = dir_ / "load.log";
  auto load = ChildProcess::Start(Argv("30"), log);
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  pid_t verifier = 0;
  for (int i = 0; i < 600 && verifier == 0 && (*load)->Running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    verifier = VerifierPid(log);
  }
  ASSERT_NE(verifier, 0) << ReadFile(log);
  ASSERT_TRUE(VerifierAlive(verifier));
  ASSERT_EQ(::kill((*load)->pid(), SIGTERM), 0);
  ASSERT_TRUE((*load)->Wait(std::chrono::seconds(30))) << ReadFile(log);
  EXPECT_EQ((*load)->exit_code(), 128 + SIGTERM);
  EXPECT_FALSE(VerifierAlive(verifier));
}

}  // namespace
}  // namespace agentroot::load
