// `make demo` as an e2e test: runs scripts/demo.sh against this build (the
// same script, the same scenario: two swtpm machines, the verifier with its
// issuer key in SoftHSM2, the CRM API, agentroot-hostd, the narrator) and
// checks its exit status, the outcome of every step as it narrates them, and
// that every process it started is gone afterwards — also when it is
// interrupted with Ctrl-C in the middle of the story.
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "agentroot/simulators/testing/child_process.h"

namespace {

namespace fs = std::filesystem;
namespace testing_ = agentroot::simulators::testing;
using ::testing::HasSubstr;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Every "pid N" the demo printed: swtpm ×2, the verifier, the CRM API, hostd.
std::set<pid_t> PidsIn(const std::string& output) {
  std::set<pid_t> pids;
  static const std::regex kPid(R"(\bpid (\d+))");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), kPid); it != std::sregex_iterator(); ++it) {
    pids.insert(static_cast<pid_t>(std::stol((*it)[1].str())));
  }
  return pids;
}

// The demo directory, from the narrated path of the agent's executable.
fs::path DemoDirIn(const std::string& output) {
  static const std::regex kDir(R"((/tmp/agentroot-demo\.[A-Za-z0-9]+)/opt/sales-bot)");
  std::smatch m;
  return std::regex_search(output, m, kDir) ? fs::path(m[1].str()) : fs::path();
}

bool Alive(pid_t pid) {
  // A zombie is not running anything; count only live processes.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  std::size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/agentroot-demo-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    log_ = dir_ / "demo.out";
  }

  void TearDown() override {
    // On a failed assertion the script may still run: stop its group (its
    // EXIT trap stops what it started).
    if (pid_ > 0) {
      (void)testing_::StopChild(pid_, "scripts/demo.sh", std::chrono::seconds(30));
    }
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  // Starts scripts/demo.sh <build dir>, leading its own process group (as a
  // shell's foreground job is), output to log_.
  void Start() {
    const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    const std::string script = AGENTROOT_SOURCE_DIR "/scripts/demo.sh";
    auto pid = testing_::SpawnChild(script, {script, AGENTROOT_BUILD_DIR}, testing_::EnvironmentWith("TERM", "dumb"),
                                    fd);
    ::close(fd);
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pid_ = *pid;
  }

  // Waits for the script to end; how it ended.
  std::string Wait(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto how = testing_::ChildExitedHow(pid_)) {
        pid_ = -1;
        return *how;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "still running after " + std::to_string(timeout.count()) + " s";
  }

  // Every process the demo said it started is gone, and so is its directory.
  void ExpectCleanedUp(const std::string& output) {
    std::set<pid_t> pids = PidsIn(output);
    EXPECT_GE(pids.size(), 4u) << output;
    for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << "pid " << pid << " outlived the demo\n" << output;
    fs::path demo_dir = DemoDirIn(output);
    ASSERT_FALSE(demo_dir.empty()) << output;
    EXPECT_FALSE(fs::exists(demo_dir)) << demo_dir;
  }

  fs::path dir_, log_;
  pid_t pid_ = -1;
};

TEST_F(DemoTest, EveryStepBehavesAsNarratedAndEverythingIsStopped) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string how = Wait(std::chrono::seconds(150));
  std::string out = ReadAll(log_);
  ASSERT_EQ(how, "exited with status 0") << out;

  // 2. enrollment and governance.
  EXPECT_THAT(out, HasSubstr("is 'pending' (the group crm-hosts is not auto-approved)"));
  EXPECT_THAT(out, HasSubstr("hostd learns it is approved"));
  EXPECT_THAT(out, HasSubstr("reviews her own manifest -> HTTP 403"));
  EXPECT_THAT(out, HasSubstr("bob (reviewer, not an owner) approves manifest v1 -> approved"));
  // 3. the agent's own request.
  EXPECT_THAT(out, ::testing::ContainsRegex("ok  GET https://127\\.0\\.0\\.1:[0-9]+/v1/accounts -> HTTP 200"));
  // 4. the shadow agent.
  EXPECT_THAT(out, HasSubstr("-> refused, exit 1: agentroot-token: unknown_agent"));
  EXPECT_THAT(out, HasSubstr("hostd recorded it as a shadow agent (shadow_agents.jsonl)"));
  EXPECT_THAT(out, HasSubstr("(auditor) sees it in the verifier's shadow-agent inventory (GET /v1/shadow-agents)"));
  // 5. the stolen token, every way.
  EXPECT_THAT(out, HasSubstr("the token alone, no DPoP proof -> HTTP 401 invalid_token"));
  EXPECT_THAT(out, HasSubstr("the token as a Bearer token -> HTTP 401 invalid_token"));
  EXPECT_THAT(out, HasSubstr("signed by machine-1's TPM key (not the token's cnf.jkt) -> HTTP 401 invalid_dpop_proof"));
  EXPECT_THAT(out, HasSubstr("the agent's old proof, replayed -> HTTP 401 invalid_dpop_proof"));
  // 6. the changed binary.
  EXPECT_THAT(out, HasSubstr("measurement_refused"));
  EXPECT_THAT(out, HasSubstr("measurement_not_in_approved_manifest"));
  // 7. the summary, from the audit log and the API's decisions.
  EXPECT_THAT(out, HasSubstr("hash chain verified"));
  EXPECT_THAT(out, HasSubstr("refused all 4 of the attacker's"));
  EXPECT_THAT(out, HasSubstr("checks behaved as expected"));
  EXPECT_THAT(out, HasSubstr("each exited 0 on SIGTERM"));
  EXPECT_THAT(out, HasSubstr("every step behaved as expected"));
  // Nothing secret in what the reader sees.
  EXPECT_FALSE(std::regex_search(out, std::regex(R"(eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.)"))) << out;
  EXPECT_THAT(out, ::testing::Not(HasSubstr("BEGIN")));
  ExpectCleanedUp(out);
}

TEST_F(DemoTest, CtrlCInTheMiddleStopsEverythingItStarted) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // Interrupt once the whole cast runs (hostd, verifier, API, two swtpm).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string out;
  while (std::chrono::steady_clock::now() < deadline) {
    out = ReadAll(log_);
    if (out.find("== 3.") != std::string::npos) break;
    ASSERT_FALSE(testing_::ChildExitedHow(pid_).has_value() && (pid_ = -1, true)) << "ended early:\n" << out;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_THAT(out, HasSubstr("== 3.")) << out;
  ASSERT_EQ(::kill(-pid_, SIGINT), 0);  // what a terminal's Ctrl-C does to the foreground job
  std::string how = Wait(std::chrono::seconds(60));
  out = ReadAll(log_);
  EXPECT_EQ(how, "exited with status 130") << out;
  ExpectCleanedUp(out);
}

}  // namespace
