// `make demo` as an e2e test: runs scripts/demo.sh against this build (the
// same script, the same scenario: two swtpm machines, the verifier with its
// issuer key in SoftHSM2, the CRM API, agentroot-hostd, the narrator) and
// checks its exit status, the outcome of every step as it narrates them (the
// operators' `agentroot` commands as typed, their output and the narrator's
// verdicts), and that every process it started is gone afterwards — also when it is
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

  // 1. the operator PKI made with the CLI; only carol bootstrapped, she adds the others.
  EXPECT_THAT(out, HasSubstr("carol$ agentroot operator ca-init --dir operator-ca"));
  for (const char* op : {"carol", "alice", "bob", "audrey"}) {
    EXPECT_THAT(out, HasSubstr(std::string("carol$ agentroot -o json operator issue --ca-dir operator-ca --id ") + op));
    EXPECT_THAT(out, ::testing::ContainsRegex(std::string("-> operators/") + op + "/" + op + "\\.crt \\(CN=" + op +
                                              "\\) and " + op + "\\.key \\(0600\\), certificate_sha256 [0-9a-f]{16}"));
  }
  EXPECT_THAT(out, HasSubstr("carol$ agentroot operator add alice --name \"Alice Doe\" --role owner --role reviewer "
                             "--cert operators/alice/alice.crt"));
  EXPECT_THAT(out, ::testing::ContainsRegex("alice +Alice Doe +owner,reviewer +active"));
  EXPECT_THAT(out, ::testing::ContainsRegex("audrey +Audrey Poe +auditor +active"));
  EXPECT_THAT(out, ::testing::ContainsRegex("bob +Bob Roe +reviewer +active"));
  EXPECT_THAT(out, ::testing::ContainsRegex("carol +Carol \\(infra\\) +infra +active"));
  // 2. enrollment and governance, each operator step an agentroot command.
  EXPECT_THAT(out, HasSubstr("is 'pending' (the group crm-hosts is not auto-approved)"));
  EXPECT_THAT(out, HasSubstr("carol$ agentroot hosts list --status pending"));
  EXPECT_THAT(out, ::testing::ContainsRegex("host-[0-9a-f]+ +crm-hosts +pending"));
  EXPECT_THAT(out, ::testing::ContainsRegex("carol\\$ agentroot -o json hosts approve host-[0-9a-f]+\n"
                                            " +-> host host-[0-9a-f]+ is approved"));
  EXPECT_THAT(out, HasSubstr("hostd learns it is approved"));
  EXPECT_THAT(out, HasSubstr("alice$ agentroot -o json agents register sales-bot --owner alice --group crm-hosts "
                             "--scope crm.read --audience https://crm.example --max-ttl 5m --expires-in 1d "
                             "--manifest sales-bot.manifest.json"));
  EXPECT_THAT(out, HasSubstr("alice (owner) registered spiffe://example.org/agent/sales-bot"));
  EXPECT_THAT(out, ::testing::ContainsRegex("bob\\$ agentroot reviews list\n.*\n +sales-bot +1 "));
  EXPECT_THAT(out, HasSubstr("alice$ agentroot reviews approve sales-bot 1 --comment lgtm\n"
                             "     agentroot: reviews approve: 403 forbidden: an owner may not review their own agent"));
  EXPECT_THAT(out, HasSubstr("alice (also a reviewer) approves her own agent's manifest -> refused, exit 4"));
  EXPECT_THAT(out, HasSubstr("bob (reviewer, not an owner) approves manifest v1 -> approved"));
  // 3. the agent's own request.
  EXPECT_THAT(out, ::testing::ContainsRegex("ok  GET https://127\\.0\\.0\\.1:[0-9]+/v1/accounts -> HTTP 200"));
  // 4. the shadow agent.
  EXPECT_THAT(out, HasSubstr("-> refused, exit 1: agentroot-token: unknown_agent"));
  EXPECT_THAT(out, HasSubstr("hostd recorded it as a shadow agent (shadow_agents.jsonl)"));
  EXPECT_THAT(out, HasSubstr("audrey$ agentroot -o json inventory\n"));
  EXPECT_THAT(out, HasSubstr("audrey (auditor) sees it in the inventory's shadow agents (reported by hostd)"));
  // 5. the stolen token, every way.
  EXPECT_THAT(out, HasSubstr("the token alone, no DPoP proof -> HTTP 401 invalid_token"));
  EXPECT_THAT(out, HasSubstr("the token as a Bearer token -> HTTP 401 invalid_token"));
  EXPECT_THAT(out, HasSubstr("signed by machine-1's TPM key (not the token's cnf.jkt) -> HTTP 401 invalid_dpop_proof"));
  EXPECT_THAT(out, HasSubstr("the agent's old proof, replayed -> HTTP 401 invalid_dpop_proof"));
  // 6. the JIT elevation: requested, refused to its requester, approved by bob, used, revoked.
  EXPECT_THAT(out, HasSubstr("alice$ agentroot -o json jit request sales-bot --scope crm.export --for 10m "
                             "--reason \"quarterly export for finance\""));
  EXPECT_THAT(out, ::testing::ContainsRegex("-> grant jit-[A-Za-z0-9_-]+ is pending"));
  EXPECT_THAT(out, HasSubstr("agentroot: jit approve: 403 forbidden"));
  EXPECT_THAT(out, HasSubstr("alice approves her own request -> refused, exit 4"));
  EXPECT_THAT(out, HasSubstr("bob approves it -> active until"));
  EXPECT_THAT(out, ::testing::ContainsRegex("jit-[A-Za-z0-9_-]+ +spiffe://example\\.org/agent/sales-bot +crm\\.export +"
                                            "active +600s +alice"));
  EXPECT_THAT(out, ::testing::ContainsRegex("scope 'crm\\.export', agentroot\\.jit \\[\"jit-[A-Za-z0-9_-]+\"\\]; "
                                            "GET https://127\\.0\\.0\\.1:[0-9]+/v1/export -> HTTP 200"));
  EXPECT_THAT(out, ::testing::ContainsRegex("alice ends it early -> jit-[A-Za-z0-9_-]+ is revoked"));
  EXPECT_THAT(out, HasSubstr("the agent asks for crm.export again -> refused, exit 1: "));
  EXPECT_THAT(out, HasSubstr("scope_not_allowed"));
  // 7. the changed binary.
  EXPECT_THAT(out, HasSubstr("measurement_refused"));
  EXPECT_THAT(out, HasSubstr("measurement_not_in_approved_manifest"));
  // 8. the inventory and its findings.
  EXPECT_THAT(out, HasSubstr("audrey$ agentroot inventory\n"));
  EXPECT_THAT(out, ::testing::ContainsRegex("sales-bot +active +alice +group crm-hosts +crm\\.read "));
  EXPECT_THAT(out, ::testing::ContainsRegex("single_owner +spiffe://example\\.org/agent/sales-bot"));
  EXPECT_THAT(out, ::testing::ContainsRegex("shadow_agent +host-[0-9a-f]+ +unregistered .*/agentroot-token"));
  EXPECT_THAT(out, HasSubstr("--fail-on-findings exits 8"));
  // 9. the summary, from the audit log (exported and verified with the CLI) and the API's decisions.
  EXPECT_THAT(out, HasSubstr("audrey$ agentroot audit export --out audit.jsonl"));
  EXPECT_THAT(out, ::testing::ContainsRegex("audit export: [0-9]+ records; anchor 0:0{64}"));
  EXPECT_THAT(out, HasSubstr("audrey$ agentroot -o json audit verify audit.jsonl"));
  EXPECT_THAT(out, HasSubstr("hash chain verified"));
  EXPECT_THAT(out, ::testing::ContainsRegex("alice +manifest\\.review spiffe://\\S+#1 +REFUSED +reviewer_is_owner"));
  EXPECT_THAT(out, ::testing::ContainsRegex("alice +jit\\.approve jit-\\S+ +REFUSED"));
  EXPECT_THAT(out, ::testing::ContainsRegex("bob +jit\\.approve jit-\\S+ +allowed"));
  EXPECT_THAT(out, HasSubstr("the API allowed the agent's 2 requests and refused all 4 of the attacker's"));
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
