#include "agentroot/host/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace agentroot::host {

namespace {

using common::Result;
using common::Status;

const std::map<std::string, std::set<std::string>>& KnownKeys() {
  static const auto* keys = new std::map<std::string, std::set<std::string>>{
      {"verifier", {"url", "ca_file", "trust_domain", "connections"}},
      {"tpm", {"tcti", "ek_kind", "ek_intermediates_file", "measurement_pcr", "quote_pcrs"}},
      {"host", {"host_group", "state_dir", "manifests_dir"}},
      {"api", {"socket_path", "socket_group", "worker_threads"}},
      {"timing", {"enroll_backoff_initial_ms", "enroll_backoff_max_ms", "status_poll_seconds", "renew_at_fraction", "token_ttl_seconds",
                  "revocation_check_seconds"}},
  };
  return *keys;
}

class Reader {
 public:
  Reader(const toml::table& t, std::string source) : t_(t), source_(std::move(source)) {}

  Status Err(std::string_view key, std::string_view what) const {
    return common::InvalidArgumentError("config " + source_ + ": " + std::string(key) + " " + std::string(what));
  }

  template <typename T>
  Status Get(std::string_view table, std::string_view key, T* out) const {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    std::string name = std::string(table) + "." + std::string(key);
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::filesystem::path>) {
      auto v = node.template value<std::string>();
      if (!v || !node.is_string()) return Err(name, "must be a string");
      *out = *v;
    } else if constexpr (std::is_same_v<T, double>) {
      auto v = node.template value<double>();
      if (!v) return Err(name, "must be a number");
      *out = *v;
    } else {
      auto v = node.template value<int64_t>();
      if (!v || !node.is_integer()) return Err(name, "must be an integer");
      if (*v < 0 || *v > int64_t{1} << 31) return Err(name, "is out of range");
      *out = static_cast<T>(*v);
    }
    return Status::Ok();
  }

  Status GetPcrs(std::string_view table, std::string_view key, std::vector<uint32_t>* out) const {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    std::string name = std::string(table) + "." + std::string(key);
    auto* array = node.as_array();
    if (array == nullptr) return Err(name, "must be an array of PCR indexes");
    out->clear();
    for (const auto& item : *array) {
      auto v = item.value<int64_t>();
      if (!v || *v < 0 || *v > 23) return Err(name, "entries must be PCR indexes 0-23");
      out->push_back(static_cast<uint32_t>(*v));
    }
    return Status::Ok();
  }

 private:
  const toml::table& t_;
  std::string source_;
};

}  // namespace

Status HostdConfig::Validate() const {
  auto err = [](std::string_view key, std::string_view what) {
    return common::InvalidArgumentError("config: " + std::string(key) + " " + std::string(what));
  };
  if (verifier_url.rfind("https://", 0) != 0 || verifier_url.size() <= 8 ||
      verifier_url.find('/', 8) != std::string::npos) {
    return err("verifier.url", "must be an https:// URL without a path, e.g. https://verifier.example:8443");
  }
  if (verifier_ca_file.empty()) return err("verifier.ca_file", "is required (the CA of the verifier's TLS certificate)");
  if (trust_domain.empty() || trust_domain.find('/') != std::string::npos) {
    return err("verifier.trust_domain", "is required (e.g. example.org)");
  }
  if (verifier_connections < 1 || verifier_connections > 64) return err("verifier.connections", "must be 1-64");
  if (tcti.empty()) return err("tpm.tcti", "is required (e.g. device:/dev/tpmrm0)");
  if (ek_kind != "rsa2048" && ek_kind != "p256" && ek_kind != "p384") {
    return err("tpm.ek_kind", "must be rsa2048, p256 or p384");
  }
  if (measurement_pcr > 15) {
    return err("tpm.measurement_pcr", "must be 0-15 (16-23 are resettable or do not bump the update counter)");
  }
  if (host_group.empty()) return err("host.host_group", "is required (the group this host enrolls into)");
  if (state_dir.empty() || !state_dir.is_absolute()) return err("host.state_dir", "must be an absolute path");
  if (manifests_dir.empty()) return err("host.manifests_dir", "is required");
  if (socket_path.empty() || socket_path.string().size() > 100) {
    return err("api.socket_path", "must be a path of at most 100 characters");
  }
  if (worker_threads < 1 || worker_threads > 256) return err("api.worker_threads", "must be 1-256");
  if (enroll_backoff_initial_ms < 10 || enroll_backoff_max_ms < enroll_backoff_initial_ms) {
    return err("timing.enroll_backoff_*", "need 10 <= initial <= max (milliseconds)");
  }
  if (status_poll_seconds < 1) return err("timing.status_poll_seconds", "must be >= 1");
  if (!(renew_at_fraction > 0.1 && renew_at_fraction < 1.0)) {
    return err("timing.renew_at_fraction", "must be between 0.1 and 1.0");
  }
  if (token_ttl_seconds < 0 || token_ttl_seconds > 3600) return err("timing.token_ttl_seconds", "must be 0-3600");
  if (revocation_check_seconds < 1 || revocation_check_seconds > 300) {
    return err("timing.revocation_check_seconds", "must be 1-300");
  }
  return Status::Ok();
}

Result<HostdConfig> ParseHostdConfig(std::string_view toml_text, std::string_view source) {
  toml::table t;
  try {
    t = toml::parse(toml_text, std::string(source));
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return common::InvalidArgumentError("config " + std::string(source) + ": " + std::string(e.description()) +
                                        " at " + where.str());
  }
  const std::string src(source);
  for (const auto& [table, node] : t) {
    auto known = KnownKeys().find(std::string(table.str()));
    if (known == KnownKeys().end() || !node.is_table()) {
      return common::InvalidArgumentError("config " + src + ": unknown section [" + std::string(table.str()) +
                                          "] (known: verifier, tpm, host, api, timing)");
    }
    for (const auto& [key, value] : *node.as_table()) {
      if (known->second.count(std::string(key.str())) == 0) {
        return common::InvalidArgumentError("config " + src + ": unknown setting " + known->first + "." +
                                            std::string(key.str()));
      }
    }
  }
  HostdConfig c;
  Reader r(t, src);
  AR_RETURN_IF_ERROR(r.Get("verifier", "url", &c.verifier_url));
  AR_RETURN_IF_ERROR(r.Get("verifier", "ca_file", &c.verifier_ca_file));
  AR_RETURN_IF_ERROR(r.Get("verifier", "trust_domain", &c.trust_domain));
  AR_RETURN_IF_ERROR(r.Get("verifier", "connections", &c.verifier_connections));
  AR_RETURN_IF_ERROR(r.Get("tpm", "tcti", &c.tcti));
  AR_RETURN_IF_ERROR(r.Get("tpm", "ek_kind", &c.ek_kind));
  AR_RETURN_IF_ERROR(r.Get("tpm", "ek_intermediates_file", &c.ek_intermediates_file));
  AR_RETURN_IF_ERROR(r.Get("tpm", "measurement_pcr", &c.measurement_pcr));
  AR_RETURN_IF_ERROR(r.GetPcrs("tpm", "quote_pcrs", &c.quote_pcrs));
  AR_RETURN_IF_ERROR(r.Get("host", "host_group", &c.host_group));
  AR_RETURN_IF_ERROR(r.Get("host", "state_dir", &c.state_dir));
  AR_RETURN_IF_ERROR(r.Get("host", "manifests_dir", &c.manifests_dir));
  AR_RETURN_IF_ERROR(r.Get("api", "socket_path", &c.socket_path));
  AR_RETURN_IF_ERROR(r.Get("api", "socket_group", &c.socket_group));
  AR_RETURN_IF_ERROR(r.Get("api", "worker_threads", &c.worker_threads));
  AR_RETURN_IF_ERROR(r.Get("timing", "enroll_backoff_initial_ms", &c.enroll_backoff_initial_ms));
  AR_RETURN_IF_ERROR(r.Get("timing", "enroll_backoff_max_ms", &c.enroll_backoff_max_ms));
  AR_RETURN_IF_ERROR(r.Get("timing", "status_poll_seconds", &c.status_poll_seconds));
  AR_RETURN_IF_ERROR(r.Get("timing", "renew_at_fraction", &c.renew_at_fraction));
  AR_RETURN_IF_ERROR(r.Get("timing", "token_ttl_seconds", &c.token_ttl_seconds));
  AR_RETURN_IF_ERROR(r.Get("timing", "revocation_check_seconds", &c.revocation_check_seconds));
  return c;
}

Result<HostdConfig> LoadHostdConfig(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return common::NotFoundError("config: cannot read " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseHostdConfig(buf.str(), path.string());
}

}  // namespace agentroot::host
