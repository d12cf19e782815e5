// HostdConfig: agentroot-hostd's settings, from a TOML file (see
// config/hostd.example.toml and docs/hostd.md "Configuration").
//
// Errors name the file, the key and what is wrong ("config F: verifier.url
// must be an https:// URL"); unknown keys are refused so a typo does not
// silently fall back to a default.
//
// Thread safety: plain values.
#ifndef AGENTROOT_HOST_CONFIG_H_
#define AGENTROOT_HOST_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::host {

struct HostdConfig {
  // [verifier]
  std::string verifier_url;                  // "https://verifier.example:8443" (no path)
  std::filesystem::path verifier_ca_file;    // CA of the verifier's TLS certificate (PEM)
  std::string trust_domain;                  // SPIFFE trust domain of agent ids
  int verifier_connections = 8;              // pooled HTTPS connections
  // [tpm]
  std::string tcti = "device:/dev/tpmrm0";
  std::string ek_kind = "rsa2048";            // rsa2048 | p256 | p384
  std::filesystem::path ek_intermediates_file;  // optional PEM sent with the EK certificate
  uint32_t measurement_pcr = 15;
  std::vector<uint32_t> quote_pcrs = {0};    // quoted with the measurement PCR
  // [host]
  std::string host_group;
  std::filesystem::path state_dir = "/var/lib/agentroot/hostd";
  std::filesystem::path manifests_dir = "/etc/agentroot/agents.d";
  // [api]
  std::filesystem::path socket_path = "/run/agentroot/hostd.sock";
  std::string socket_group;                  // name or gid; empty: the daemon's group
  int worker_threads = 8;
  // [timing]
  int enroll_backoff_initial_ms = 1000;      // doubled per failure ...
  int enroll_backoff_max_ms = 60000;         // ... up to this
  int status_poll_seconds = 10;              // while the host is pending
  double renew_at_fraction = 0.8;            // of a token's lifetime
  // A cached token is served only if the verifier said it was active (RFC
  // 7662 introspection) at most this long ago: the bound on serving a token
  // after an operator revoked it.
  int revocation_check_seconds = 15;
  // requested_ttl of token requests; 0: none (the agent's registered
  // maximum). Also the lifetime of session bindings (session proof mode;
  // 3600, the maximum, when 0).
  int token_ttl_seconds = 0;

  // Checks ranges and required settings (verifier_url, verifier_ca_file,
  // trust_domain, host_group). INVALID_ARGUMENT naming the setting.
  common::Status Validate() const;
};

// Parses TOML text; `source` names it in errors. Settings absent from the
// text keep their defaults. Does not call Validate().
common::Result<HostdConfig> ParseHostdConfig(std::string_view toml_text, std::string_view source);
// Reads and parses a file; NOT_FOUND when it cannot be read.
common::Result<HostdConfig> LoadHostdConfig(const std::filesystem::path& path);

}  // namespace agentroot::host

#endif  // AGENTROOT_HOST_CONFIG_H_
