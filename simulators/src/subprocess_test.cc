#include "subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

namespace agentroot::simulators::internal {
namespace {

using common::StatusCode;

TEST(SubprocessTest, CapturesStdoutAndExitCode) {
  auto result = RunProcess({"echo", "hello", "world"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_TRUE(result->success());
  EXPECT_EQ(result->stdout_text, "hello world\n");
  EXPECT_EQ(result->stderr_text, "");
}

TEST(SubprocessTest, ArgumentsAreNotInterpretedByAShell) {
  auto result = RunProcess({"echo", "$HOME;", "`id`", "a b"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->stdout_text, "$HOME; `id` a b\n");
}

TEST(SubprocessTest, ReportsNonZeroExitAndStderr) {
  auto result = RunProcess({"sh", "-c", "echo oops >&2; exit 3"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_FALSE(result->success());
  EXPECT_EQ(result->stderr_text, "oops\n");
  EXPECT_EQ(result->Describe(), "exit code 3: oops");
}

TEST(SubprocessTest, ReportsSignals) {
  auto result = RunProcess({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->signal, 9);
  EXPECT_FALSE(result->success());
}

TEST(SubprocessTest, TimeoutKillsTheChild) {
  ProcessOptions options;
  options.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto result = RunProcess({"sleep", "10"}, options);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(SubprocessTest, TimeoutAlsoKillsGrandchildrenHoldingThePipes) {
  ProcessOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto result = RunProcess({"sh", "-c", "sleep 10 & sleep 10"}, options);
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  auto result = RunProcess({"agentroot-no-such-program-xyz"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  auto by_path = RunProcess({"/nonexistent/bin/swtpm"});
  ASSERT_FALSE(by_path.ok());
  EXPECT_EQ(by_path.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(RunProcess({}).ok());
}

TEST(SubprocessTest, FindExecutableSearchesPath) {
  auto sh = FindExecutable("sh");
  ASSERT_TRUE(sh.ok()) << sh.status().ToString();
  EXPECT_TRUE(sh->is_absolute());
  EXPECT_EQ(sh->filename(), "sh");
}

TEST(SubprocessTest, SetsEnvironmentVariables) {
  ProcessOptions options;
  options.env["AGENTROOT_TEST_VAR"] = "value with spaces";
  auto result = RunProcess({"printenv", "AGENTROOT_TEST_VAR"}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->stdout_text, "value with spaces\n");
}

TEST(SubprocessTest, DoesNotLeakFileDescriptors) {
  const int fd = ::open("/dev/null", O_RDONLY);  // Deliberately without O_CLOEXEC.
  ASSERT_GE(fd, 3);
  auto result = RunProcess({"test", "-e", "/proc/self/fd/" + std::to_string(fd)});
  ::close(fd);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->exit_code, 1) << "fd " << fd << " leaked into the child";
}

TEST(SubprocessTest, OutputFileReceivesStdoutAndStderr) {
  char path_template[] = "/tmp/agentroot-subprocess-test-XXXXXX";
  const int fd = ::mkstemp(path_template);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ProcessOptions options;
  options.output_file = path_template;
  auto result = RunProcess({"sh", "-c", "echo out; echo err >&2"}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->stdout_text, "");
  std::ifstream in(path_template);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path_template);
  EXPECT_EQ(text.str(), "out\nerr\n");
}

}  // namespace
}  // namespace agentroot::simulators::internal
