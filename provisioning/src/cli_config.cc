#include "agentroot/provisioning/cli_config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <system_error>

#include "agentroot/provisioning/cli_support.h"
#include "agentroot/provisioning/output.h"

namespace agentroot::provisioning {
namespace {

using common::InvalidArgumentError;
using common::Result;
using common::Status;

namespace fs = std::filesystem;

std::string ResolveRelative(const std::string& path, const fs::path& base) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_absolute()) return path;
  if (path.size() >= 2 && path[0] == '~' && path[1] == '/') return path;  // expanded by the caller's HOME below
  return (base / p).lexically_normal().string();
}

std::string ExpandHome(const std::string& path, const std::optional<std::string>& home) {
  if (home && path.size() >= 2 && path[0] == '~' && path[1] == '/') return *home + path.substr(1);
  return path;
}

Status LoadFile(const std::string& path, const std::optional<std::string>& home, CliSettings& s) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return InvalidArgumentError("config " + path + ": " + std::string(e.description()) + " at " + where.str());
  }
  static const std::set<std::string, std::less<>> kKnown = {"verifier", "ca", "certificate", "private_key",
                                                            "output"};
  for (const auto& [key, node] : t) {
    if (!kKnown.contains(key.str())) {
      return InvalidArgumentError("config " + path + ": unknown setting '" + std::string(key.str()) +
                                  "' (known: verifier, ca, certificate, private_key, output)");
    }
    if (!node.is_string()) {
      return InvalidArgumentError("config " + path + ": '" + std::string(key.str()) + "' must be a string");
    }
  }
  const fs::path base = fs::absolute(fs::path(path)).parent_path();
  auto get = [&](const char* key) { return t[key].value_or(std::string()); };
  auto get_path = [&](const char* key) { return ResolveRelative(ExpandHome(get(key), home), base); };
  if (t.contains("verifier")) s.verifier = get("verifier");
  if (t.contains("ca")) s.ca = get_path("ca");
  if (t.contains("certificate")) s.certificate = get_path("certificate");
  if (t.contains("private_key")) s.private_key = get_path("private_key");
  if (t.contains("output")) s.output = get("output");
  s.config_loaded = true;
  return Status::Ok();
}

}  // namespace

Result<CliSettings> ResolveSettings(const CliFlags& flags) {
  CliSettings s;
  bool explicit_file = true;
  if (flags.config) {
    s.config_path = *flags.config;
  } else if (flags.env_config && !flags.env_config->empty()) {
    s.config_path = *flags.env_config;
  } else if (flags.home && !flags.home->empty()) {
    s.config_path = *flags.home + "/.config/agentroot/agentroot.toml";
    explicit_file = false;
  } else {
    explicit_file = false;
  }
  if (!s.config_path.empty()) {
    std::error_code ec;
    const bool exists = fs::exists(s.config_path, ec);
    if (exists) {
      AR_RETURN_IF_ERROR(LoadFile(s.config_path, flags.home, s));
    } else if (explicit_file) {
      return InvalidArgumentError("config file " + s.config_path + " does not exist");
    }
  }
  if (flags.verifier) s.verifier = *flags.verifier;
  if (flags.ca) s.ca = *flags.ca;
  if (flags.certificate) s.certificate = *flags.certificate;
  if (flags.private_key) s.private_key = *flags.private_key;
  if (flags.output) s.output = *flags.output;
  AR_RETURN_IF_ERROR(ParseOutputFormat(s.output).status());
  return s;
}

common::Json SettingsToJson(const CliSettings& s) {
  return common::Json{{"config", s.config_path},
                      {"config_loaded", s.config_loaded},
                      {"verifier", s.verifier},
                      {"ca", s.ca},
                      {"certificate", s.certificate},
                      {"private_key", s.private_key},
                      {"output", s.output}};
}

}  // namespace agentroot::provisioning
