// Live issuer-key rotation of the real agentroot-verifier process (issue 4):
// the issuer keys live in a SoftHSM2 token (PIN from $AGENTROOT_ISSUER_PIN),
// the JWKS starts with the next key already published, and two SIGHUPs with
// a rewritten [issuer_key] section switch to it and retire the old one. A
// resource server (AccessTokenValidator + JwksCache fetching
// /.well-known/jwks.json over HTTPS) checks which tokens validate at each
// step. A bad config in between changes nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agentroot/common/jws.h"
#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/store/store.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"
#include "agentroot/hsm/testing/scoped_softhsm_token.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/http/client.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "verifier_process.h"

namespace agentroot {
namespace {

namespace fs = std::filesystem;
using common::Bytes;
using common::Json;
using namespace std::chrono_literals;

constexpr char kAgent[] = "spiffe://example.org/agent/crm-bot";
constexpr char kAudience[] = "https://crm.example";
constexpr char kIssuer[] = "https://verifier.test";
constexpr char kTokenEndpoint[] = "https://verifier.test/oauth/token";
constexpr char kResource[] = "https://crm.example/v1/accounts";
constexpr uint32_t kPcr = 15;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  // Through a rename, so the verifier never reads half a file.
  fs::path tmp = path;
  tmp += ".tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, path);
}

std::string B64(common::ByteView b) { return common::Base64UrlEncode(b); }

Json Parse(const http::Response& r) { return Json::parse(r.body, nullptr, false); }

std::string KidOf(const std::string& jwt) {
  return common::ParseJwsCompact(jwt).value().header["kid"].get<std::string>();
}

std::string Config(const fs::path& dir, const std::string& key_id, const std::vector<std::string>& published,
                   const std::string& token_label) {
  std::string list;
  for (const std::string& id : published) list += (list.empty() ? "\"" : ", \"") + id + "\"";
  return "[server]\nlisten = \"127.0.0.1:0\"\n"
         "tls_certificate = \"" + (dir / "server.crt").string() + "\"\n"
         "tls_private_key = \"" + (dir / "server.key").string() + "\"\n"
         "threads = 2\n"
         "[verifier]\nissuer = \"" + std::string(kIssuer) + "\"\ntrust_domain = \"example.org\"\n"
         "manufacturer_roots = \"" + (dir / "roots.pem").string() + "\"\n"
         "auto_approve_groups = [\"crm-hosts\"]\n"
         "token_rate_per_minute = 4\nchallenge_rate_per_minute = 3\n"
         "[store]\nuri = \"sqlite:" + (dir / "verifier.db").string() + "\"\n"
         "[issuer_key]\nbackend = \"pkcs11\"\nmodule = \"" + hsm::testing::ScopedSoftHsmToken::module_path() + "\"\n"
         "token = \"" + token_label + "\"\npin_env = \"AGENTROOT_ISSUER_PIN\"\n"
         "key_id = \"" + key_id + "\"\npublished_key_ids = [" + list + "]\n";
}

TEST(VerifierRotationE2eTest, SighupPublishesSwitchesAndRetiresIssuerKeysInTheRunningService) {
  auto softhsm = hsm::testing::ScopedSoftHsmToken::Create("agentroot-issuer");
  ASSERT_TRUE(softhsm.ok()) << softhsm.status().ToString();
  {
    // Both keys exist in the token before the verifier starts (runbook step 1).
    hsm::Pkcs11Config config;
    config.module_path = hsm::testing::ScopedSoftHsmToken::module_path();
    config.token_label = (*softhsm)->label();
    config.pin = (*softhsm)->UserPinSecret();
    auto manager = hsm::Pkcs11KeyManager::Create(std::move(config));
    ASSERT_TRUE(manager.ok()) << manager.status().ToString();
    ASSERT_TRUE((*manager)->Generate("issuer-1", hsm::KeyPolicy{}).ok());
    ASSERT_TRUE((*manager)->Generate("issuer-2", hsm::KeyPolicy{}).ok());
  }  // the module is finalised here; the child opens the token itself
  ::setenv("AGENTROOT_ISSUER_PIN", (*softhsm)->user_pin().c_str(), 1);

  auto fleet = simulators::testing::ScopedFleet::Create(1);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const fs::path dir = (*fleet)->info().dir / "rotation";
  fs::create_directories(dir);
  auto pki = std::move(http::testing::TestPki::Create("rotation test CA")).value();
  auto server_cred = std::move(pki->IssueServer()).value();
  WriteFile(dir / "server.crt", server_cred.certificate_pem);
  WriteFile(dir / "server.key", std::string(common::ToString(server_cred.private_key_pem.Reveal())));
  WriteFile(dir / "roots.pem", ReadFile((*fleet)->info().manufacturer_ca));
  const fs::path config = dir / "verifier.toml";
  const std::string label = (*softhsm)->label();
  WriteFile(config, Config(dir, "issuer-1", {"issuer-2"}, label));

  e2e::VerifierProcessOptions process_options;
  process_options.config = config;
  process_options.log = dir / "verifier.log";
  process_options.ca_pem = pki->ca_certificate_pem();
  auto process = e2e::VerifierProcess::Start(std::move(process_options));
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  e2e::VerifierProcess& verifier = **process;
  const int port = verifier.port();
  auto make_client = [&] {
    http::ClientOptions options;
    options.base_url = "https://127.0.0.1:" + std::to_string(port);
    options.ca_pem = pki->ca_certificate_pem();
    return std::move(http::HttpClient::Create(std::move(options))).value();
  };
  auto client = make_client();
  auto jwks_kids = [&] {
    std::vector<std::string> kids;
    auto r = client->Get("/.well-known/jwks.json");
    if (r.ok() && r->status == 200) {
      const Json jwks = Parse(*r);
      for (const Json& k : jwks["keys"]) kids.push_back(k["kid"].get<std::string>());
    }
    return kids;
  };
  // After a SIGHUP: the JWKS the running service publishes, once it equals `want`.
  auto await_jwks = [&](const std::vector<std::string>& want) {
    for (int i = 0; i < 100 && jwks_kids() != want; ++i) std::this_thread::sleep_for(100ms);
    return jwks_kids();
  };
  EXPECT_EQ(jwks_kids(), (std::vector<std::string>{"issuer-1", "issuer-2"}));

  // A host, an agent and a certified TPM key: enrollment over HTTPS (the
  // group is auto-approved); governance written to the shared store.
  hsm::tpm::TpmDeviceOptions topt;
  topt.tcti = (*fleet)->info().machines[0].tcti;
  auto device = std::move(hsm::tpm::TpmDevice::Open(std::move(topt))).value();
  auto attestor = std::move(hsm::tpm::TpmAttestor::Create(device, dir / "m0")).value();
  auto tpm_keys = std::move(hsm::tpm::TpmKeyManager::Create(device, dir / "m0")).value();
  auto ak = attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  Json enroll = {{"ek_certificate", B64(*attestor->ReadEkCertificate(hsm::tpm::EkKind::kRsa2048))},
                 {"ek_public", B64(*attestor->ReadEkPublic(hsm::tpm::EkKind::kRsa2048))},
                 {"ak_public", B64(ak->tpm2b_public)},
                 {"ek_intermediates_pem", ReadFile((*fleet)->info().manufacturer_intermediate)},
                 {"host_group", "crm-hosts"}};
  auto challenge = client->Post("/v1/enroll", enroll.dump());
  ASSERT_TRUE(challenge.ok() && challenge->status == 200) << (challenge.ok() ? challenge->body : "");
  Json c = Parse(*challenge);
  auto secret = attestor->ActivateCredential("ak", hsm::tpm::EkKind::kRsa2048,
                                             *common::Base64UrlDecode(c["credential_blob"].get<std::string>()),
                                             *common::Base64UrlDecode(c["encrypted_secret"].get<std::string>()));
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  const std::string host = c["host_id"];
  auto activated = client->Post("/v1/enroll/" + host + "/activate",
                                Json{{"activation_id", c["activation_id"]}, {"secret", B64(secret->Reveal())}}.dump());
  ASSERT_TRUE(activated.ok() && activated->status == 200) << (activated.ok() ? activated->body : "");

  auto store = attestation::store::Store::Open("sqlite:" + (dir / "verifier.db").string(), common::Clock::System());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (auto [id, role] : {std::pair{"alice", attestation::store::Role::kOwner},
                          std::pair{"bob", attestation::store::Role::kReviewer}}) {
    attestation::store::Operator op;
    op.id = id;
    op.display_name = id;
    op.roles = {role};
    ASSERT_TRUE((*store)->CreateOperator(op, nullptr).ok());
  }
  attestation::store::Agent agent;
  agent.id = kAgent;
  agent.name = "crm-bot";
  agent.host_group = "crm-hosts";
  agent.allowed_scopes = {"crm.read"};
  agent.allowed_audiences = {kAudience};
  agent.max_token_ttl_seconds = 300;
  agent.expires_at = common::Clock::System().NowUnixSeconds() + 86400;
  agent.owners = {"alice"};
  ASSERT_TRUE((*store)->CreateAgent(agent, nullptr).ok());
  auto version = (*store)->AddManifest(kAgent, Json{{"exe_sha256", std::string(64, 'a')}, {"files", Json::object()}},
                                       nullptr);
  ASSERT_TRUE(version.ok());
  ASSERT_TRUE((*store)->ReviewManifest(kAgent, *version, attestation::store::ManifestStatus::kApproved, "bob",
                                       "reviewed", nullptr)
                  .ok());

  auto key = tpm_keys->Generate("crm-bot", hsm::KeyPolicy{});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto nonce_of = [&](const char* purpose) {
    auto r = client->Post("/v1/hosts/" + host + "/challenges", Json{{"purpose", purpose}}.dump());
    return r.ok() && r->status == 201 ? Parse(*r)["nonce"].get<std::string>() : std::string();
  };
  std::string nonce = nonce_of("certify");
  auto certified = attestor->Certify("ak", **key, attestation::CertifyQualifyingData(common::AsBytes(nonce)));
  ASSERT_TRUE(certified.ok()) << certified.status().ToString();
  auto registered = client->Post(
      "/v1/hosts/" + host + "/agent-keys",
      Json{{"agent_id", kAgent}, {"nonce", nonce}, {"key_public", B64((*key)->native_public())},
           {"certify_attest", B64(certified->tpms_attest)}, {"certify_signature", B64(certified->tpmt_signature)}}
          .dump());
  ASSERT_TRUE(registered.ok() && registered->status == 201) << (registered.ok() ? registered->body : "");

  // Measurement, quote and an EAR; then tokens for it.
  attestation::MeasurementEvent event;
  event.sequence = 1;
  event.agent_id = kAgent;
  event.exe_path = "/opt/agents/crm-bot";
  event.exe_sha256_hex = std::string(64, 'a');
  ASSERT_TRUE(attestor->PcrExtend(kPcr, attestation::EventDigest(event)).ok());
  auto attest = [&]() -> std::string {
    std::string n = nonce_of("attest");
    auto key_name = attestation::TpmPublic::Parse((*key)->native_public())->name();
    std::vector<hsm::tpm::PcrBank> selection = {{hsm::tpm::kTpmAlgSha256, {0, kPcr}}};
    auto quote = attestor->Quote("ak", selection,
                                 attestation::QualifyingData(common::AsBytes(n), key_name, attestation::EventDigest(event)));
    auto values = attestor->PcrRead(selection);
    if (!quote.ok() || !values.ok()) return "";
    Json pcrs = Json::object();
    for (const auto& [bank_pcr, value] : *values) pcrs[std::to_string(bank_pcr.second)] = common::HexEncode(value);
    auto r = client->Post("/v1/attest", Json{{"host_id", host}, {"agent_id", kAgent}, {"nonce", n},
                                             {"agent_key_public", B64((*key)->native_public())},
                                             {"quote_attest", B64(quote->tpms_attest)},
                                             {"quote_signature", B64(quote->tpmt_signature)},
                                             {"pcr_values", pcrs},
                                             {"measurement_log", attestation::SerializeLog({event})}}
                                            .dump());
    return r.ok() && r->status == 200 ? Parse(*r)["ear"].get<std::string>() : "";
  };
  auto token_for = [&](const std::string& ear) -> common::Result<http::Response> {
    http::ClientRequest r;
    r.method = "POST";
    r.target = "/oauth/token";
    r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace("DPoP", *attestation::CreateDpopProof(**key, "POST", kTokenEndpoint,
                                                            common::Clock::System().NowUnixSeconds()));
    r.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type="
             "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&scope=crm.read&audience=https%3A%2F%2Fcrm.example"
             "&subject_token=" + ear;
    return client->Send(r);
  };
  auto token = [&](const std::string& ear) -> std::string {
    auto r = token_for(ear);
    if (!r.ok() || r->status != 200) {
      ADD_FAILURE() << (r.ok() ? r->body : r.status().ToString());
      return "";
    }
    return Parse(*r)["access_token"].get<std::string>();
  };

  // The resource server: the validation library with a JWKS cache that
  // fetches over HTTPS.
  auto jwks_client = make_client();
  auto make_cache = [&] {
    return std::make_shared<attestation::JwksCache>(
        [&]() -> common::Result<std::string> {
          AR_ASSIGN_OR_RETURN(http::Response r, jwks_client->Get("/.well-known/jwks.json"));
          if (r.status != 200) return common::UnavailableError("JWKS: HTTP " + std::to_string(r.status));
          return r.body;
        },
        common::Clock::System(), attestation::JwksCache::Options{});
  };
  attestation::AccessTokenPolicy policy;
  policy.issuer = kIssuer;
  policy.audience = kAudience;
  auto replay = std::make_shared<attestation::InMemoryReplayCache>(1000, common::Clock::System());
  auto cache = make_cache();
  auto validator = std::move(attestation::AccessTokenValidator::Create(policy, cache, replay)).value();
  auto validate = [&](const attestation::AccessTokenValidator& v, const std::string& access_token) {
    std::vector<std::string> proof = {*attestation::CreateDpopProof(
        **key, "GET", kResource, common::Clock::System().NowUnixSeconds(), access_token)};
    return v.Validate("DPoP " + access_token, proof, "GET", kResource, "crm.read").status();
  };

  const std::string old_ear = attest();
  ASSERT_FALSE(old_ear.empty());
  const std::string old_token = token(old_ear);
  ASSERT_FALSE(old_token.empty());
  EXPECT_EQ(KidOf(old_token), "issuer-1");
  EXPECT_TRUE(validate(*validator, old_token).ok());
  EXPECT_EQ(cache->fetch_count(), 1);

  // SIGHUP 1 — switch: issuer-2 signs, issuer-1 stays published.
  WriteFile(config, Config(dir, "issuer-2", {"issuer-1"}, label));
  verifier.Signal(SIGHUP);
  ASSERT_EQ(await_jwks({"issuer-2", "issuer-1"}), (std::vector<std::string>{"issuer-2", "issuer-1"})) << verifier.Log();
  const std::string new_token = token(old_ear);  // the EAR signed by issuer-1 is still accepted
  ASSERT_FALSE(new_token.empty());
  EXPECT_EQ(KidOf(new_token), "issuer-2");
  const std::string new_ear = attest();
  ASSERT_FALSE(new_ear.empty());
  EXPECT_EQ(KidOf(new_ear), "issuer-2");
  EXPECT_TRUE(validate(*validator, old_token).ok());
  EXPECT_TRUE(validate(*validator, new_token).ok());
  // The resource server knew issuer-2 before it signed anything: no refetch.
  EXPECT_EQ(cache->fetch_count(), 1);

  // A bad config (a published key that is not in the token) changes nothing.
  WriteFile(config, Config(dir, "issuer-2", {"issuer-9"}, label));
  verifier.Signal(SIGHUP);
  for (int i = 0; i < 100 && verifier.Log().find("issuer key reload refused") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(verifier.Log().find("issuer-9"), std::string::npos) << verifier.Log();
  EXPECT_EQ(jwks_kids(), (std::vector<std::string>{"issuer-2", "issuer-1"}));
  EXPECT_EQ(KidOf(token(old_ear)), "issuer-2");

  // SIGHUP 2 — retire issuer-1.
  WriteFile(config, Config(dir, "issuer-2", {}, label));
  verifier.Signal(SIGHUP);
  ASSERT_EQ(await_jwks({"issuer-2"}), (std::vector<std::string>{"issuer-2"})) << verifier.Log();
  auto refused = token_for(old_ear);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(Parse(*refused)["error"], "invalid_grant");
  auto introspected = client->Post("/oauth/introspect", "token=" + old_token, "application/x-www-form-urlencoded");
  ASSERT_TRUE(introspected.ok());
  EXPECT_EQ(Parse(*introspected)["active"], false);
  // A resource server that fetches the JWKS now no longer accepts issuer-1's token.
  auto fresh_validator = std::move(attestation::AccessTokenValidator::Create(policy, make_cache(), replay)).value();
  EXPECT_FALSE(validate(*fresh_validator, old_token).ok());
  EXPECT_TRUE(validate(*fresh_validator, new_token).ok());
  EXPECT_EQ(KidOf(token(new_ear)), "issuer-2");

  // The rate limits from the config (4 tokens, 3 challenges a minute; this
  // test used exactly that many): 429 with Retry-After.
  auto limited = token_for(new_ear);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->status, 429) << limited->body;
  EXPECT_EQ(Parse(*limited)["error"], "invalid_grant");
  auto retry = http::FindHeader(limited->headers, "Retry-After");
  ASSERT_TRUE(retry.has_value());
  EXPECT_GE(std::stoi(std::string(*retry)), 1);
  EXPECT_LE(std::stoi(std::string(*retry)), 60);
  auto challenge_limited = client->Post("/v1/hosts/" + host + "/challenges", R"({"purpose":"attest"})");
  ASSERT_TRUE(challenge_limited.ok());
  EXPECT_EQ(challenge_limited->status, 429) << challenge_limited->body;
  EXPECT_EQ(Parse(*challenge_limited)["type"], "urn:agentroot:problem:rate_limited");
  EXPECT_TRUE(http::FindHeader(challenge_limited->headers, "Retry-After").has_value());

  EXPECT_EQ(verifier.Stop(), 0) << verifier.Log();
  // Two rotations in the audit log, by the config, with old and new kid.
  auto exported = (*store)->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(exported.ok());
  std::vector<std::pair<std::string, std::string>> rotations;
  std::istringstream lines(exported->jsonl);
  for (std::string line; std::getline(lines, line);) {
    Json r = Json::parse(line);
    if (r["action"] == "issuer_key.rotate" && r["decision"] == "info" && r["actor"] == "config") {
      rotations.emplace_back(r["details"]["old_kid"], r["details"]["new_kid"]);
    }
  }
  EXPECT_EQ(rotations, (std::vector<std::pair<std::string, std::string>>{{"issuer-1", "issuer-2"},
                                                                         {"issuer-2", "issuer-2"}}));
  // No PIN and no whole token in the verifier's log (THREATS #20).
  const std::string log = verifier.Log();
  EXPECT_EQ(log.find((*softhsm)->user_pin()), std::string::npos);
  EXPECT_EQ(log.find(old_token), std::string::npos);
  ::unsetenv("AGENTROOT_ISSUER_PIN");
}

}  // namespace
}  // namespace agentroot
