#include "tpm_abrmd_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "agentroot/simulators/testing/child_process.h"
#include "agentroot/simulators/testing/run_command.h"

namespace agentroot::hsm::tpm::testing {

namespace fs = std::filesystem;
using common::Result;
using common::Status;
using Clock = std::chrono::steady_clock;
using simulators::testing::ChildExitedHow;
using simulators::testing::EnvironmentWith;
using simulators::testing::FileTail;
using simulators::testing::FindProgram;
using simulators::testing::SpawnChild;
using simulators::testing::StopChild;

namespace {

constexpr char kBusAddressVar[] = "DBUS_SESSION_BUS_ADDRESS";

// Reads the first line the bus writes to `fd` (its address). Sets *dbus_pid
// to -1 when it finds the bus exited (and reaped).
Result<std::string> ReadAddress(int fd, pid_t* dbus_pid, const fs::path& log,
                                std::chrono::milliseconds timeout) {
  std::string text;
  const auto deadline = Clock::now() + timeout;
  while (text.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return common::DeadlineExceededError("dbus-daemon printed no address within " +
                                           std::to_string(timeout.count()) + " ms; log: " + FileTail(log));
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
    if (n < 0 && errno != EINTR) return common::InternalError(std::string("poll: ") + std::strerror(errno));
    if (n > 0) {
      char buf[512];
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        text.append(buf, static_cast<std::size_t>(got));
        continue;
      }
      if (got == 0) {
        auto how = ChildExitedHow(*dbus_pid);
        if (how) *dbus_pid = -1;
        return common::UnavailableError("dbus-daemon closed its address pipe (" +
                                        how.value_or("still running") + "); log: " + FileTail(log));
      }
    }
    if (auto how = ChildExitedHow(*dbus_pid)) {
      *dbus_pid = -1;
      return common::UnavailableError("dbus-daemon " + *how + "; log: " + FileTail(log));
    }
  }
  return text.substr(0, text.find('\n'));
}

}  // namespace

Result<std::unique_ptr<ScopedAbrmd>> ScopedAbrmd::Start(const fs::path& dir,
                                                        const std::string& tpm_tcti,
                                                        AbrmdOptions options) {
  AR_ASSIGN_OR_RETURN(const std::string dbus_daemon, FindProgram(options.dbus_daemon));
  AR_ASSIGN_OR_RETURN(const std::string dbus_send, FindProgram(options.dbus_send));
  AR_ASSIGN_OR_RETURN(const std::string abrmd, FindProgram(options.abrmd));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return common::InvalidArgumentError("creating " + dir.string() + ": " + ec.message());

  // A session-type bus of our own: only this socket, EXTERNAL auth (same
  // uid), everything allowed on it, no service activation.
  const fs::path socket = fs::absolute(dir) / "bus.sock";
  if (socket.string().size() >= 100) {
    return common::InvalidArgumentError("bus socket path too long for AF_UNIX: " + socket.string());
  }
  const fs::path config = dir / "bus.conf";
  {
    std::ofstream out(config);
    out << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig>\n"
           "  <type>session</type>\n"
           "  <listen>unix:path="
        << socket.string()
        << "</listen>\n"
           "  <auth>EXTERNAL</auth>\n"
           "  <policy context=\"default\">\n"
           "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
           "    <allow eavesdrop=\"true\"/>\n"
           "    <allow own=\"*\"/>\n"
           "  </policy>\n"
           "</busconfig>\n";
    if (!out) return common::InternalError("writing " + config.string());
  }

  std::unique_ptr<ScopedAbrmd> self(new ScopedAbrmd(dir, options));
  self->tcti_ = "tabrmd:bus_name=" + options.bus_name + ",bus_type=session";

  // 1. The bus; its address comes back on fd 3.
  const fs::path dbus_log = dir / "dbus-daemon.log";
  const int dbus_log_fd = ::open(dbus_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (dbus_log_fd < 0) return common::InternalError("open " + dbus_log.string());
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ::close(dbus_log_fd);
    return common::InternalError("pipe2 failed");
  }
  auto dbus_pid = SpawnChild(dbus_daemon,
                        {dbus_daemon, "--config-file=" + config.string(), "--nofork", "--nopidfile",
                         "--print-address=3"},
                        EnvironmentWith(kBusAddressVar, ""), dbus_log_fd, pipe_fds[1]);
  ::close(dbus_log_fd);
  ::close(pipe_fds[1]);
  if (!dbus_pid.ok()) {
    ::close(pipe_fds[0]);
    return dbus_pid.status();
  }
  self->dbus_pid_ = *dbus_pid;
  auto address = ReadAddress(pipe_fds[0], &self->dbus_pid_, dbus_log, options.ready_timeout);
  ::close(pipe_fds[0]);
  if (!address.ok()) return address.status();  // ~ScopedAbrmd stops the bus.
  self->bus_address_ = *address;

  // 2. abrmd on that bus, in front of the TPM.
  const fs::path abrmd_log = dir / "tpm2-abrmd.log";
  const int abrmd_log_fd = ::open(abrmd_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (abrmd_log_fd < 0) return common::InternalError("open " + abrmd_log.string());
  auto abrmd_pid = SpawnChild(abrmd,
                         {abrmd, "--session", "--allow-root", "--flush-all", "--logger=stdout",
                          "--dbus-name=" + options.bus_name, "--tcti=" + tpm_tcti},
                         EnvironmentWith(kBusAddressVar, self->bus_address_), abrmd_log_fd, -1);
  ::close(abrmd_log_fd);
  if (!abrmd_pid.ok()) return abrmd_pid.status();
  self->abrmd_pid_ = *abrmd_pid;

  // 3. Ready once abrmd owns its name (it claims it after connecting to the
  // TPM). Polled with dbus-send: a TCTI probe would log an error per attempt.
  const auto deadline = Clock::now() + options.ready_timeout;
  while (true) {
    if (auto how = ChildExitedHow(self->abrmd_pid_)) {
      self->abrmd_pid_ = -1;
      return common::UnavailableError("tpm2-abrmd " + *how + "; log: " + FileTail(abrmd_log));
    }
    auto reply = simulators::testing::RunCommand(
        {dbus_send, "--bus=" + self->bus_address_, "--print-reply", "--dest=org.freedesktop.DBus",
         "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:" + options.bus_name},
        std::chrono::seconds(10));
    if (!reply.ok()) return reply.status();
    if (reply->exit_code == 0 && reply->stdout_text.find("boolean true") != std::string::npos) break;
    // When it cannot reach the TPM, abrmd 3.0 logs CRITICAL and hangs
    // instead of exiting: fail now rather than at the deadline.
    const std::string log = FileTail(abrmd_log, 16000);
    if (log.find("CRITICAL") != std::string::npos) {
      return common::UnavailableError("tpm2-abrmd failed to start; log: " + FileTail(abrmd_log));
    }
    if (Clock::now() >= deadline) {
      return common::DeadlineExceededError(
          "tpm2-abrmd did not claim " + options.bus_name + " within " +
          std::to_string(options.ready_timeout.count()) + " ms; dbus-send: " + reply->stdout_text +
          reply->stderr_text + "; log: " + FileTail(abrmd_log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // 4. The tabrmd TCTI of this process finds the bus through the environment.
  if (const char* previous = std::getenv(kBusAddressVar)) self->previous_bus_address_ = previous;
  ::setenv(kBusAddressVar, self->bus_address_.c_str(), 1);
  self->env_set_ = true;
  return self;
}

Status ScopedAbrmd::Stop() {
  // abrmd first: it is a client of the bus.
  Status abrmd = StopChild(abrmd_pid_, "tpm2-abrmd", options_.stop_grace);
  abrmd_pid_ = -1;
  Status bus = StopChild(dbus_pid_, "dbus-daemon", options_.stop_grace);
  dbus_pid_ = -1;
  if (env_set_) {
    if (previous_bus_address_) {
      ::setenv(kBusAddressVar, previous_bus_address_->c_str(), 1);
    } else {
      ::unsetenv(kBusAddressVar);
    }
    env_set_ = false;
  }
  if (!abrmd.ok()) return abrmd;
  return bus;
}

ScopedAbrmd::~ScopedAbrmd() {
  Status stopped = Stop();
  if (!stopped.ok()) std::cerr << "ScopedAbrmd: " << stopped.ToString() << "\n";
}

}  // namespace agentroot::hsm::tpm::testing
