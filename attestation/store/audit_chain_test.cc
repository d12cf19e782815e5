// Offline audit chain format: a known-answer vector computed with Python's
// json + hashlib (an independent implementation of the canonical form), and
// verification edge cases. The chain against real databases is covered by
// the shared store suite.
#include "agentroot/attestation/store/audit_chain.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace agentroot::attestation::store {
namespace {

using common::Bytes;
using common::Json;
using common::StatusCode;

AuditEntry VectorEntry() {
  AuditEntry e;
  e.seq = 1;
  e.ts = 1700000000;
  e.record.actor = "verifier";
  e.record.action = "token.issue";
  e.record.subject = "spiffe://example.org/agent/crm-bot";
  e.record.decision = AuditDecision::kAllow;
  e.record.reasons = {"ok"};
  e.record.details = Json{{"u", "h\xc3\xa9"}, {"jti", "abc"}, {"n", -5}};
  e.prev_hash = Bytes(kAuditHashSize, 0);
  return e;
}

// python3: json.dumps(body, sort_keys=True, separators=(',',':'),
// ensure_ascii=False); hashlib.sha256(bytes(32) + body).
constexpr char kVectorBody[] =
    "{\"action\":\"token.issue\",\"actor\":\"verifier\",\"decision\":\"allow\","
    "\"details\":{\"jti\":\"abc\",\"n\":-5,\"u\":\"h\xc3\xa9\"},"
    "\"prev_hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"reasons\":[\"ok\"],\"seq\":1,\"subject\":\"spiffe://example.org/agent/crm-bot\","
    "\"ts\":1700000000}";
constexpr char kVectorHash[] = "8a2c3615d2844dd7657f4f712afae05329889080a0c8d071c6375c8545cfed59";

TEST(AuditChainTest, CanonicalBodyAndHashMatchIndependentVector) {
  AuditEntry e = VectorEntry();
  auto body = CanonicalAuditBody(e);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, kVectorBody);
  EXPECT_EQ(common::HexEncode(ComputeAuditHash(e.prev_hash, *body)), kVectorHash);

  e.hash = ComputeAuditHash(e.prev_hash, *body);
  auto line = AuditEntryToJsonLine(e);
  ASSERT_TRUE(line.ok());
  auto parsed = ParseAuditJsonLine(*line);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->record.details, e.record.details);
  AuditChainReport report = VerifyAuditChain(*line + "\n");
  EXPECT_TRUE(report.status.ok()) << report.status.ToString();
  EXPECT_EQ(report.head.seq, 1);
  EXPECT_EQ(common::HexEncode(report.head.hash), kVectorHash);
}

TEST(AuditChainTest, EveryBitFlipOfTheHashOrBodyIsDetected) {
  AuditEntry e = VectorEntry();
  e.hash = ComputeAuditHash(e.prev_hash, CanonicalAuditBody(e).value());
  const std::string line = AuditEntryToJsonLine(e).value();
  int detected = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = line;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      if (!VerifyAuditChain(flipped).status.ok()) ++detected;
    }
  }
  // Canonical form leaves no byte insignificant: upper-case hex digits are
  // refused too, and a flip that keeps the JSON valid changes the hash input.
  EXPECT_EQ(detected, static_cast<int>(line.size() * 8));
}

TEST(AuditChainTest, WrongAnchorAndTruncationAreDetected) {
  AuditEntry e = VectorEntry();
  e.hash = ComputeAuditHash(e.prev_hash, CanonicalAuditBody(e).value());
  const std::string line = AuditEntryToJsonLine(e).value();
  AuditAnchor wrong;
  wrong.hash = Bytes(kAuditHashSize, 1);
  AuditChainReport r = VerifyAuditChain(line, wrong);
  EXPECT_EQ(r.status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.first_bad_seq, 1);
  r = VerifyAuditChain(line.substr(0, line.size() - 1));
  EXPECT_EQ(r.status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.first_bad_line, 1u);
  EXPECT_TRUE(VerifyAuditChain("").status.ok());
  EXPECT_FALSE(VerifyAuditChain("\n").status.ok());
}

TEST(AuditChainTest, ValidateRefusesSecretsAndBadValues) {
  AuditRecord r = VectorEntry().record;
  EXPECT_TRUE(ValidateAuditRecord(r).ok());
  r.reasons = {"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"};
  EXPECT_EQ(ValidateAuditRecord(r).code(), StatusCode::kInvalidArgument);
  r = VectorEntry().record;
  r.details["access_token"] = "opaque";
  EXPECT_EQ(ValidateAuditRecord(r).code(), StatusCode::kInvalidArgument);
  r = VectorEntry().record;
  r.details["x"] = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ValidateAuditRecord(r).code(), StatusCode::kInvalidArgument);
  r = VectorEntry().record;
  Json deep = 1;
  for (int i = 0; i < 20; ++i) deep = Json::array({deep});
  r.details["deep"] = deep;
  EXPECT_EQ(ValidateAuditRecord(r).code(), StatusCode::kInvalidArgument);
  r = VectorEntry().record;
  r.details["big"] = std::string(70 * 1024, 'a');
  EXPECT_EQ(ValidateAuditRecord(r).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentroot::attestation::store
