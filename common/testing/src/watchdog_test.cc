#include "agentroot/common/testing/watchdog.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace agentroot::common::testing {
namespace {

namespace fs = std::filesystem;

// The watchdog under test records which way it was woken.
constexpr char kScript[] =
    "IFS= read -r line <&3\n"
    "if [ \"$line\" = dismiss ]; then : > \"$1/dismissed\"; else : > \"$1/cleaned\"; fi\n";

class CleanupWatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/agentroot-watchdog-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Result<CleanupWatchdog> Start() {
    return CleanupWatchdog::Start({"/bin/sh", "-c", kScript, "watchdog-test", dir_.string()});
  }

  // The watchdog runs detached, so its verdict arrives asynchronously: wait
  // for one of the two files (generously: this is not a timing assertion).
  std::string Verdict() {
    for (int i = 0; i < 3000; ++i) {
      if (fs::exists(dir_ / "cleaned")) return "cleaned";
      if (fs::exists(dir_ / "dismissed")) return "dismissed";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "none";
  }

  fs::path dir_;
};

TEST_F(CleanupWatchdogTest, CleansUpWhenDestroyedWithoutDismissal) {
  {
    auto watchdog = Start();
    ASSERT_TRUE(watchdog.ok()) << watchdog.status().ToString();
    EXPECT_TRUE(watchdog->armed());
    // Blocked on fd 3 while we hold the socket.
    EXPECT_FALSE(fs::exists(dir_ / "cleaned"));
  }
  EXPECT_EQ(Verdict(), "cleaned");
  EXPECT_FALSE(fs::exists(dir_ / "dismissed"));
}

TEST_F(CleanupWatchdogTest, DismissedWatchdogDoesNothing) {
  auto watchdog = Start();
  ASSERT_TRUE(watchdog.ok()) << watchdog.status().ToString();
  watchdog->Dismiss();
  EXPECT_FALSE(watchdog->armed());
  watchdog->Dismiss();  // no-op
  EXPECT_EQ(Verdict(), "dismissed");
  EXPECT_FALSE(fs::exists(dir_ / "cleaned"));
}

TEST_F(CleanupWatchdogTest, MovedWatchdogStaysArmedOnce) {
  auto started = Start();
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  CleanupWatchdog moved = std::move(started).value();
  EXPECT_TRUE(moved.armed());
  moved.Dismiss();
  EXPECT_EQ(Verdict(), "dismissed");
}

TEST_F(CleanupWatchdogTest, CleansUpWhenTheOwnerIsKilled) {
  // The owner dies by SIGKILL along with its whole process group: no
  // destructor runs, and the watchdog (in its own session) survives it.
  const pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    ::setpgid(0, 0);
    auto watchdog = Start();
    if (!watchdog.ok()) ::_exit(1);
    ::kill(0, SIGKILL);
    ::_exit(2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(owner, &status, 0), owner);
  ASSERT_TRUE(WIFSIGNALED(status)) << "owner exited with " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(Verdict(), "cleaned");
}

TEST(CleanupWatchdogStartTest, RefusesRelativeOrMissingPrograms) {
  EXPECT_EQ(CleanupWatchdog::Start({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CleanupWatchdog::Start({"sh", "-c", "true"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CleanupWatchdog::Start({"/nonexistent/agentroot-watchdog"}).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace agentroot::common::testing
