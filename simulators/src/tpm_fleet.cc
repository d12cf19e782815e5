#include "agentroot/simulators/tpm_fleet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "agentroot/hsm/tpm/ek_profile.h"
#include "agentroot/hsm/tpm/tpm_context.h"
#include "pem.h"
#include "subprocess.h"

namespace agentroot::simulators {

namespace fs = std::filesystem;
using common::Result;
using common::Status;
using internal::ProcessOptions;
using internal::RunProcess;

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kPidFileName[] = "swtpm.pid";
constexpr char kFleetJson[] = "fleet.json";
constexpr char kRootCaName[] = "swtpm-localca-rootca-cert.pem";
constexpr char kIssuerName[] = "issuercert.pem";
// Server ports come from below Linux's default ephemeral range
// (32768-60999) so outgoing connections do not steal them.
constexpr int kPortMin = 20000;
constexpr int kPortMax = 32000;
constexpr int kPortAttempts = 64;

std::string ErrnoText(int err) { return std::strerror(err); }

// An exclusive flock on DIR/fleet.lock for the lifetime of the object.
class FleetLock {
 public:
  static Result<std::unique_ptr<FleetLock>> Acquire(const fs::path& dir) {
    const fs::path path = dir / "fleet.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return common::InvalidArgumentError("fleet directory " + dir.string() +
                                          " is not writable: " + ErrnoText(errno));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const int err = errno;
        ::close(fd);
        return common::InternalError("flock " + path.string() + ": " + ErrnoText(err));
      }
    }
    return std::unique_ptr<FleetLock>(new FleetLock(fd));
  }
  FleetLock(const FleetLock&) = delete;
  FleetLock& operator=(const FleetLock&) = delete;
  ~FleetLock() { ::close(fd_); }  // Closing releases the lock.

 private:
  explicit FleetLock(int fd) : fd_(fd) {}
  int fd_;
};

// Absolute, symlink-free spelling of `dir`, so the paths on swtpm command
// lines are the same however the caller spelled DIR.
Result<fs::path> CanonicalDir(const fs::path& dir) {
  if (dir.empty()) return common::InvalidArgumentError("fleet directory is empty");
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) {
    return common::InvalidArgumentError("bad fleet directory " + dir.string() + ": " +
                                        ec.message());
  }
  return canonical;
}

// ---- processes ----------------------------------------------------------

std::vector<std::string> ProcCmdline(pid_t pid) {
  auto text = internal::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  if (!text.ok()) return args;
  size_t start = 0;
  const std::string& s = *text;
  while (start < s.size()) {
    size_t end = s.find('\0', start);
    if (end == std::string::npos) end = s.size();
    args.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return args;
}

// True when `pid` is a live (not zombie) swtpm serving `state_dir`.
bool IsOurSwtpm(pid_t pid, const fs::path& state_dir) {
  if (pid <= 1) return false;
  const std::vector<std::string> args = ProcCmdline(pid);  // Empty for zombies.
  if (args.empty() || fs::path(args[0]).filename().string().find("swtpm") == std::string::npos) {
    return false;
  }
  const std::string state_arg = "dir=" + state_dir.string();
  return std::find(args.begin(), args.end(), state_arg) != args.end();
}

Result<pid_t> ReadPidFile(const fs::path& pid_file) {
  AR_ASSIGN_OR_RETURN(std::string text, internal::ReadFile(pid_file));
  try {
    size_t used = 0;
    const long pid = std::stol(text, &used);
    if (pid > 1 && pid < (1L << 22)) return static_cast<pid_t>(pid);
  } catch (const std::exception&) {
    // Fall through to the error below.
  }
  return common::DataLossError("pid file " + pid_file.string() + " holds no pid");
}

std::vector<fs::path> MachineDirs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / "machines", ec)) {
    if (entry.is_directory(ec)) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct RunningMachine {
  pid_t pid;
  fs::path state_dir;
};

std::vector<RunningMachine> FindRunning(const fs::path& dir, int* stale) {
  std::vector<RunningMachine> running;
  for (const fs::path& state_dir : MachineDirs(dir)) {
    const fs::path pid_file = state_dir / kPidFileName;
    std::error_code ec;
    if (!fs::exists(pid_file, ec)) continue;
    auto pid = ReadPidFile(pid_file);
    if (pid.ok() && IsOurSwtpm(*pid, state_dir)) {
      running.push_back({*pid, state_dir});
    } else if (stale != nullptr) {
      ++*stale;
    }
  }
  return running;
}

bool WaitGone(const std::vector<RunningMachine>& machines, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (true) {
    bool any = false;
    for (const auto& m : machines) any = any || IsOurSwtpm(m.pid, m.state_dir);
    if (!any) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// StopFleet without taking the lock (the caller holds it).
Result<StopReport> StopFleetLocked(const fs::path& dir, std::chrono::milliseconds grace) {
  StopReport report;
  const std::vector<RunningMachine> running = FindRunning(dir, &report.stale_pid_files);
  for (const auto& m : running) ::kill(m.pid, SIGTERM);
  if (!WaitGone(running, grace)) {
    for (const auto& m : running) {
      // Re-check right before the kill: the pid may have been reused.
      if (IsOurSwtpm(m.pid, m.state_dir)) {
        ::kill(m.pid, SIGKILL);
        ++report.killed;
      }
    }
    if (!WaitGone(running, std::chrono::seconds(5))) {
      return common::InternalError("swtpm processes in " + dir.string() +
                                   " survived SIGKILL");
    }
  }
  report.stopped = static_cast<int>(running.size());
  std::error_code ec;
  for (const fs::path& state_dir : MachineDirs(dir)) fs::remove(state_dir / kPidFileName, ec);
  fs::remove(dir / kFleetJson, ec);
  return report;
}

// ---- configuration ------------------------------------------------------

Status WriteConfigs(const fs::path& dir, const fs::path& localca) {
  const fs::path config = dir / "config";
  const fs::path ca = dir / "ca";
  AR_RETURN_IF_ERROR(internal::WriteFileAtomically(
      config / "swtpm-localca.conf",
      "statedir = " + ca.string() + "\n" +
          "signingkey = " + (ca / "signkey.pem").string() + "\n" +
          "issuercert = " + (ca / kIssuerName).string() + "\n" +
          "certserial = " + (ca / "certserial").string() + "\n"));
  AR_RETURN_IF_ERROR(internal::WriteFileAtomically(
      config / "swtpm-localca.options",
      "--platform-manufacturer agentroot\n--platform-version 2.1\n"
      "--platform-model agentroot-sim\n"));
  return internal::WriteFileAtomically(
      config / "swtpm_setup.conf",
      "create_certs_tool = " + localca.string() + "\n" +
          "create_certs_tool_config = " + (config / "swtpm-localca.conf").string() + "\n" +
          "create_certs_tool_options = " + (config / "swtpm-localca.options").string() + "\n" +
          "active_pcr_banks = sha256\n");
}

std::string Tail(const fs::path& file, size_t max_chars) {
  auto text = internal::ReadFile(file);
  if (!text.ok()) return "";
  std::string s = *text;
  if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

struct Programs {
  fs::path swtpm;
  fs::path swtpm_setup;
  fs::path swtpm_localca;
};

Status Manufacture(const fs::path& dir, const Programs& programs, const fs::path& state_dir,
                   std::chrono::milliseconds timeout) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) return common::InternalError("mkdir " + state_dir.string() + ": " + ec.message());
  const fs::path log = state_dir / "swtpm_setup.log";
  ProcessOptions options;
  options.env["TMPDIR"] = (dir / "tmp").string();
  options.timeout = timeout;
  auto result = RunProcess({programs.swtpm_setup.string(), "--tpm2", "--tpmstate",
                            state_dir.string(), "--tpm", programs.swtpm.string() + " socket",
                            "--create-ek-cert", "--create-platform-cert", "--lock-nvram",
                            "--config", (dir / "config" / "swtpm_setup.conf").string(),
                            "--logfile", log.string()},
                           options);
  if (!result.ok()) return result.status().WithContext("swtpm_setup for " + state_dir.string());
  if (!result->success()) {
    return common::InternalError("swtpm_setup for " + state_dir.string() + " failed (" +
                                 result->Describe() + "); log: " + Tail(log, 600));
  }
  return Status::Ok();
}

bool PortFree(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// Starts swtpm for one machine on a free port pair, retrying with another
// pair when someone else grabbed the ports between probe and bind.
Status LaunchSwtpm(const Programs& programs, std::mt19937& rng, MachineInfo& machine) {
  std::uniform_int_distribution<int> pick(kPortMin, kPortMax - 2);
  const fs::path log = machine.state_dir / "swtpm.log";
  std::string last_error = "no free port pair found";
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    const int port = pick(rng);
    if (!PortFree(port) || !PortFree(port + 1)) continue;
    std::error_code ec;
    fs::remove(machine.pid_file, ec);
    const uintmax_t log_size_before = fs::exists(log, ec) ? fs::file_size(log, ec) : 0;
    ProcessOptions options;
    options.output_file = log;
    options.timeout = std::chrono::seconds(10);
    const std::string p = std::to_string(port);
    const std::string ctrl = std::to_string(port + 1);
    AR_ASSIGN_OR_RETURN(
        internal::ProcessResult result,
        RunProcess({programs.swtpm.string(), "socket", "--tpm2", "--tpmstate",
                    "dir=" + machine.state_dir.string(), "--server",
                    "type=tcp,port=" + p + ",bindaddr=127.0.0.1", "--ctrl",
                    "type=tcp,port=" + ctrl + ",bindaddr=127.0.0.1", "--flags",
                    "not-need-init,startup-clear", "--pid", "file=" + machine.pid_file.string(),
                    "--daemon"},
                   options));
    if (result.success()) {
      AR_ASSIGN_OR_RETURN(machine.pid, ReadPidFile(machine.pid_file));
      machine.port = static_cast<uint16_t>(port);
      machine.tcti = "swtpm:host=127.0.0.1,port=" + p;
      return Status::Ok();
    }
    // Only this attempt's output counts (the log is appended to).
    auto log_text = internal::ReadFile(log);
    std::string output = log_text.ok() && log_text->size() > log_size_before
                             ? log_text->substr(static_cast<size_t>(log_size_before))
                             : std::string();
    last_error = result.Describe() + ": " + Tail(log, 300);
    if (output.find("Address already in use") == std::string::npos) {
      return common::InternalError("swtpm for " + machine.name + " failed to start (" +
                                   last_error + ")");
    }
    // Lost a race for the ports: try another pair.
  }
  return common::ResourceExhaustedError("swtpm for " + machine.name +
                                        ": no usable port pair after " +
                                        std::to_string(kPortAttempts) + " attempts (" +
                                        last_error + ")");
}

// Waits until the TPM answers TPM2_Startup, then reads its EK certificates
// from NV and writes them as PEM next to its state.
Status ConnectAndExtract(MachineInfo& machine, std::chrono::milliseconds ready_timeout) {
  const auto deadline = Clock::now() + ready_timeout;
  std::unique_ptr<hsm::tpm::TpmContext> tpm;
  Status last = common::DeadlineExceededError("no attempt made");
  int attempts = 0;
  while (true) {
    ++attempts;
    auto ctx = hsm::tpm::TpmContext::Create(machine.tcti);
    if (ctx.ok()) {
      last = (*ctx)->Startup();
      if (last.ok()) {
        tpm = std::move(ctx).value();
        break;
      }
    } else {
      last = ctx.status();
    }
    if (Clock::now() >= deadline) {
      return common::DeadlineExceededError(
          machine.name + " (" + machine.tcti + ") did not answer TPM2_Startup within " +
          std::to_string(ready_timeout.count()) + " ms after " + std::to_string(attempts) +
          " attempts; last error: " + last.ToString());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (hsm::tpm::EkKind kind : hsm::tpm::kAllEkKinds) {
    auto der = tpm->ReadEkCertificate(kind);
    if (!der.ok() && der.status().code() == common::StatusCode::kNotFound) continue;
    if (!der.ok()) return der.status().WithContext(machine.name);
    AR_ASSIGN_OR_RETURN(std::string pem, internal::CertificateDerToPem(*der));
    const std::string name(hsm::tpm::EkKindName(kind));
    const fs::path file = machine.state_dir / ("ek-" + name + ".pem");
    AR_RETURN_IF_ERROR(internal::WriteFileAtomically(file, pem));
    machine.ek_certificates[name] = file;
  }
  if (machine.ek_certificates.empty()) {
    return common::DataLossError(machine.name + " has no EK certificate in NV");
  }
  return Status::Ok();
}

Result<Programs> ResolvePrograms(const FleetOptions& options) {
  Programs programs;
  AR_ASSIGN_OR_RETURN(programs.swtpm, internal::FindExecutable(options.swtpm));
  AR_ASSIGN_OR_RETURN(programs.swtpm_setup, internal::FindExecutable(options.swtpm_setup));
  AR_ASSIGN_OR_RETURN(programs.swtpm_localca, internal::FindExecutable(options.swtpm_localca));
  return programs;
}

Status PrepareDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    return common::InvalidArgumentError("cannot create fleet directory " + dir.string() + ": " +
                                        (ec ? ec.message() : "not a directory"));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return common::InvalidArgumentError("fleet directory " + dir.string() +
                                        " is not writable: " + ErrnoText(errno));
  }
  return Status::Ok();
}

Status StartLocked(const FleetOptions& options, const Programs& programs, FleetInfo& info) {
  const fs::path& dir = info.dir;
  std::error_code ec;
  fs::remove_all(dir / "machines", ec);
  fs::remove_all(dir / "tmp", ec);
  for (const char* sub : {"config", "ca", "machines", "tmp"}) {
    fs::create_directories(dir / sub, ec);
    if (ec) return common::InternalError("mkdir " + (dir / sub).string() + ": " + ec.message());
  }
  AR_RETURN_IF_ERROR(WriteConfigs(dir, programs.swtpm_localca));

  info.machines.resize(static_cast<size_t>(options.machines));
  for (size_t i = 0; i < info.machines.size(); ++i) {
    MachineInfo& m = info.machines[i];
    m.name = "machine-" + std::to_string(i);
    m.state_dir = dir / "machines" / m.name;
    m.pid_file = m.state_dir / kPidFileName;
  }

  // swtpm_localca creates the CA on first use; do that with one machine alone
  // so parallel swtpm_setup runs never race on creating it.
  size_t first_parallel = 0;
  if (!fs::exists(dir / "ca" / "signkey.pem", ec)) {
    AR_RETURN_IF_ERROR(Manufacture(dir, programs, info.machines[0].state_dir,
                                   options.setup_timeout));
    first_parallel = 1;
  }
  unsigned workers = options.parallelism > 0 ? static_cast<unsigned>(options.parallelism)
                                              : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min<unsigned>(workers, static_cast<unsigned>(info.machines.size()));
  std::atomic<size_t> next{first_parallel};
  std::mutex mu;
  Status first_error;
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      while (true) {
        const size_t i = next.fetch_add(1);
        if (i >= info.machines.size()) return;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!first_error.ok()) return;
        }
        Status s = Manufacture(dir, programs, info.machines[i].state_dir, options.setup_timeout);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.ok()) first_error = std::move(s);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  AR_RETURN_IF_ERROR(first_error);

  info.manufacturer_ca = dir / "ca" / kRootCaName;
  info.manufacturer_intermediate = dir / "ca" / kIssuerName;
  if (!fs::exists(info.manufacturer_ca, ec) || !fs::exists(info.manufacturer_intermediate, ec)) {
    return common::InternalError("swtpm_localca did not create the CA in " +
                                 (dir / "ca").string());
  }

  std::mt19937 rng(std::random_device{}());
  for (MachineInfo& m : info.machines) AR_RETURN_IF_ERROR(LaunchSwtpm(programs, rng, m));
  for (MachineInfo& m : info.machines) {
    AR_RETURN_IF_ERROR(ConnectAndExtract(m, options.ready_timeout));
  }
  return internal::WriteFileAtomically(dir / kFleetJson, info.ToJson() + "\n");
}

}  // namespace

// ---- FleetInfo JSON -----------------------------------------------------

std::string FleetInfo::ToJson() const {
  nlohmann::ordered_json j;
  j["dir"] = dir.string();
  j["manufacturer_ca"] = manufacturer_ca.string();
  j["manufacturer_intermediate"] = manufacturer_intermediate.string();
  j["machines"] = nlohmann::ordered_json::array();
  for (const MachineInfo& m : machines) {
    nlohmann::ordered_json jm;
    jm["name"] = m.name;
    jm["tcti"] = m.tcti;
    jm["port"] = m.port;
    jm["state_dir"] = m.state_dir.string();
    jm["pid_file"] = m.pid_file.string();
    jm["pid"] = m.pid;
    jm["ek_certificates"] = nlohmann::ordered_json::object();
    for (const auto& [kind, path] : m.ek_certificates) jm["ek_certificates"][kind] = path.string();
    j["machines"].push_back(std::move(jm));
  }
  return j.dump(2);
}

Result<FleetInfo> FleetInfo::FromJson(std::string_view json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return common::InvalidArgumentError("fleet JSON is not a JSON object");
  }
  try {
    FleetInfo info;
    info.dir = j.at("dir").get<std::string>();
    info.manufacturer_ca = j.at("manufacturer_ca").get<std::string>();
    info.manufacturer_intermediate = j.at("manufacturer_intermediate").get<std::string>();
    for (const auto& jm : j.at("machines")) {
      MachineInfo m;
      m.name = jm.at("name").get<std::string>();
      m.tcti = jm.at("tcti").get<std::string>();
      m.port = jm.at("port").get<uint16_t>();
      m.state_dir = jm.at("state_dir").get<std::string>();
      m.pid_file = jm.at("pid_file").get<std::string>();
      m.pid = jm.at("pid").get<pid_t>();
      for (const auto& [kind, path] : jm.at("ek_certificates").items()) {
        m.ek_certificates[kind] = path.get<std::string>();
      }
      info.machines.push_back(std::move(m));
    }
    return info;
  } catch (const nlohmann::json::exception& e) {
    return common::InvalidArgumentError(std::string("malformed fleet JSON: ") + e.what());
  }
}

// ---- TpmFleet -----------------------------------------------------------

Result<std::unique_ptr<TpmFleet>> TpmFleet::Start(const FleetOptions& options) {
  if (options.machines < 1 || options.machines > kMaxFleetMachines) {
    return common::InvalidArgumentError("--machines must be between 1 and " +
                                        std::to_string(kMaxFleetMachines) + ", got " +
                                        std::to_string(options.machines));
  }
  AR_ASSIGN_OR_RETURN(const Programs programs, ResolvePrograms(options));
  AR_ASSIGN_OR_RETURN(const fs::path dir, CanonicalDir(options.dir));
  AR_RETURN_IF_ERROR(PrepareDir(dir));
  AR_ASSIGN_OR_RETURN(const auto lock, FleetLock::Acquire(dir));

  const std::vector<RunningMachine> running = FindRunning(dir, nullptr);
  if (!running.empty()) {
    return common::AlreadyExistsError(
        "a fleet is already running in " + dir.string() + " (" +
        std::to_string(running.size()) + " swtpm processes); stop it first with "
        "`agentroot-sim tpm stop --dir " + dir.string() + "`");
  }

  FleetInfo info;
  info.dir = dir;
  Status status = StartLocked(options, programs, info);
  if (!status.ok()) {
    // Leave nothing running behind a failed start.
    auto stopped = StopFleetLocked(dir, std::chrono::seconds(2));
    if (!stopped.ok()) {
      return status.WithContext("starting fleet (cleanup also failed: " +
                                stopped.status().message() + ")");
    }
    return status;
  }
  return std::unique_ptr<TpmFleet>(new TpmFleet(std::move(info)));
}

Result<StopReport> TpmFleet::Stop() const { return StopFleet(info_.dir); }

Result<StopReport> StopFleet(const fs::path& dir, std::chrono::milliseconds grace) {
  AR_ASSIGN_OR_RETURN(const fs::path canonical, CanonicalDir(dir));
  std::error_code ec;
  // Nothing was ever started there: do not even create the lock file.
  if (!fs::is_directory(canonical / "machines", ec)) return StopReport{};
  AR_ASSIGN_OR_RETURN(const auto lock, FleetLock::Acquire(canonical));
  return StopFleetLocked(canonical, grace);
}

}  // namespace agentroot::simulators
