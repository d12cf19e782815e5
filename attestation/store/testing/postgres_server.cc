#include "testing/postgres_server.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "agentroot/common/testing/ports.h"
#include "agentroot/common/testing/test_logs.h"
#include "sql_connection.h"

namespace agentroot::attestation::store::testing {
namespace {

namespace fs = std::filesystem;
using common::Result;
using common::Status;

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

// The CleanupWatchdog's command: waits for the socket on fd 3 to close;
// unless it was told "dismiss", stops the server and removes the directory.
constexpr char kWatchdogScript[] =
    "dir=\"$1\"; shift\n"
    "IFS= read -r line <&3\n"
    "if [ \"$line\" != dismiss ]; then\n"
    "  \"$@\" \"$dir/data\" stop -m immediate -w -t 30 >/dev/null 2>&1\n"
    "  rm -rf \"$dir\"\n"
    "fi\n";

bool IsRoot() { return ::geteuid() == 0; }

// Prefix that runs a PostgreSQL server binary as the postgres user when we
// are root.
std::vector<std::string> AsPostgres(std::vector<std::string> argv) {
  if (!IsRoot()) return argv;
  std::vector<std::string> out = {"runuser", "-u", "postgres", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Status ChownToPostgres(const std::string& path) {
  if (!IsRoot()) return Status();
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) return common::NotFoundError("no `postgres` user to run the test server");
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return common::InternalError("chown " + path + ": " + std::strerror(errno));
  }
  return Status();
}

Result<common::testing::CleanupWatchdog> StartWatchdog(const std::string& dir) {
  const std::string pg_ctl = std::string(kPgBin) + "/pg_ctl";
  std::vector<std::string> args = {"/bin/sh", "-c", kWatchdogScript, "agentroot-pg-watchdog", dir};
  for (const std::string& a : AsPostgres({pg_ctl, "-D"})) args.push_back(a);
  return common::testing::CleanupWatchdog::Start(args);
}

}  // namespace

Result<int> RunCommand(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return common::InternalError("pipe2 failed");
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return common::InternalError("fork failed");
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      if (output != nullptr) output->append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return common::InternalError("waitpid failed");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -1;
}

Result<std::unique_ptr<ScopedPostgresServer>> ScopedPostgresServer::Start() {
  if (::access((std::string(kPgBin) + "/initdb").c_str(), X_OK) != 0) {
    return common::NotFoundError(std::string("PostgreSQL 15 not installed (") + kPgBin +
                                 "); see scripts/install-deps.sh");
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/agentroot-pg-XXXXXX";
  if (templ.find_first_of(" \t'\"\\$") != std::string::npos) {
    return common::InvalidArgumentError("TMPDIR must not contain spaces or quotes (pg_ctl -o)");
  }
  if (::mkdtemp(templ.data()) == nullptr) {
    return common::InternalError("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  auto watchdog = StartWatchdog(templ);
  if (!watchdog.ok()) {
    std::error_code ec;
    fs::remove_all(templ, ec);
    return watchdog.status();
  }
  std::unique_ptr<ScopedPostgresServer> server(
      new ScopedPostgresServer(templ, std::move(watchdog).value()));
  // On failure the destructor stops whatever started and removes the dir.
  AR_RETURN_IF_ERROR(server->InitAndStart());
  return server;
}

Status ScopedPostgresServer::InitAndStart() {
  AR_RETURN_IF_ERROR(ChownToPostgres(dir_));
  const std::string data = dir_ + "/data";
  const std::string sock = dir_ + "/sock";
  if (::mkdir(sock.c_str(), 0700) != 0) return common::InternalError("mkdir " + sock);
  AR_RETURN_IF_ERROR(ChownToPostgres(sock));

  std::string output;
  AR_ASSIGN_OR_RETURN(int rc, RunCommand(AsPostgres({std::string(kPgBin) + "/initdb", "-D", data,
                                                     "-A", "trust", "-U", "postgres", "-E",
                                                     "UTF8", "--locale=C", "--no-sync"}),
                                         &output));
  if (rc != 0) return common::InternalError("initdb failed (" + std::to_string(rc) + "): " + output);

  // A free port can be taken between probing and binding: retry a few times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    AR_ASSIGN_OR_RETURN(port_, common::testing::FreeLoopbackPort());
    const std::string options = "-c listen_addresses=127.0.0.1 -c port=" + std::to_string(port_) +
                                " -c unix_socket_directories=" + sock +
                                " -c fsync=on -c synchronous_commit=on -c max_connections=80"
                                " -c shared_buffers=32MB -c logging_collector=off";
    output.clear();
    AR_ASSIGN_OR_RETURN(rc, RunCommand(AsPostgres({std::string(kPgBin) + "/pg_ctl", "-D", data,
                                                   "-l", dir_ + "/server.log", "-w", "-t", "60",
                                                   "-o", options, "start"}),
                                       &output));
    if (rc == 0) {
      started_ = true;
      return Status();
    }
  }
  std::string log;
  RunCommand({"tail", "-n", "20", dir_ + "/server.log"}, &log).status().IgnoreError();
  return common::UnavailableError("pg_ctl start failed: " + output + log);
}

ScopedPostgresServer::~ScopedPostgresServer() {
  // Immediate: the data is thrown away, so skip the shutdown checkpoint (it
  // flushes every test database with fsync=on: ~40 s here).
  bool stopped = true;
  if (started_) {
    std::string output;
    auto rc = RunCommand(AsPostgres({std::string(kPgBin) + "/pg_ctl", "-D", dir_ + "/data", "stop",
                                     "-m", "immediate", "-w", "-t", "60"}),
                         &output);
    if (!rc.ok() || *rc != 0) {
      stopped = false;
      std::cerr << "ScopedPostgresServer: pg_ctl stop failed: " << output << "\n";
    }
  }
  common::testing::KeepLogForScan(dir_ + "/server.log", "postgres");
  if (!stopped) {
    // Leave the watchdog armed (~CleanupWatchdog closes without dismissing):
    // it stops the server (-m immediate) and removes the directory.
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (ec) std::cerr << "ScopedPostgresServer: removing " << dir_ << ": " << ec.message() << "\n";
  watchdog_.Dismiss();
}

std::string ScopedPostgresServer::Uri(const std::string& database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

Result<std::string> ScopedPostgresServer::CreateDatabase() {
  const std::string name = "agentroot_test_" + std::to_string(next_database_.fetch_add(1));
  AR_ASSIGN_OR_RETURN(auto admin, internal::OpenPostgresConnection(Uri("postgres")));
  // `name` is built from a counter above, never from input.
  AR_RETURN_IF_ERROR(admin->ExecScript("CREATE DATABASE " + name));
  return Uri(name);
}

}  // namespace agentroot::attestation::store::testing
