#include "subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace agentroot::simulators::internal {

namespace {

using common::Result;
using Clock = std::chrono::steady_clock;

std::string ErrnoText(int err) { return std::strerror(err); }

// An fd closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view kv(*entry);
    const std::string name(kv.substr(0, kv.find('=')));
    if (!extra.contains(name)) env.emplace_back(kv);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child after fork: only async-signal-safe calls, then execve.
[[noreturn]] void ExecChild(const char* path, char* const* argv, char* const* envp,
                            int null_fd, int out_fd, int err_fd) {
  ::setpgid(0, 0);
  // Restore default signal handling that the parent may have changed.
  ::signal(SIGPIPE, SIG_DFL);
  if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 ||
      ::dup2(err_fd, STDERR_FILENO) < 0) {
    ::_exit(126);
  }
  ::close_range(3, ~0U, 0);
  ::execve(path, argv, envp);
  ::_exit(127);
}

}  // namespace

std::string ProcessResult::Describe() const {
  std::string out = signal != 0 ? "killed by signal " + std::to_string(signal)
                                : "exit code " + std::to_string(exit_code);
  std::string err = stderr_text.empty() ? stdout_text : stderr_text;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (!err.empty()) out += ": " + err;
  return out;
}

Result<std::filesystem::path> FindExecutable(const std::string& program) {
  if (program.empty()) return common::InvalidArgumentError("empty program name");
  auto is_executable = [](const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    if (is_executable(program)) return std::filesystem::path(program);
    return common::NotFoundError("program '" + program + "' does not exist or is not executable");
  }
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    if (!dir.empty()) {
      std::filesystem::path candidate = std::filesystem::path(dir) / program;
      if (is_executable(candidate)) return candidate;
    }
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return common::NotFoundError("program '" + program + "' not found in PATH");
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options) {
  if (argv.empty()) return common::InvalidArgumentError("RunProcess: empty argv");
  AR_ASSIGN_OR_RETURN(const std::filesystem::path exe, FindExecutable(argv[0]));

  std::vector<std::string> args = argv;
  std::vector<char*> c_args = CStrings(args);
  std::vector<std::string> env = BuildEnvironment(options.env);
  std::vector<char*> c_env = CStrings(env);

  Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (null_fd.get() < 0) return common::InternalError("open /dev/null: " + ErrnoText(errno));

  Fd out_read, out_write, err_read, err_write;
  if (options.output_file.has_value()) {
    Fd file(::open(options.output_file->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (file.get() < 0) {
      return common::InternalError("open " + options.output_file->string() + ": " +
                                   ErrnoText(errno));
    }
    err_write = Fd(::dup(file.get()));
    out_write = std::move(file);
  } else {
    std::array<int, 2> p{};
    if (::pipe2(p.data(), O_CLOEXEC) != 0) return common::InternalError("pipe2: " + ErrnoText(errno));
    out_read = Fd(p[0]);
    out_write = Fd(p[1]);
    if (::pipe2(p.data(), O_CLOEXEC) != 0) return common::InternalError("pipe2: " + ErrnoText(errno));
    err_read = Fd(p[0]);
    err_write = Fd(p[1]);
  }

  const pid_t pid = ::fork();
  if (pid < 0) return common::InternalError("fork: " + ErrnoText(errno));
  if (pid == 0) {
    ExecChild(exe.c_str(), c_args.data(), c_env.data(), null_fd.get(), out_write.get(),
              err_write.get());
  }
  // Also set it from the parent so a kill after a timeout cannot race the
  // child's own setpgid.
  ::setpgid(pid, pid);
  out_write.Reset();
  err_write.Reset();

  const auto deadline = Clock::now() + options.timeout;
  ProcessResult result;
  bool timed_out = false;

  // Drain the pipes until both reach EOF or the deadline passes.
  std::array<pollfd, 2> fds{};
  fds[0] = {out_read.get(), POLLIN, 0};
  fds[1] = {err_read.get(), POLLIN, 0};
  std::array<std::string*, 2> sinks = {&result.stdout_text, &result.stderr_text};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long>(left, 100)));
    if (n < 0 && errno != EINTR) break;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds[i].fd = -1;
      }
    }
  }

  auto kill_group = [pid] {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  };
  if (timed_out) kill_group();
  int wstatus = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &wstatus, timed_out ? 0 : WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return common::InternalError("waitpid: " + ErrnoText(errno));
    if (!timed_out && Clock::now() >= deadline) {
      timed_out = true;
      kill_group();
      continue;
    }
    if (!timed_out) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (timed_out) {
    return common::DeadlineExceededError(
        "'" + argv[0] + "' did not finish within " + std::to_string(options.timeout.count()) +
        " ms and was killed");
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.signal = WTERMSIG(wstatus);
  }
  if (result.exit_code == 127 && result.stdout_text.empty() && result.stderr_text.empty()) {
    // execve failed in the child (it cannot report more than its exit code).
    result.stderr_text = "could not execute " + exe.string();
  }
  return result;
}

}  // namespace agentroot::simulators::internal
