#include "agentroot/attestation/token_policy.h"

#include <gtest/gtest.h>

namespace agentroot::attestation {
namespace {

constexpr int64_t kNow = 1800000000;

class TokenPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = HostView{"host-1", "crm-hosts", true};
    agent_ = AgentView{"spiffe://example.org/agent/crm-bot", true, "", "crm-hosts", kNow + 86400,
                       {"alice"}, {"crm.read", "crm.write"}, {"https://crm.example"}, 300};
    manifest_ = ManifestView{3, true, "bob"};
    key_ = KeyBindingView{agent_->id, "host-1", "jkt-1"};
    ear_.status = EarStatus::kAffirming;
    ear_.agent_id = agent_->id;
    ear_.host_id = "host-1";
    ear_.manifest_version = 3;
    ear_.jkt = "jkt-1";
    request_ = TokenRequestView{{"crm.read"}, "https://crm.example", std::nullopt, "jkt-1"};
  }

  Decision Decide(bool rate_limited = false) {
    return DecideToken(host_, agent_, manifest_, key_, ear_, request_, grants_, kNow, rate_limited);
  }

  void ExpectDenied(std::string_view reason) {
    Decision d = Decide();
    EXPECT_FALSE(d.allow);
    EXPECT_NE(std::find(d.reasons.begin(), d.reasons.end(), reason), d.reasons.end())
        << "missing reason " << reason;
    EXPECT_TRUE(d.scopes.empty());
    EXPECT_EQ(d.ttl, 0);
  }

  std::optional<HostView> host_;
  std::optional<AgentView> agent_;
  std::optional<ManifestView> manifest_;
  std::optional<KeyBindingView> key_;
  AttestationResult ear_;
  TokenRequestView request_;
  std::vector<JitGrantView> grants_;
};

TEST_F(TokenPolicyTest, EverythingInOrderIsAllowed) {
  Decision d = Decide();
  EXPECT_TRUE(d.allow);
  EXPECT_TRUE(d.reasons.empty());
  EXPECT_EQ(d.scopes, std::vector<std::string>{"crm.read"});
  EXPECT_EQ(d.ttl, 300);
}

TEST_F(TokenPolicyTest, UnknownOrUnapprovedHost) {
  host_.reset();
  ExpectDenied(reason::kHostUnknown);
  SetUp();
  host_->approved = false;
  ExpectDenied(reason::kHostNotApproved);
}

TEST_F(TokenPolicyTest, AgentStateAndPlacement) {
  agent_.reset();
  ExpectDenied(reason::kAgentUnknown);
  SetUp();
  agent_->active = false;
  ExpectDenied(reason::kAgentNotActive);
  SetUp();
  agent_->registration_expires_at = kNow;
  ExpectDenied(reason::kRegistrationExpired);
  SetUp();
  agent_->active_owners.clear();
  ExpectDenied(reason::kNoActiveOwner);
  SetUp();
  agent_->host_group = "other-hosts";
  ExpectDenied(reason::kAgentNotOnHost);
  SetUp();
  agent_->host_group.clear();
  agent_->host_id = "host-1";
  EXPECT_TRUE(Decide().allow);
}

TEST_F(TokenPolicyTest, Governance) {
  manifest_.reset();
  ExpectDenied(reason::kManifestNotApproved);
  SetUp();
  manifest_->approved = false;
  ExpectDenied(reason::kManifestNotApproved);
  SetUp();
  agent_->active_owners.push_back("bob");  // the reviewer became an owner
  ExpectDenied(reason::kReviewerIsOwner);
}

TEST_F(TokenPolicyTest, AttestationMustAffirmThisAgentHostManifestAndKey) {
  ear_.status = EarStatus::kWarning;
  ExpectDenied(reason::kAttestationNotAffirming);
  SetUp();
  ear_.agent_id = "spiffe://example.org/agent/other";
  ExpectDenied(reason::kAttestationMismatch);
  SetUp();
  ear_.host_id = "host-2";
  ExpectDenied(reason::kAttestationMismatch);
  SetUp();
  ear_.manifest_version = 2;  // attested an older manifest
  ExpectDenied(reason::kAttestationMismatch);
  SetUp();
  key_.reset();
  ExpectDenied(reason::kKeyNotCertified);
  SetUp();
  key_->jkt = "jkt-other";
  ExpectDenied(reason::kKeyNotCertified);
  SetUp();
  key_->host_id = "host-2";
  ExpectDenied(reason::kKeyNotCertified);
  SetUp();
  request_.proof_jkt = "jkt-attacker";
  ExpectDenied(reason::kProofKeyMismatch);
}

TEST_F(TokenPolicyTest, ScopeAudienceTtl) {
  request_.scopes = {"crm.read", "crm.admin"};
  ExpectDenied(reason::kScopeNotAllowed);
  SetUp();
  request_.scopes.clear();
  ExpectDenied(reason::kNoScope);
  SetUp();
  request_.audience = "https://erp.example";
  ExpectDenied(reason::kAudienceNotAllowed);
  SetUp();
  request_.requested_ttl = 301;
  ExpectDenied(reason::kTtlExceedsMax);
  SetUp();
  request_.requested_ttl = 60;
  EXPECT_EQ(Decide().ttl, 60);
  SetUp();
  agent_->registration_expires_at = kNow + 100;  // token may not outlive it
  EXPECT_EQ(Decide().ttl, 100);
}

TEST_F(TokenPolicyTest, JitGrantsAddScopesUntilTheyExpire) {
  request_.scopes = {"crm.read", "crm.export"};
  ExpectDenied(reason::kScopeNotAllowed);
  grants_ = {{"crm.export", kNow + 120, "jit-1"}};
  Decision d = Decide();
  ASSERT_TRUE(d.allow);
  EXPECT_EQ(d.jit_scopes, std::vector<std::string>{"crm.export"});
  EXPECT_EQ(d.ttl, 120);  // bounded by the grant
  grants_ = {{"crm.export", kNow, "jit-1"}};
  ExpectDenied(reason::kScopeNotAllowed);
}

TEST_F(TokenPolicyTest, JitGrantsUsedAreNamedAndTheLongestCounts) {
  request_.scopes = {"crm.export", "crm.delete", "crm.read"};
  grants_ = {{"crm.export", kNow + 60, "jit-a"}, {"crm.export", kNow + 200, "jit-b"},
             {"crm.delete", kNow + 150, "jit-b"}, {"crm.admin", kNow + 900, "jit-c"}};
  Decision d = Decide();
  ASSERT_TRUE(d.allow);
  EXPECT_EQ(d.jit_scopes, (std::vector<std::string>{"crm.export", "crm.delete"}));
  EXPECT_EQ(d.jit_grant_ids, std::vector<std::string>{"jit-b"});  // the longest grant of each scope, once
  EXPECT_EQ(d.ttl, 150);  // bounded by the shortest grant used
  request_.scopes = {"crm.read"};
  EXPECT_TRUE(Decide().jit_grant_ids.empty());  // no elevation used, none named
}

TEST_F(TokenPolicyTest, RateLimitAndAllReasonsReported) {
  EXPECT_FALSE(Decide(true).allow);
  host_->approved = false;
  agent_->active_owners.clear();
  request_.audience = "x";
  Decision d = Decide(true);
  EXPECT_GE(d.reasons.size(), 4u);
}

}  // namespace
}  // namespace agentroot::attestation
