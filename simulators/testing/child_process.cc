#include "agentroot/simulators/testing/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

extern char** environ;

namespace agentroot::simulators::testing {

using common::Result;
using common::Status;
using Clock = std::chrono::steady_clock;

Result<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return common::NotFoundError(name + " is not executable");
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/" + name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* sbin : {"/usr/sbin/", "/sbin/"}) {
    const std::string candidate = sbin + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return common::NotFoundError(name + " not found in PATH (scripts/install-deps.sh installs it)");
}

std::vector<std::string> EnvironmentWith(const std::string& name, const std::string& value) {
  std::vector<std::string> env;
  const std::string prefix = name + "=";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env.emplace_back(*e);
  }
  env.push_back(prefix + value);
  return env;
}

Result<pid_t> SpawnChild(const std::string& program, const std::vector<std::string>& args,
                         const std::vector<std::string>& env, int log_fd, int fd3) {
  // Everything the child needs is built before fork: after it, in a
  // multi-threaded process, only async-signal-safe calls are allowed.
  std::vector<std::string> argv_storage = args;
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = env;
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return common::InternalError(std::string("open /dev/null: ") + std::strerror(errno));
  const pid_t parent = ::getpid();

  const pid_t child = ::fork();
  if (child < 0) {
    const int err = errno;
    ::close(null_fd);
    return common::InternalError(std::string("fork: ") + std::strerror(err));
  }
  if (child == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // The parent is already gone.
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    unsigned int first_to_close = 3;
    if (fd3 >= 0) {
      // dup2(3, 3) would keep O_CLOEXEC: clear it by hand in that case.
      if (fd3 == 3) {
        ::fcntl(3, F_SETFD, 0);
      } else {
        ::dup2(fd3, 3);
      }
      first_to_close = 4;
    }
    ::close_range(first_to_close, ~0U, 0);
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(child, child);  // Also from here, so it holds before we signal it.
  ::close(null_fd);
  return child;
}

std::optional<std::string> ChildExitedHow(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) return std::string("waitpid: ") + std::strerror(errno);
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return std::string("stopped");
}

Status StopChild(pid_t pid, const char* what, std::chrono::milliseconds grace) {
  if (pid <= 0) return Status::Ok();
  ::kill(-pid, SIGTERM);
  const auto deadline = Clock::now() + grace;
  int status = 0;
  while (true) {
    // WNOWAIT: the exited leader stays a zombie, so its pid (= the group id)
    // cannot be reused while we SIGKILL whatever it left in its group.
    siginfo_t info{};
    const int r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && info.si_pid == pid) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return Status::Ok();
    }
    if (r < 0 && errno == ECHILD) return Status::Ok();  // Already reaped.
    if (r < 0 && errno != EINTR) {
      return common::InternalError(std::string("waitid ") + what + ": " + std::strerror(errno));
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return common::InternalError(std::string(what) + " (pid " + std::to_string(pid) +
                               ") ignored SIGTERM and was killed");
}

void KillChild(pid_t pid) {
  if (pid <= 0) return;
  // The leader is not reaped before the group is signalled, so its pid (the
  // group id) cannot have been reused.
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string FileTail(const std::filesystem::path& file, std::size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

}  // namespace agentroot::simulators::testing
