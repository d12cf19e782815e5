#include "https_flow.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "agentroot/attestation/dpop.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/clock.h"

namespace agentroot::e2e {

namespace fs = std::filesystem;
using common::Bytes;
using common::Json;
using common::Result;

namespace {

std::string B64(const Bytes& b) { return common::Base64UrlEncode(b); }

// The response of a POST, or UNAVAILABLE when the transport failed.
Result<http::Response> PostJson(http::HttpClient& client, const std::string& target, const Json& body) {
  return client.Post(target, body.dump());
}

Result<Bytes> DecodeField(const Json& j, const char* name) {
  if (!j.is_object() || !j.contains(name) || !j[name].is_string()) {
    return common::InvalidArgumentError(std::string("response lacks \"") + name + "\"");
  }
  return common::Base64UrlDecode(j[name].get<std::string>());
}

}  // namespace

std::string ReadTextFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

Json ParseBody(const http::Response& response) { return Json::parse(response.body, nullptr, false); }

Result<TpmMachine> TpmMachine::Open(const std::string& tcti, const fs::path& state_dir) {
  hsm::tpm::TpmDeviceOptions options;
  options.tcti = tcti;
  TpmMachine m;
  AR_ASSIGN_OR_RETURN(m.device, hsm::tpm::TpmDevice::Open(std::move(options)));
  AR_ASSIGN_OR_RETURN(m.attestor, hsm::tpm::TpmAttestor::Create(m.device, state_dir));
  AR_ASSIGN_OR_RETURN(m.keys, hsm::tpm::TpmKeyManager::Create(m.device, state_dir));
  return m;
}

Result<Enrollment> EnrollHost(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor,
                              const simulators::FleetInfo& fleet, std::string_view host_group,
                              std::string_view ak_id) {
  AR_ASSIGN_OR_RETURN(auto ak, attestor.CreateAk(ak_id));
  AR_ASSIGN_OR_RETURN(Bytes ek_certificate, attestor.ReadEkCertificate(hsm::tpm::EkKind::kRsa2048));
  AR_ASSIGN_OR_RETURN(Bytes ek_public, attestor.ReadEkPublic(hsm::tpm::EkKind::kRsa2048));
  Json enroll = {{"ek_certificate", B64(ek_certificate)},
                 {"ek_public", B64(ek_public)},
                 {"ak_public", B64(ak.tpm2b_public)},
                 {"ek_intermediates_pem", ReadTextFile(fleet.manufacturer_intermediate)},
                 {"host_group", std::string(host_group)}};
  Enrollment out;
  AR_ASSIGN_OR_RETURN(out.challenge, PostJson(client, "/v1/enroll", enroll));
  if (out.challenge.status != 200) return out;
  const Json c = ParseBody(out.challenge);
  AR_ASSIGN_OR_RETURN(Bytes blob, DecodeField(c, "credential_blob"));
  AR_ASSIGN_OR_RETURN(Bytes encrypted_secret, DecodeField(c, "encrypted_secret"));
  AR_ASSIGN_OR_RETURN(common::SecretBytes secret,
                      attestor.ActivateCredential(ak_id, hsm::tpm::EkKind::kRsa2048, blob, encrypted_secret));
  out.host_id = c["host_id"].get<std::string>();
  Json activate = {{"activation_id", c["activation_id"]},
                   {"secret", B64(Bytes(secret.Reveal().begin(), secret.Reveal().end()))}};
  AR_ASSIGN_OR_RETURN(out.activation, PostJson(client, "/v1/enroll/" + out.host_id + "/activate", activate));
  return out;
}

Json AgentRegistration(std::string_view name, std::string_view host_group, std::string_view scope,
                       std::string_view audience, std::string_view owner, int64_t max_token_ttl) {
  return Json{{"name", std::string(name)},
              {"host_group", std::string(host_group)},
              {"scopes", {std::string(scope)}},
              {"audiences", {std::string(audience)}},
              {"max_token_ttl", max_token_ttl},
              {"expires_at", common::Clock::System().NowUnixSeconds() + 86400},
              {"owners", {std::string(owner)}}};
}

Result<http::Response> AddManifest(http::HttpClient& owner, std::string_view name, std::string_view exe_sha256_hex) {
  return PostJson(owner, "/v1/agents/" + std::string(name) + "/manifests",
                  Json{{"exe_sha256", std::string(exe_sha256_hex)}, {"files", Json::object()}});
}

Result<http::Response> ReviewManifest(http::HttpClient& reviewer, std::string_view name, int64_t version,
                                      bool approve) {
  return PostJson(reviewer, "/v1/agents/" + std::string(name) + "/manifests/" + std::to_string(version) + "/review",
                  Json{{"approve", approve}});
}

Result<std::string> Challenge(http::HttpClient& client, std::string_view host_id, std::string_view purpose) {
  AR_ASSIGN_OR_RETURN(http::Response r, PostJson(client, "/v1/hosts/" + std::string(host_id) + "/challenges",
                                                 Json{{"purpose", std::string(purpose)}}));
  const Json j = ParseBody(r);
  if (r.status != 201 || !j.is_object() || !j.contains("nonce") || !j["nonce"].is_string()) {
    return common::UnavailableError("challenge: " + std::to_string(r.status) + " " + r.body);
  }
  return j["nonce"].get<std::string>();
}

Result<http::Response> RegisterAgentKey(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor,
                                        std::string_view host_id, std::string_view agent_id, const hsm::Key& key,
                                        std::string_view ak_id) {
  AR_ASSIGN_OR_RETURN(std::string nonce, Challenge(client, host_id, "certify"));
  AR_ASSIGN_OR_RETURN(auto certified,
                      attestor.Certify(ak_id, key, attestation::CertifyQualifyingData(common::AsBytes(nonce))));
  return PostJson(client, "/v1/hosts/" + std::string(host_id) + "/agent-keys",
                  Json{{"agent_id", std::string(agent_id)},
                       {"nonce", nonce},
                       {"key_public", B64(key.native_public())},
                       {"certify_attest", B64(certified.tpms_attest)},
                       {"certify_signature", B64(certified.tpmt_signature)}});
}

attestation::MeasurementEvent AgentEvent(std::string_view agent_id, std::string_view exe_sha256_hex) {
  attestation::MeasurementEvent event;
  event.sequence = 1;
  event.agent_id = std::string(agent_id);
  event.exe_path = "/opt/agents/" + std::string(agent_id.substr(agent_id.rfind('/') + 1));
  event.exe_sha256_hex = std::string(exe_sha256_hex);
  return event;
}

Result<AttestCall> PrepareAttest(http::HttpClient& client, hsm::tpm::TpmAttestor& attestor, std::string_view host_id,
                                 std::string_view agent_id, const hsm::Key& key,
                                 const attestation::MeasurementEvent& event, uint32_t measurement_pcr,
                                 std::string_view ak_id) {
  AttestCall call;
  AR_ASSIGN_OR_RETURN(call.nonce, Challenge(client, host_id, "attest"));
  AR_ASSIGN_OR_RETURN(attestation::TpmPublic key_public, attestation::TpmPublic::Parse(key.native_public()));
  const std::vector<hsm::tpm::PcrBank> selection = {{hsm::tpm::kTpmAlgSha256, {0, measurement_pcr}}};
  AR_ASSIGN_OR_RETURN(auto quote,
                      attestor.Quote(ak_id, selection,
                                     attestation::QualifyingData(common::AsBytes(call.nonce), key_public.name(),
                                                                 attestation::EventDigest(event))));
  AR_ASSIGN_OR_RETURN(hsm::tpm::PcrValues values, attestor.PcrRead(selection));
  Json pcrs = Json::object();
  for (const auto& [bank_pcr, value] : values) pcrs[std::to_string(bank_pcr.second)] = common::HexEncode(value);
  call.body = Json{{"host_id", std::string(host_id)},
                   {"agent_id", std::string(agent_id)},
                   {"nonce", call.nonce},
                   {"agent_key_public", B64(key.native_public())},
                   {"quote_attest", B64(quote.tpms_attest)},
                   {"quote_signature", B64(quote.tpmt_signature)},
                   {"pcr_values", pcrs},
                   {"measurement_log", attestation::SerializeLog({event})}}
                  .dump();
  return call;
}

http::ClientRequest TokenRequest(std::string_view dpop_proof, std::string_view ear, std::string_view scope,
                                 std::string_view audience) {
  http::ClientRequest r;
  r.method = "POST";
  r.target = "/oauth/token";
  r.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  r.headers.emplace("DPoP", std::string(dpop_proof));
  r.body = "grant_type=" + http::FormUrlEncode("urn:ietf:params:oauth:grant-type:token-exchange") +
           "&subject_token_type=" + http::FormUrlEncode("urn:ietf:params:oauth:token-type:jwt") + "&scope=" + http::FormUrlEncode(scope) +
           "&audience=" + http::FormUrlEncode(audience) + "&subject_token=" + http::FormUrlEncode(ear);
  return r;
}

Result<std::string> TokenProof(const common::Signer& key, std::string_view token_endpoint) {
  return attestation::CreateDpopProof(key, "POST", token_endpoint, common::Clock::System().NowUnixSeconds());
}

}  // namespace agentroot::e2e
