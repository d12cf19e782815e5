// agentroot-verifier: the service that decides. See docs/verifier.md.
//
// Configuration comes from a TOML file (--config), with command-line flags
// overriding single settings. Logs are JSON lines on stderr and never carry
// key material, PINs or whole tokens.
#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "agentroot/attestation/verifier_service.h"
#include "agentroot/common/log.h"
#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"
#include "agentroot/hsm/software/software_key_manager.h"
#include "agentroot/http/server.h"

namespace {

using agentroot::common::Json;
using agentroot::common::Result;
using agentroot::common::Status;

using agentroot::common::LogJson;
using agentroot::common::ReadConfiguredFile;

struct Settings {
  std::string config_path;
  std::string listen = "127.0.0.1:8443";
  std::string tls_certificate, tls_private_key, operator_ca;
  // The verifier's handlers wait on the store (a durable commit per
  // request), so they run on a worker pool, not on the I/O threads, and the
  // pool is as large as the store's connection pool: while some handlers
  // wait for an fsync others verify signatures, and concurrent commits can
  // share one flush (docs/verifier.md, docs/benchmarks.md).
  bool inline_handlers = false;
  int threads = 0;  // I/O threads; 0: one per core
  int workers = 8;  // handler threads; 0: one per core
  std::string issuer, trust_domain, manufacturer_roots, store_uri;
  std::vector<std::string> auto_approve_groups;
  uint32_t measurement_pcr = 15;
  bool require_dpop_nonce = false;
  int64_t jit_max_seconds = 8 * 3600;
  int64_t token_rate_per_minute = agentroot::attestation::VerifierConfig{}.token_rate_per_minute;
  int64_t challenge_rate_per_minute = agentroot::attestation::VerifierConfig{}.challenge_rate_per_minute;
  std::vector<std::string> key_published_ids;  // kept in the JWKS beside key_id
  std::string key_backend = "pkcs11", key_module = "/usr/lib/softhsm/libsofthsm2.so", key_token = "agentroot",
              key_pin_env = "AGENTROOT_ISSUER_PIN", key_id = "issuer-1", key_dir;
  bool dev = false;
  std::map<std::string, std::map<uint32_t, agentroot::common::Bytes>> pcr_references;
  struct Operator {
    std::string id, fingerprint;
    std::vector<std::string> roles;
    std::string name;  // display name; the id when absent
  };
  std::vector<Operator> bootstrap_operators;
};

Result<toml::table> ParseConfig(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return agentroot::common::InvalidArgumentError("config " + path + ": " + std::string(e.description()) + " at " +
                                                   where.str());
  }
}

// The [issuer_key] section: read at start and again on SIGHUP.
Status LoadIssuerKeySection(const toml::table& t, Settings& s) {
  s.key_backend = t["issuer_key"]["backend"].value_or(s.key_backend);
  s.key_module = t["issuer_key"]["module"].value_or(s.key_module);
  s.key_token = t["issuer_key"]["token"].value_or(s.key_token);
  s.key_pin_env = t["issuer_key"]["pin_env"].value_or(s.key_pin_env);
  s.key_id = t["issuer_key"]["key_id"].value_or(s.key_id);
  s.key_dir = t["issuer_key"]["dir"].value_or(s.key_dir);
  s.key_published_ids.clear();
  if (auto node = t["issuer_key"]["published_key_ids"]; node) {
    auto* ids = node.as_array();
    if (ids == nullptr) return agentroot::common::InvalidArgumentError("issuer_key.published_key_ids must be an array");
    for (auto& id : *ids) {
      auto text = id.value<std::string>();
      if (!text || text->empty()) {
        return agentroot::common::InvalidArgumentError("issuer_key.published_key_ids holds non-empty strings");
      }
      s.key_published_ids.push_back(*text);
    }
  }
  return Status::Ok();
}

Status LoadToml(Settings& s) {
  AR_ASSIGN_OR_RETURN(toml::table t, ParseConfig(s.config_path));
  s.listen = t["server"]["listen"].value_or(s.listen);
  s.tls_certificate = t["server"]["tls_certificate"].value_or(s.tls_certificate);
  s.tls_private_key = t["server"]["tls_private_key"].value_or(s.tls_private_key);
  s.operator_ca = t["server"]["operator_ca"].value_or(s.operator_ca);
  s.inline_handlers = t["server"]["inline_handlers"].value_or(s.inline_handlers);
  s.threads = t["server"]["threads"].value_or(s.threads);
  s.workers = t["server"]["workers"].value_or(s.workers);
  s.issuer = t["verifier"]["issuer"].value_or(s.issuer);
  s.trust_domain = t["verifier"]["trust_domain"].value_or(s.trust_domain);
  s.manufacturer_roots = t["verifier"]["manufacturer_roots"].value_or(s.manufacturer_roots);
  s.measurement_pcr = t["verifier"]["measurement_pcr"].value_or(s.measurement_pcr);
  s.require_dpop_nonce = t["verifier"]["require_dpop_nonce"].value_or(s.require_dpop_nonce);
  s.jit_max_seconds = t["verifier"]["jit_max_seconds"].value_or(s.jit_max_seconds);
  s.token_rate_per_minute = t["verifier"]["token_rate_per_minute"].value_or(s.token_rate_per_minute);
  s.challenge_rate_per_minute = t["verifier"]["challenge_rate_per_minute"].value_or(s.challenge_rate_per_minute);
  if (auto* groups = t["verifier"]["auto_approve_groups"].as_array()) {
    for (auto& g : *groups) s.auto_approve_groups.push_back(g.value_or(std::string()));
  }
  s.store_uri = t["store"]["uri"].value_or(s.store_uri);
  AR_RETURN_IF_ERROR(LoadIssuerKeySection(t, s));
  if (auto* refs = t["pcr_references"].as_table()) {
    for (auto& [group, pcrs] : *refs) {
      auto* table = pcrs.as_table();
      if (table == nullptr) return agentroot::common::InvalidArgumentError("pcr_references." + std::string(group.str()) + " must be a table");
      for (auto& [index, value] : *table) {
        auto bytes = agentroot::common::HexDecode(value.value_or(std::string()));
        if (!bytes.ok() || bytes->size() != 32) {
          return agentroot::common::InvalidArgumentError("pcr_references: values are 64 hex digits");
        }
        s.pcr_references[std::string(group.str())][static_cast<uint32_t>(std::stoul(std::string(index.str())))] = *bytes;
      }
    }
  }
  if (auto* ops = t["bootstrap_operators"].as_array()) {
    for (auto& entry : *ops) {
      auto* op = entry.as_table();
      if (op == nullptr) return agentroot::common::InvalidArgumentError("bootstrap_operators entries are tables");
      Settings::Operator o{(*op)["id"].value_or(std::string()), (*op)["certificate_sha256"].value_or(std::string()), {},
                           (*op)["name"].value_or(std::string())};
      if (auto* roles = (*op)["roles"].as_array()) {
        for (auto& r : *roles) o.roles.push_back(r.value_or(std::string()));
      }
      s.bootstrap_operators.push_back(std::move(o));
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<agentroot::hsm::KeyManager>> OpenKeyManager(const Settings& s) {
  if (s.key_backend == "pkcs11") {
    const char* pin = std::getenv(s.key_pin_env.c_str());
    if (pin == nullptr || *pin == '\0') {
      return agentroot::common::FailedPreconditionError("issuer key: set the PIN in $" + s.key_pin_env);
    }
    agentroot::hsm::Pkcs11Config config;
    config.module_path = s.key_module;
    config.token_label = s.key_token;
    config.pin = agentroot::common::SecretBytes(agentroot::common::AsBytes(pin));
    AR_ASSIGN_OR_RETURN(auto pkcs11, agentroot::hsm::Pkcs11KeyManager::Create(std::move(config)));
    return std::unique_ptr<agentroot::hsm::KeyManager>(std::move(pkcs11));
  }
  if (s.key_backend == "file") {
    if (!s.dev) {
      return agentroot::common::FailedPreconditionError(
          "issuer key: the file backend keeps the key unprotected on disk; it is allowed only with --dev");
    }
    if (s.key_dir.empty()) return agentroot::common::InvalidArgumentError("issuer key: issuer_key.dir is required");
    AR_ASSIGN_OR_RETURN(auto software, agentroot::hsm::SoftwareKeyManager::Create(
                                           s.key_dir, agentroot::hsm::InsecureKeys::kAcceptedForTesting));
    return std::unique_ptr<agentroot::hsm::KeyManager>(std::move(software));
  }
  return agentroot::common::InvalidArgumentError("issuer key: backend must be pkcs11 or file");
}

// A key's public JWK carrying its id as kid and its algorithm as alg.
Result<agentroot::common::Jwk> PublishedJwk(const agentroot::hsm::Key& key, const std::string& id) {
  Json j = key.public_jwk().ToJson();
  j["kid"] = id;
  j["alg"] = std::string(agentroot::common::JwsAlgorithmName(key.algorithm()));
  return agentroot::common::Jwk::FromJson(j);
}

// An hsm::Key whose JWK carries the configured kid.
class KidSigner final : public agentroot::common::Signer {
 public:
  KidSigner(std::shared_ptr<agentroot::hsm::Key> key, agentroot::common::Jwk jwk)
      : key_(std::move(key)), jwk_(std::move(jwk)) {}
  agentroot::common::JwsAlgorithm algorithm() const override { return key_->algorithm(); }
  const agentroot::common::Jwk& public_jwk() const override { return jwk_; }
  Result<agentroot::common::Bytes> SignDigest(agentroot::common::ByteView digest) const override {
    return key_->SignDigest(digest);
  }

 private:
  std::shared_ptr<agentroot::hsm::Key> key_;
  agentroot::common::Jwk jwk_;
};

struct IssuerKeySet {
  std::shared_ptr<const agentroot::common::Signer> signer;  // issuer_key.key_id
  std::vector<agentroot::common::Jwk> published;            // issuer_key.published_key_ids
};

// Every key by id from one KeyManager. Only the signing key at first start
// is generated when missing; a missing published key is an error.
Result<IssuerKeySet> LoadIssuerKeys(const Settings& s, bool generate_missing_signer) {
  AR_ASSIGN_OR_RETURN(auto manager, OpenKeyManager(s));
  auto key = manager->Get(s.key_id);
  if (key.status().code() == agentroot::common::StatusCode::kNotFound && generate_missing_signer) {
    LogJson("info", "generating the issuer key", {{"backend", s.key_backend}, {"key_id", s.key_id}});
    key = manager->Generate(s.key_id, agentroot::hsm::KeyPolicy{});
  }
  if (!key.ok()) return key.status().WithContext("issuer_key.key_id \"" + s.key_id + "\"");
  IssuerKeySet out;
  // The keys outlive the manager (backends keep what a Key needs alive).
  AR_ASSIGN_OR_RETURN(auto jwk, PublishedJwk(**key, s.key_id));
  out.signer = std::make_shared<KidSigner>(std::move(key).value(), std::move(jwk));
  for (const std::string& id : s.key_published_ids) {
    auto published = manager->Get(id);
    if (published.status().code() == agentroot::common::StatusCode::kNotFound) {
      return agentroot::common::NotFoundError("issuer_key.published_key_ids: no key \"" + id + "\" in the " +
                                              s.key_backend + " backend (create it there first)");
    }
    if (!published.ok()) return published.status().WithContext("issuer_key.published_key_ids \"" + id + "\"");
    AR_ASSIGN_OR_RETURN(auto published_jwk, PublishedJwk(**published, id));
    out.published.push_back(std::move(published_jwk));
  }
  return out;
}

// SIGHUP: the [issuer_key] section again, all keys loaded, then one swap.
// Anything wrong leaves the keys in force as they were.
void ReloadIssuerKeys(const Settings& running, agentroot::attestation::VerifierCore& core) {
  if (running.config_path.empty()) {
    LogJson("warning", "SIGHUP: no config file to reload");
    return;
  }
  auto fail = [](const Status& status) {
    LogJson("error", "issuer key reload refused; the current keys stay in force", {{"error", status.ToString()}});
  };
  auto table = ParseConfig(running.config_path);
  if (!table.ok()) return fail(table.status());
  Settings next;  // defaults, then the file's [issuer_key]
  next.dev = running.dev;
  if (Status st = LoadIssuerKeySection(*table, next); !st.ok()) return fail(st);
  auto keys = LoadIssuerKeys(next, /*generate_missing_signer=*/false);
  if (!keys.ok()) return fail(keys.status());
  const std::string old_kid = core.issuer_keys()->signer->public_jwk().kid();
  auto rotated = core.RotateIssuerKeys(keys->signer, keys->published, "config");
  if (!rotated.ok()) return fail(rotated.status());
  LogJson("info", *rotated ? "issuer keys rotated" : "issuer keys unchanged",
      {{"old_kid", old_kid}, {"kid", next.key_id}, {"published_key_ids", next.key_published_ids}});
}

// `flags` holds the command line; `given` names the flags actually used.
// The file is read first, then every given flag overrides its setting.
Status Run(const Settings& flags, const std::set<std::string>& given) {
  Settings s;
  s.config_path = flags.config_path;
  if (!s.config_path.empty()) AR_RETURN_IF_ERROR(LoadToml(s));
  auto take = [&](const char* name, std::string Settings::*field) {
    if (given.count(name) != 0) s.*field = flags.*field;
  };
  take("--listen", &Settings::listen);
  take("--tls-certificate", &Settings::tls_certificate);
  take("--tls-private-key", &Settings::tls_private_key);
  take("--operator-ca", &Settings::operator_ca);
  take("--issuer", &Settings::issuer);
  take("--trust-domain", &Settings::trust_domain);
  take("--manufacturer-roots", &Settings::manufacturer_roots);
  take("--store", &Settings::store_uri);
  s.dev = flags.dev;
  for (auto [value, name] : {std::pair{&s.issuer, "verifier.issuer"}, std::pair{&s.trust_domain, "verifier.trust_domain"},
                             std::pair{&s.store_uri, "store.uri"},
                             std::pair{&s.tls_certificate, "server.tls_certificate"},
                             std::pair{&s.tls_private_key, "server.tls_private_key"}}) {
    if (value->empty()) return agentroot::common::InvalidArgumentError(std::string(name) + " is required (config or flag)");
  }
  AR_ASSIGN_OR_RETURN(agentroot::http::TcpListenOptions tcp,
                      agentroot::http::TlsListenerFromFiles(s.listen, "server.listen", s.tls_certificate,
                                                            "server.tls_certificate", s.tls_private_key,
                                                            "server.tls_private_key"));

  agentroot::http::BlockShutdownSignals(/*reload=*/true);
  // Manufacturer CAs may also (or only) be trust anchors in the registry.
  std::string roots;
  if (!s.manufacturer_roots.empty()) {
    AR_ASSIGN_OR_RETURN(roots, ReadConfiguredFile(s.manufacturer_roots, "verifier.manufacturer_roots"));
  }
  std::string operator_ca;
  if (!s.operator_ca.empty()) {
    AR_ASSIGN_OR_RETURN(operator_ca, ReadConfiguredFile(s.operator_ca, "server.operator_ca"));
  }

  AR_ASSIGN_OR_RETURN(auto store, agentroot::attestation::store::Store::Open(s.store_uri, agentroot::common::Clock::System()));
  std::shared_ptr<agentroot::attestation::store::Store> shared_store(std::move(store));
  for (const auto& op : s.bootstrap_operators) {
    if (shared_store->GetOperator(op.id).ok()) continue;
    agentroot::attestation::store::Operator record;
    record.id = op.id;
    record.display_name = op.name.empty() ? op.id : op.name;
    record.client_cert_fingerprint = op.fingerprint;
    for (const auto& r : op.roles) {
      AR_ASSIGN_OR_RETURN(auto role, agentroot::attestation::store::ParseRole(r));
      record.roles.push_back(role);
    }
    agentroot::attestation::store::AuditRecord audit;
    audit.actor = "bootstrap";
    audit.action = "operator.create";
    audit.subject = op.id;
    AR_RETURN_IF_ERROR(shared_store->CreateOperator(record, &audit));
    LogJson("info", "bootstrap operator created", {{"operator", op.id}});
  }

  AR_ASSIGN_OR_RETURN(IssuerKeySet issuer_keys, LoadIssuerKeys(s, /*generate_missing_signer=*/true));

  agentroot::attestation::VerifierConfig config;
  config.issuer = s.issuer;
  config.token_endpoint = s.issuer + "/oauth/token";
  config.trust_domain = s.trust_domain;
  config.manufacturer_roots_pem = roots;
  config.auto_approve_groups = s.auto_approve_groups;
  config.pcr_references = s.pcr_references;
  config.measurement_pcr = s.measurement_pcr;
  config.require_dpop_nonce = s.require_dpop_nonce;
  config.operator_ca_pem = operator_ca;
  config.jit_max_seconds = s.jit_max_seconds;
  config.token_rate_per_minute = s.token_rate_per_minute;
  config.challenge_rate_per_minute = s.challenge_rate_per_minute;
  AR_ASSIGN_OR_RETURN(auto core, agentroot::attestation::VerifierCore::Create(
                                     config, shared_store, issuer_keys.signer, issuer_keys.published,
                                     agentroot::common::Clock::System()));
  std::shared_ptr<agentroot::attestation::VerifierCore> shared_core(std::move(core));

  agentroot::http::ServerOptions options;
  if (!operator_ca.empty()) {
    tcp.tls.client_auth = agentroot::http::ClientAuth::kOptional;
    tcp.tls.client_ca_pem = operator_ca;
  }
  const std::string tcp_address = tcp.address;
  options.tcp = std::move(tcp);
  options.inline_handlers = s.inline_handlers;
  options.io_threads = s.threads;
  options.worker_threads = s.workers;
  AR_ASSIGN_OR_RETURN(auto server, agentroot::http::HttpServer::Create(std::move(options)));
  agentroot::attestation::VerifierService service(shared_core);
  AR_RETURN_IF_ERROR(service.Register(*server));
  AR_RETURN_IF_ERROR(server->Start());
  LogJson("info", "listening", {{"address", tcp_address}, {"port", server->port()}, {"issuer", s.issuer},
                            {"store", shared_store->backend()}, {"issuer_key", s.key_backend},
                            {"kid", s.key_id}, {"published_key_ids", s.key_published_ids}});
  int sig = agentroot::http::WaitForShutdownSignal([&] { ReloadIssuerKeys(s, *shared_core); });
  LogJson("info", "shutting down", {{"signal", sig}});
  server->Stop(std::chrono::seconds(10));
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  // tss2-mu logs every structure it rejects; untrusted input must not steer
  // the log volume.
  setenv("TSS2_LOG", "all+NONE", 1);
  CLI::App app{
      "agentroot-verifier: enrolls TPM hosts, appraises agent evidence and issues short-lived, DPoP-bound tokens.\n"
      "Configure with a TOML file (see config/verifier.example.toml); flags override single settings.\n"
      "Example: AGENTROOT_ISSUER_PIN=... agentroot-verifier --config /etc/agentroot/verifier.toml"};
  Settings s;
  app.add_option("-c,--config", s.config_path, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--listen", s.listen, "ADDRESS:PORT to serve HTTPS on (default 127.0.0.1:8443)");
  app.add_option("--tls-certificate", s.tls_certificate, "Server certificate chain (PEM)");
  app.add_option("--tls-private-key", s.tls_private_key, "Server private key (PEM)");
  app.add_option("--operator-ca", s.operator_ca, "CA that issues operator client certificates (PEM)");
  app.add_option("--issuer", s.issuer, "Issuer URL, e.g. https://verifier.example:8443");
  app.add_option("--trust-domain", s.trust_domain, "SPIFFE trust domain of agent ids");
  app.add_option("--manufacturer-roots", s.manufacturer_roots, "Trusted TPM manufacturer CA certificates (PEM)");
  app.add_option("--store", s.store_uri, "sqlite:/path/file.db or postgresql://...");
  app.add_flag("--dev", s.dev, "Development mode: allows the unprotected file issuer key");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::set<std::string> given;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() > 0) given.insert(option->get_name());
  }
  Status status = Run(s, given);
  if (!status.ok()) {
    std::fprintf(stderr, "agentroot-verifier: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
