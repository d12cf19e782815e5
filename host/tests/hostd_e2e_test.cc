// agentroot-hostd end to end: a swtpm machine, the verifier in process over
// real HTTPS on loopback, hostd's API on a real Unix socket, and this test
// process as the agent (its /proc/self/exe is the test binary, named by a
// manifest). Verifier, store and hostd share one FakeClock so token
// lifetimes can pass without sleeping.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agentroot/common/jws.h"
#include "agentroot/attestation/access_token.h"
#include "agentroot/attestation/verifier_service.h"
#include "agentroot/common/signer.h"
#include "agentroot/host/hostd.h"
#include "agentroot/host/verifier_client.h"
#include "agentroot/http/client.h"
#include "agentroot/http/server.h"
#include "agentroot/http/testing/raw_connection.h"
#include "agentroot/http/testing/test_pki.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "hostd_testbed.h"
#include "tpm_test_util.h"

namespace agentroot::host {
namespace {

namespace fs = std::filesystem;
using common::Json;

constexpr const char* kAgent = testing::kTestbedAgent;
constexpr const char* kCrm = testing::kTestbedCrm;
constexpr const char* kErp = testing::kTestbedErp;


Json Claims(const std::string& jwt) {
  return common::ParseJwsCompact(jwt, common::JwsPayload::kJsonObject).value().payload_json;
}

// The fixture is the shared testbed (host/testing/hostd_testbed.h): its
// members (core_, store_, clock_, config_, hostd_, ...) are used directly.
class HostdE2eTest : public ::testing::Test, protected testing::HostdTestbed {
 protected:
  void SetUp() override { ASSERT_TRUE(Init().ok()); }
  void TearDown() override { HostdTestbed::Stop(); }

  void StartVerifier(uint16_t port) { ASSERT_TRUE(HostdTestbed::StartVerifier(port).ok()); }
  void StartHostd() {
    common::Status s = HostdTestbed::StartHostd();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void StartApproved() {
    common::Status s = HostdTestbed::StartApproved();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void RegisterAgent() {
    common::Status s = HostdTestbed::RegisterAgent();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  http::Response Post(const std::string& target, const Json& body) {
    auto r = Socket()->Post(target, body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::Response{};
  }

  static std::string TypeOf(const http::Response& r) {
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("type", "") : "";
  }
};

TEST_F(HostdE2eTest, EnrollApproveTokenProofCacheRefusalsOutage) {
  StartHostd();
  // Enrolled, not approved: pending, and token requests say so.
  ASSERT_TRUE(hostd_->WaitForEnrollment("pending", std::chrono::seconds(20))) << hostd_->Status().dump();
  const std::string host = hostd_->host_id();
  auto pending = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(pending.status, 503);
  EXPECT_EQ(TypeOf(pending), "urn:agentroot:problem:hostd:host_pending") << pending.body;
  EXPECT_TRUE(http::FindHeader(pending.headers, "Retry-After").has_value());
  auto status = Socket()->Get("/v1/status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(Json::parse(status->body)["enrollment"], "pending");

  ASSERT_TRUE(core_->ApproveHost("carol", host).ok());
  hostd_->PollEnrollmentNow();
  ASSERT_TRUE(hostd_->WaitForEnrollment("approved", std::chrono::seconds(10))) << hostd_->Status().dump();
  RegisterAgent();

  // A token over the socket, bound to the agent's TPM key.
  auto issued = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(issued.status, 200) << issued.body;
  Json t = Json::parse(issued.body);
  const std::string token = t["access_token"];
  EXPECT_EQ(t["token_type"], "DPoP");
  EXPECT_EQ(t["agent_id"], kAgent);
  EXPECT_EQ(t["proof_mode"], "tpm");
  EXPECT_EQ(Claims(token)["cnf"]["jkt"], t["jkt"]);
  EXPECT_EQ(Claims(token)["sub"], kAgent);
  EXPECT_EQ(t["expires_at"].get<int64_t>(), clock_.NowUnixSeconds() + 300);

  // A proof for a request: accepted by a resource server with that token.
  const std::string url = std::string(kCrm) + "/v1/accounts";
  auto proof = Post("/v1/proof", {{"method", "GET"}, {"url", url}, {"access_token", token}});
  ASSERT_EQ(proof.status, 200) << proof.body;
  auto validator = Validator(kCrm);
  const std::vector<std::string> proofs = {Json::parse(proof.body)["dpop"].get<std::string>()};
  auto ok = validator->Validate("DPoP " + token, proofs, "GET", url, "crm.read");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  // The same proof again is a replay.
  EXPECT_FALSE(validator->Validate("DPoP " + token, proofs, "GET", url, "crm.read").ok());

  // Cached: the same token, no new acquisition.
  const uint64_t acquisitions = hostd_->stats().acquisitions;
  auto again = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(Json::parse(again.body)["access_token"], token);
  EXPECT_EQ(hostd_->stats().acquisitions, acquisitions);

  // 100 concurrent callers for a new cache key: one acquisition.
  {
    std::vector<std::thread> threads;
    std::mutex mu;
    std::set<std::string> tokens;
    std::atomic<int> failures{0};
    ProcessInfo self = Self();
    for (int i = 0; i < 100; ++i) {
      threads.emplace_back([&] {
        auto g = hostd_->Token(self, kErp, "crm.read");
        if (!g.ok()) {
          ++failures;
          return;
        }
        std::lock_guard<std::mutex> lock(mu);
        tokens.insert(g->access_token);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(tokens.size(), 1u);
    EXPECT_EQ(hostd_->stats().acquisitions, acquisitions + 1);
  }

  // Token and proof in one round trip.
  auto headers = Post("/v1/headers", {{"audience", kCrm}, {"scope", "crm.read"}, {"method", "POST"}, {"url", url}});
  ASSERT_EQ(headers.status, 200) << headers.body;
  Json h = Json::parse(headers.body);
  EXPECT_EQ(h["authorization"], "DPoP " + token);
  const std::vector<std::string> header_proofs = {h["dpop"].get<std::string>()};
  auto via_headers = validator->Validate(h["authorization"].get<std::string>(), header_proofs, "POST", url, "crm.read");
  EXPECT_TRUE(via_headers.ok()) << via_headers.status().ToString();

  // A process that matches no manifest (curl): unknown_agent, and recorded as a shadow agent.
  auto curl = simulators::testing::RunCommand(
      {"curl", "-s", "--unix-socket", config_.socket_path.string(), "-o", (dir_ / "curl.out").string(), "-w",
       "%{http_code}", "-H", "Content-Type: application/json", "-d",
       Json{{"audience", kCrm}, {"scope", "crm.read"}}.dump(), "http://hostd/v1/token"});
  ASSERT_TRUE(curl.ok()) << curl.status().ToString();
  EXPECT_EQ(curl->stdout_text, "403");
  std::ifstream curl_out(dir_ / "curl.out");
  std::string curl_body((std::istreambuf_iterator<char>(curl_out)), std::istreambuf_iterator<char>());
  EXPECT_NE(curl_body.find("urn:agentroot:problem:hostd:unknown_agent"), std::string::npos) << curl_body;
  std::ifstream shadow_log(config_.state_dir / "shadow_agents.jsonl");
  std::string shadow_line;
  ASSERT_TRUE(std::getline(shadow_log, shadow_line));
  EXPECT_NE(shadow_line.find("curl"), std::string::npos) << shadow_line;
  ASSERT_EQ(shadows_.size(), 1u);
  // Reported to the verifier in the background: an auditor sees it there,
  // and the line is marked reported.
  Json inventory = Json::array();
  for (int i = 0; i < 100 && inventory.empty(); ++i) {
    auto listed = core_->ListShadowAgents("dave", 10);
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    inventory = *listed;
    if (inventory.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(inventory.size(), 1u) << "the shadow agent never reached the verifier";
  EXPECT_EQ(inventory[0]["host_id"], host);
  EXPECT_NE(inventory[0]["exe_path"].get<std::string>().find("curl"), std::string::npos) << inventory.dump();
  EXPECT_EQ(inventory[0]["exe_sha256"].get<std::string>().size(), 64u);
  bool marked = false;
  for (int i = 0; i < 100 && !marked; ++i) {
    std::ifstream reread(config_.state_dir / "shadow_agents.jsonl");
    std::string line;
    marked = std::getline(reread, line) && Json::parse(line).value("reported", false);
    if (!marked) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(marked) << "shadow_agents.jsonl must say reported: true";
  EXPECT_EQ(hostd_->stats().shadow_agents_reported, 1u);

  // A measured file changes: hostd signs no proof for the changed agent,
  // even with the token it got before the change (THREATS.md #6: no window
  // until the token expires) ...
  const std::string before_change = Json::parse(Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}}).body)["access_token"];
  WriteFile(agent_config_, "mode: read-write\nexfiltrate: true\n");
  auto no_proof = Post("/v1/proof", {{"method", "GET"}, {"url", std::string(kCrm) + "/v1/accounts"},
                                     {"access_token", before_change}});
  EXPECT_EQ(no_proof.status, 403) << no_proof.body;
  EXPECT_EQ(TypeOf(no_proof), "urn:agentroot:problem:hostd:measurement_refused") << no_proof.body;
  // ... and the next token request is refused by the verifier, and the
  // agent's cached tokens are dropped.
  auto refused = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(TypeOf(refused), "urn:agentroot:problem:hostd:measurement_refused") << refused.body;
  EXPECT_NE(refused.body.find("measurement_not_in_approved_manifest"), std::string::npos) << refused.body;
  WriteFile(agent_config_, "mode: read-only\n");
  auto erp = hostd_->Token(Self(), kErp, "crm.read");
  ASSERT_TRUE(erp.ok()) << erp.status().ToString();
  EXPECT_FALSE(erp->from_cache) << "a refusal must drop every cached token of the agent";

  // Renewal at ~80% of the lifetime.
  auto before = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  auto log_lines = [&] {
    std::ifstream in(config_.state_dir / "measurements.jsonl");
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.empty() ? 0 : 1;
    return n;
  };
  const int logged_before = log_lines();
  ASSERT_GT(logged_before, 0) << "no measurement log at " << (config_.state_dir / "measurements.jsonl");
  const uint64_t quotes_before = hostd_->stats().quotes;
  clock_.Advance(std::chrono::seconds(250));  // 83% of 300 s
  auto renewed = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_FALSE(renewed->from_cache);
  EXPECT_NE(renewed->access_token, before->access_token);
  // A fresh quote, but the same process with the same measurement: the
  // agent's latest log entry is quoted again, the log does not grow.
  EXPECT_EQ(hostd_->stats().quotes, quotes_before + 1);
  EXPECT_EQ(log_lines(), logged_before) << "a renewal of an unchanged agent must not grow the measurement log";

  // The verifier goes away: the cached token is served until exp, then verifier_unavailable.
  server_->Stop(std::chrono::milliseconds(200));
  auto cached = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_EQ(cached->access_token, renewed->access_token);
  clock_.Advance(std::chrono::seconds(260));  // past 80%, before exp
  auto stale = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(stale.ok()) << stale.status().ToString();
  EXPECT_EQ(stale->access_token, renewed->access_token);
  EXPECT_GE(hostd_->stats().served_stale_on_outage, 1u);
  clock_.Advance(std::chrono::seconds(45));  // past exp
  auto expired = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(expired.status, 503);
  EXPECT_EQ(TypeOf(expired), "urn:agentroot:problem:hostd:verifier_unavailable") << expired.body;
  EXPECT_TRUE(http::FindHeader(expired.headers, "Retry-After").has_value());

  // No whole token in hostd's logs (THREATS #20).
  std::string log = Log();
  EXPECT_EQ(log.find(token), std::string::npos);
  EXPECT_EQ(log.find(renewed->access_token), std::string::npos);
  EXPECT_NE(log.find("token issued"), std::string::npos);
}

TEST_F(HostdE2eTest, SessionProofModeSignsProofsInSoftware) {
  WriteManifest("session");
  StartApproved();
  auto issued = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(issued.status, 200) << issued.body;
  Json t = Json::parse(issued.body);
  const std::string token = t["access_token"];
  EXPECT_EQ(t["proof_mode"], "session");
  Json claims = Claims(token);
  EXPECT_EQ(claims["cnf"]["jkt"], t["jkt"]);
  EXPECT_EQ(claims["agentroot.proof_mode"], "session");
  // Bound to the session key, not the TPM key (which the token names apart).
  auto tpm_key = store_->GetAgentKey(claims["agentroot.tpm_jkt"].get<std::string>());
  ASSERT_TRUE(tpm_key.ok()) << "agentroot.tpm_jkt must be the registered TPM key";
  EXPECT_EQ(tpm_key->agent_id, kAgent);
  EXPECT_NE(claims["cnf"]["jkt"], claims["agentroot.tpm_jkt"]);
  // One TPM signature by the agent key for the whole token: the binding.
  EXPECT_EQ(hostd_->stats().agent_key_signatures, 1u);

  // Proofs validate, and none of them uses the TPM.
  const std::string url = std::string(kCrm) + "/v1/accounts";
  auto validator = Validator(kCrm);
  for (int i = 0; i < 20; ++i) {
    auto proof = Post("/v1/proof", {{"method", "GET"}, {"url", url}, {"access_token", token}});
    ASSERT_EQ(proof.status, 200) << proof.body;
    const std::vector<std::string> proofs = {Json::parse(proof.body)["dpop"].get<std::string>()};
    auto ok = validator->Validate("DPoP " + token, proofs, "GET", url, "crm.read");
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  }
  auto headers = Post("/v1/headers", {{"audience", kCrm}, {"scope", "crm.read"}, {"method", "POST"}, {"url", url}});
  ASSERT_EQ(headers.status, 200) << headers.body;
  Json h = Json::parse(headers.body);
  EXPECT_EQ(h["authorization"], "DPoP " + token);
  const std::vector<std::string> header_proofs = {h["dpop"].get<std::string>()};
  EXPECT_TRUE(validator->Validate(h["authorization"].get<std::string>(), header_proofs, "POST", url, "crm.read").ok());
  EXPECT_EQ(hostd_->stats().agent_key_signatures, 1u) << "session-mode proofs must not be signed in the TPM";

  // A session proof needs the token it is for, one hostd holds.
  auto no_token = Post("/v1/proof", {{"method", "GET"}, {"url", url}});
  EXPECT_EQ(no_token.status, 400);
  EXPECT_EQ(TypeOf(no_token), "urn:agentroot:problem:hostd:invalid_input") << no_token.body;
  auto foreign = Post("/v1/proof", {{"method", "GET"}, {"url", url}, {"access_token", token + "x"}});
  EXPECT_EQ(foreign.status, 400) << foreign.body;

  // Renewal makes a new session key; the old one is discarded with its token.
  clock_.Advance(std::chrono::seconds(250));  // 83% of 300 s
  auto renewed = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  Json r = Json::parse(renewed.body);
  EXPECT_NE(r["access_token"], token);
  EXPECT_NE(r["jkt"], t["jkt"]);
  EXPECT_EQ(hostd_->stats().agent_key_signatures, 2u);
  auto stale = Post("/v1/proof", {{"method", "GET"}, {"url", url}, {"access_token", token}});
  EXPECT_EQ(stale.status, 400) << stale.body;
  // The session key never reaches the disk.
  for (const auto& entry : fs::recursive_directory_iterator(config_.state_dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content.find(r["jkt"].get<std::string>()), std::string::npos) << entry.path();
  }
  EXPECT_EQ(Log().find(r["access_token"].get<std::string>()), std::string::npos);
}

TEST_F(HostdE2eTest, ARevokedTokenIsNotServedFromTheCacheAfterTheCheckInterval) {
  StartApproved();
  auto first = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string token = Json::parse(first.body)["access_token"];
  const std::string jti = Claims(token)["jti"];

  // Inside the check interval the cache answers without asking the verifier.
  clock_.Advance(std::chrono::seconds(config_.revocation_check_seconds - 1));
  auto cached = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(cached.status, 200);
  EXPECT_EQ(Json::parse(cached.body)["access_token"], token);

  // An operator revokes that one token; after the interval hostd notices,
  // drops it and attests again for a new one.
  auto revoked = core_->RevokeByOperator("carol", jti, "", "");
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  clock_.Advance(std::chrono::seconds(2));
  auto fresh = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(fresh.status, 200) << fresh.body;
  const std::string second = Json::parse(fresh.body)["access_token"];
  EXPECT_NE(second, token);
  EXPECT_EQ(hostd_->stats().revoked_cached_tokens, 1u);

  // The agent's tokens revoked and the agent suspended: the cached token is
  // dropped and no new one is issued.
  ASSERT_TRUE(core_->RevokeByOperator("carol", "", testing::kTestbedAgent, "").ok());
  ASSERT_TRUE(store_->SetAgentStatus(testing::kTestbedAgent, attestation::store::AgentStatus::kSuspended, nullptr).ok());
  clock_.Advance(std::chrono::seconds(config_.revocation_check_seconds));
  auto refused = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(TypeOf(refused), "urn:agentroot:problem:hostd:token_refused") << refused.body;
  EXPECT_EQ(hostd_->stats().revoked_cached_tokens, 2u);
}

TEST_F(HostdE2eTest, TellsPendingFromRevokedByPollingTheHostStatus) {
  StartHostd();
  ASSERT_TRUE(hostd_->WaitForEnrollment("pending", std::chrono::seconds(20))) << hostd_->Status().dump();
  const std::string host = hostd_->host_id();
  EXPECT_EQ(Json::parse(Socket()->Get("/v1/status")->body)["enrollment"], "pending");

  ASSERT_TRUE(core_->ApproveHost("carol", host).ok());
  hostd_->PollEnrollmentNow();
  ASSERT_TRUE(hostd_->WaitForEnrollment("approved", std::chrono::seconds(10))) << hostd_->Status().dump();
  RegisterAgent();
  auto issued = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  ASSERT_EQ(issued.status, 200) << issued.body;

  // Revoked at the verifier: hostd says so, and serves no token, not even a cached one.
  ASSERT_TRUE(store_->RevokeHost(host, nullptr).ok());
  hostd_->PollEnrollmentNow();
  ASSERT_TRUE(hostd_->WaitForEnrollment("revoked", std::chrono::seconds(10))) << hostd_->Status().dump();
  Json status = Json::parse(Socket()->Get("/v1/status")->body);
  EXPECT_EQ(status["enrollment"], "revoked");
  EXPECT_NE(status["detail"].get<std::string>().find("revoked"), std::string::npos) << status.dump();
  auto refused = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(TypeOf(refused), "urn:agentroot:problem:hostd:token_refused") << refused.body;
  EXPECT_NE(refused.body.find("revoked"), std::string::npos) << refused.body;
}

TEST_F(HostdE2eTest, SurvivesSwtpmRestartAndReenrollsAfterTpmClear) {
  StartHostd();
  ASSERT_TRUE(hostd_->WaitForEnrollment("pending", std::chrono::seconds(20))) << hostd_->Status().dump();
  ASSERT_TRUE(core_->ApproveHost("carol", hostd_->host_id()).ok());
  hostd_->PollEnrollmentNow();
  ASSERT_TRUE(hostd_->WaitForEnrollment("approved", std::chrono::seconds(10)));
  RegisterAgent();
  auto first = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  // A TPM power cycle: PCRs reset, keys reload from their blobs.
  ASSERT_TRUE(hsm::tpm::testing::RestartSwtpm(&machine_).ok());
  auto after_restart = hostd_->Token(Self(), kCrm, "crm.write");
  ASSERT_TRUE(after_restart.ok()) << after_restart.status().ToString();
  EXPECT_EQ(after_restart->jkt, first->jkt) << "the same TPM key after the restart";
  EXPECT_NE(Log().find("a new measurement log starts"), std::string::npos);
  bool archived = false;
  for (const auto& entry : fs::directory_iterator(config_.state_dir)) {
    archived |= entry.path().filename().string().rfind("measurements.", 0) == 0 &&
                entry.path().filename() != "measurements.jsonl";
  }
  EXPECT_TRUE(archived) << "the log of the previous TPM boot is kept";

  // TPM2_Clear: the owner hierarchy's seed changes, the AK and agent keys are
  // gone. hostd says so and re-enrolls through the audited path.
  hostd_->Stop();
  auto cleared = simulators::testing::RunCommand({"tpm2_clear", "-T", machine_.tcti});
  ASSERT_TRUE(cleared.ok() && cleared->exit_code == 0) << (cleared.ok() ? cleared->stderr_text : cleared.status().ToString());
  hostd_.reset();
  StartHostd();
  for (int i = 0; i < 100 && hostd_->Status()["detail"].get<std::string>().find("re-enrolled") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Json s = hostd_->Status();
  EXPECT_EQ(s["enrollment"], "approved") << s.dump();
  EXPECT_NE(s["detail"].get<std::string>().find("re-enrolled"), std::string::npos) << s.dump();
  EXPECT_NE(Log().find("AK lost"), std::string::npos);
  auto audit = store_->ExportAudit(0, INT64_MAX);
  ASSERT_TRUE(audit.ok());
  EXPECT_NE(audit->jsonl.find("host.reenroll"), std::string::npos);
  auto after_clear = hostd_->Token(Self(), kCrm, "crm.read");
  ASSERT_TRUE(after_clear.ok()) << after_clear.status().ToString();
  EXPECT_NE(after_clear->jkt, first->jkt) << "a new agent key, certified under the new AK";
}

TEST_F(HostdE2eTest, MalformedOversizedAndStalledClients) {
  StartHostd();
  auto bad_json = Post("/v1/token", Json("not an object"));
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(TypeOf(bad_json), "urn:agentroot:problem:hostd:invalid_input");
  auto missing = Post("/v1/proof", {{"method", "GET"}});
  EXPECT_EQ(missing.status, 400);
  auto big = Socket()->Post("/v1/token", std::string(70 * 1024, 'x'));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 413);
  auto garbage = http::testing::RawConnection::ConnectUnix(config_.socket_path.string());
  ASSERT_TRUE(garbage.ok());
  ASSERT_TRUE((*garbage)->Send("GARBAGE\r\n\r\n").ok());
  auto answer = (*garbage)->ReadUntilClose(std::chrono::seconds(5));
  EXPECT_NE(answer.data.find(" 400 "), std::string::npos) << answer.data;

  // A client that sends half a request and stalls does not block another.
  auto stalled = http::testing::RawConnection::ConnectUnix(config_.socket_path.string());
  ASSERT_TRUE(stalled.ok());
  ASSERT_TRUE((*stalled)->Send("POST /v1/token HTTP/1.1\r\nHost: hostd\r\nContent-Length: 100\r\n\r\n{").ok());
  auto status = Socket()->Get("/v1/status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->status, 200);
  auto unknown = Socket()->Get("/v1/nope");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  // The socket is 0660.
  struct stat st {};
  ASSERT_EQ(::stat(config_.socket_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(HostdE2eTest, EnrollmentRetriesWhileTheVerifierIsDown) {
  server_->Stop(std::chrono::milliseconds(100));
  const uint16_t port = static_cast<uint16_t>(std::stoi(base_.substr(base_.rfind(':') + 1)));
  StartHostd();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  Json s = hostd_->Status();
  EXPECT_EQ(s["enrollment"], "unenrolled") << s.dump();
  EXPECT_EQ(s["verifier"], "unreachable") << s.dump();
  EXPECT_NE(Log().find("enrollment failed; retrying"), std::string::npos);
  auto r = Post("/v1/token", {{"audience", kCrm}, {"scope", "crm.read"}});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(TypeOf(r), "urn:agentroot:problem:hostd:verifier_unavailable") << r.body;
  StartVerifier(port);  // back on the same port: enrollment completes
  EXPECT_TRUE(hostd_->WaitForEnrollment("pending", std::chrono::seconds(10))) << hostd_->Status().dump();
}

}  // namespace
}  // namespace agentroot::host
