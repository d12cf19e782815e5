#include "agentroot/hsm/testing/scoped_softhsm_token.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace agentroot::hsm::testing {
namespace {

using common::Result;
using common::Status;

std::atomic<bool> g_token_alive{false};

bool IsExecutableInPath(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout) {
  if (argv.empty()) return common::InvalidArgumentError("RunProcess: empty argv");
  if (!IsExecutableInPath(argv[0])) return common::NotFoundError("program not found: " + argv[0]);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return common::InternalError("pipe: " + std::string(strerror(errno)));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return common::InternalError("fork: " + std::string(strerror(errno)));
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return common::DeadlineExceededError(argv[0] + " killed after timeout; output: " +
                                         result.output);
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

Result<std::unique_ptr<ScopedSoftHsmToken>> ScopedSoftHsmToken::Create(std::string label,
                                                                       std::string user_pin,
                                                                       std::string so_pin) {
  if (access(kSoftHsmModulePath, R_OK) != 0) {
    return common::UnavailableError(std::string("SoftHSM2 module missing: ") + kSoftHsmModulePath);
  }
  if (!IsExecutableInPath("softhsm2-util")) {
    return common::UnavailableError("softhsm2-util not found (apt-get install softhsm2)");
  }
  bool expected = false;
  if (!g_token_alive.compare_exchange_strong(expected, true)) {
    return common::FailedPreconditionError("a ScopedSoftHsmToken is already alive in this process");
  }
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string templ = (base / "agentroot-softhsm-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    g_token_alive = false;
    return common::InternalError("mkdtemp: " + std::string(strerror(errno)));
  }
  std::filesystem::path dir = templ;
  std::filesystem::path tokens = dir / "tokens";
  std::filesystem::path conf = dir / "softhsm2.conf";
  std::filesystem::create_directory(tokens, ec);
  {
    std::ofstream out(conf);
    out << "directories.tokendir = " << tokens.string() << "\n"
        << "objectstore.backend = file\n"
        << "log.level = ERROR\n"
        << "slots.removable = false\n";
  }
  const char* old = getenv("SOFTHSM2_CONF");
  std::optional<std::string> old_conf;
  if (old) old_conf = old;
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  std::unique_ptr<ScopedSoftHsmToken> token(new ScopedSoftHsmToken(
      dir, conf, std::move(label), std::move(user_pin), std::move(so_pin), std::move(old_conf)));
  if (ec) return common::InternalError("creating token dir: " + ec.message());
  AR_RETURN_IF_ERROR(token->AddToken(token->label_, token->user_pin_));
  return token;
}

Status ScopedSoftHsmToken::AddToken(const std::string& label, const std::string& user_pin) {
  AR_ASSIGN_OR_RETURN(ProcessResult r,
                      RunProcess({"softhsm2-util", "--init-token", "--free", "--label", label,
                                  "--so-pin", so_pin_, "--pin", user_pin}));
  if (r.exit_code != 0) {
    return common::InternalError("softhsm2-util --init-token failed (" +
                                 std::to_string(r.exit_code) + "): " + r.output);
  }
  return Status::Ok();
}

common::SecretBytes ScopedSoftHsmToken::UserPinSecret() const {
  return common::SecretBytes(common::AsBytes(user_pin_));
}

ScopedSoftHsmToken::~ScopedSoftHsmToken() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (old_conf_) {
    setenv("SOFTHSM2_CONF", old_conf_->c_str(), 1);
  } else {
    unsetenv("SOFTHSM2_CONF");
  }
  g_token_alive = false;
}

}  // namespace agentroot::hsm::testing
