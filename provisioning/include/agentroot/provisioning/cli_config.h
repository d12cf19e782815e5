// The `agentroot` CLI's settings: a TOML file plus command-line flags.
//
//   verifier    = "https://verifier.example:8443"
//   ca          = "verifier-ca.pem"        # the verifier's TLS CA
//   certificate = "alice.crt"              # the operator's client certificate
//   private_key = "alice.key"              # and its key (0600)
//   output      = "table"                  # table | json | csv
//
// Relative paths in the file are relative to the file's directory; paths
// given as flags are taken as given (relative to the working directory).
// Flags win over the file. The file is --config, else $AGENTROOT_CONFIG,
// else ~/.config/agentroot/agentroot.toml; a missing default file is fine, a
// missing explicit one (--config or $AGENTROOT_CONFIG) is an error.
//
// Thread safety: pure functions over values.
#ifndef AGENTROOT_PROVISIONING_CLI_CONFIG_H_
#define AGENTROOT_PROVISIONING_CLI_CONFIG_H_

#include <optional>
#include <string>

#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::provisioning {

struct CliSettings {
  std::string config_path;  // the file considered ("" when none could be named)
  bool config_loaded = false;
  std::string verifier;
  std::string ca;
  std::string certificate;
  std::string private_key;
  std::string output = "table";
};

// What came from the command line and the environment.
struct CliFlags {
  std::optional<std::string> config;  // --config
  std::optional<std::string> verifier, ca, certificate, private_key, output;
  std::optional<std::string> env_config;  // $AGENTROOT_CONFIG (unset: nullopt)
  std::optional<std::string> home;        // $HOME
};

// Resolves the settings. INVALID_ARGUMENT for an explicit config file that is
// missing or unreadable, a TOML syntax error (with its position), a member of
// the wrong type or an unknown member, or an output that is not
// table/json/csv.
common::Result<CliSettings> ResolveSettings(const CliFlags& flags);

// The settings as JSON for `config show` (paths only, never key material).
common::Json SettingsToJson(const CliSettings& settings);

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_CLI_CONFIG_H_
