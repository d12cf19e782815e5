#include "verifier_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "agentroot/common/json.h"
#include "agentroot/http/client.h"
#include "agentroot/common/testing/test_logs.h"
#include "agentroot/simulators/testing/child_process.h"

extern char** environ;

namespace agentroot::e2e {

common::Status WriteFile(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return common::InternalError("writing " + path.string());
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return common::Status::Ok();
}

namespace {

using common::Result;
using common::Status;
using SteadyClock = std::chrono::steady_clock;

std::string ReadFrom(const std::filesystem::path& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(offset);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The port of the last "listening" line in `text`, or 0.
int ListeningPort(const std::string& text) {
  int port = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    common::Json j = common::Json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == "listening" && j.contains("port") && j["port"].is_number_integer()) {
      port = j["port"].get<int>();
    }
  }
  return port;
}

}  // namespace

Result<std::unique_ptr<VerifierProcess>> VerifierProcess::Start(VerifierProcessOptions options) {
  std::unique_ptr<VerifierProcess> process(new VerifierProcess(std::move(options)));
  AR_RETURN_IF_ERROR(process->Launch());
  return process;
}

VerifierProcess::~VerifierProcess() {
  Kill();
  common::testing::KeepLogForScan(options_.log, "agentroot-verifier");
}

Status VerifierProcess::Restart() {
  if (pid_ > 0) return common::FailedPreconditionError("the verifier is still running");
  return Launch();
}

Status VerifierProcess::Launch() {
  std::error_code ec;
  const std::streamoff offset = std::filesystem::exists(options_.log, ec)
                                    ? static_cast<std::streamoff>(std::filesystem::file_size(options_.log, ec))
                                    : 0;
  const int log_fd = ::open(options_.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return common::InternalError("open " + options_.log.string());
  std::vector<std::string> env;
  auto overridden = [&](const char* entry) {
    for (const auto& [name, _] : options_.env) {
      if (std::string_view(entry).substr(0, name.size() + 1) == name + "=") return true;
    }
    return std::string_view(entry).rfind("TSS2_LOG=", 0) == 0;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) env.emplace_back(*e);
  }
  env.emplace_back("TSS2_LOG=all+NONE");
  for (const auto& [name, value] : options_.env) env.push_back(name + "=" + value);
  std::vector<std::string> argv = {AGENTROOT_VERIFIER_BINARY};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  argv.insert(argv.end(), {"--config", options_.config.string()});
  auto pid = simulators::testing::SpawnChild(AGENTROOT_VERIFIER_BINARY, argv, env, log_fd);
  ::close(log_fd);
  AR_RETURN_IF_ERROR(pid.status());
  pid_ = *pid;

  const auto deadline = SteadyClock::now() + options_.ready_timeout;
  std::unique_ptr<http::HttpClient> probe;
  while (true) {
    if (auto how = simulators::testing::ChildExitedHow(pid_)) {
      pid_ = -1;
      return common::UnavailableError("agentroot-verifier " + *how + "; log: " +
                                      simulators::testing::FileTail(options_.log));
    }
    if (SteadyClock::now() > deadline) {
      return common::DeadlineExceededError("agentroot-verifier did not answer; log: " +
                                           simulators::testing::FileTail(options_.log));
    }
    port_ = options_.port != 0 ? options_.port : ListeningPort(ReadFrom(options_.log, offset));
    if (port_ != 0 && probe == nullptr) {
      http::ClientOptions client;
      client.base_url = base_url();
      client.ca_pem = options_.ca_pem;
      client.connect_timeout = std::chrono::milliseconds(1000);
      client.request_timeout = std::chrono::milliseconds(2000);
      AR_ASSIGN_OR_RETURN(probe, http::HttpClient::Create(std::move(client)));
    }
    if (probe != nullptr) {
      auto r = probe->Get("/.well-known/jwks.json");
      if (r.ok() && r->status == 200) return Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void VerifierProcess::Kill() {
  simulators::testing::KillChild(pid_);
  pid_ = -1;
}

int VerifierProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  ::kill(-pid_, SIGTERM);
  int status = 0;
  const auto deadline = SteadyClock::now() + grace;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (SteadyClock::now() > deadline) {
      simulators::testing::KillChild(pid_);
      pid_ = -1;
      return 128 + SIGKILL;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void VerifierProcess::Signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::string VerifierProcess::Log() const { return ReadFrom(options_.log, 0); }

}  // namespace agentroot::e2e
