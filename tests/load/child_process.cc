#include "child_process.h"

#include "agentroot/simulators/testing/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace agentroot::load {
namespace {

// Live children, for the signal handler (async-signal-safe access only).
std::array<std::atomic<pid_t>, 8> g_children{};

void Register(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
}

void Unregister(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void StopAllOnSignal(int sig) {
  for (auto& slot : g_children) {
    pid_t pid = slot.load();
    if (pid > 0) ::kill(-pid, SIGTERM);
  }
  // Up to 5 s for them to go, then SIGKILL (only async-signal-safe calls).
  for (int i = 0; i < 50; ++i) {
    bool any = false;
    for (auto& slot : g_children) {
      pid_t pid = slot.load();
      if (pid <= 0) continue;
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        slot.store(0);
      } else {
        any = true;
      }
    }
    if (!any) break;
    timespec ts{0, 100'000'000};
    ::nanosleep(&ts, nullptr);
  }
  for (auto& slot : g_children) {
    pid_t pid = slot.load();
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  ::_exit(128 + sig);
}

// The fields after "(comm)" of /proc/<pid>/stat; field N of proc(5) is
// fields[N - 3].
common::Result<std::vector<std::string>> StatFields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return common::NotFoundError("no process " + std::to_string(pid));
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos) return common::InternalError("unreadable /proc stat");
  std::istringstream rest(line.substr(paren + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 15) return common::InternalError("short /proc stat");
  return fields;
}

}  // namespace

common::Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                                  const std::filesystem::path& log_file) {
  if (argv.empty()) return common::InvalidArgumentError("empty argv");
  const int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return common::InternalError("cannot open " + log_file.string() + ": " + std::strerror(errno));
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  auto pid = simulators::testing::SpawnChild(argv[0], argv, env, log);
  ::close(log);
  if (!pid.ok()) return pid.status();
  Register(*pid);
  return std::unique_ptr<ChildProcess>(new ChildProcess(*pid));
}

ChildProcess::~ChildProcess() { Stop(); }

bool ChildProcess::Running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    exit_code_ = DecodeWaitStatus(status);
    Unregister(pid_);
    return false;
  }
  return true;
}

bool ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!Running()) return;
  ::kill(-pid_, SIGTERM);
  if (Wait(grace)) return;
  simulators::testing::KillChild(pid_);
  reaped_ = true;
  exit_code_ = 128 + SIGKILL;
  Unregister(pid_);
}

void InstallStopOnSignal() {
  struct sigaction sa {};
  sa.sa_handler = StopAllOnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    sigaddset(&sa.sa_mask, sig);
  }
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

common::Result<double> ProcessCpuSeconds(pid_t pid, bool reaped_children) {
  AR_ASSIGN_OR_RETURN(std::vector<std::string> f, StatFields(pid));
  // utime(14) stime(15) cutime(16) cstime(17), in clock ticks.
  double ticks = std::stod(f[11]) + std::stod(f[12]);
  if (reaped_children) ticks += std::stod(f[13]) + std::stod(f[14]);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

common::Result<double> ProcessTreeCpuSeconds(pid_t root) {
  AR_ASSIGN_OR_RETURN(double total, ProcessCpuSeconds(root, true));
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (!proc) return common::InternalError("cannot list /proc");
  while (dirent* entry = ::readdir(proc.get())) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid == root) continue;
    auto fields = StatFields(static_cast<pid_t>(pid));
    if (!fields.ok() || (*fields)[1] != std::to_string(root)) continue;  // ppid(4)
    total += (std::stod((*fields)[11]) + std::stod((*fields)[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return total;
}

}  // namespace agentroot::load
