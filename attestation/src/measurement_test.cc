#include "agentroot/attestation/measurement.h"

#include <gtest/gtest.h>

#include <functional>

#include "agentroot/common/signer.h"

namespace agentroot::attestation {
namespace {

std::string Hex(char c) { return std::string(64, c); }

MeasurementEvent Event(uint64_t seq, const std::string& agent, char exe) {
  MeasurementEvent e;
  e.sequence = seq;
  e.time = 1800000000 + static_cast<int64_t>(seq);
  e.agent_id = agent;
  e.pid = 1000 + static_cast<uint32_t>(seq);
  e.uid = 1001;
  e.exe_path = "/opt/agents/" + agent;
  e.exe_sha256_hex = Hex(exe);
  e.files = {{"/etc/agents/" + agent + ".toml", Hex('c')}, {"/etc/agents/tools.json", Hex('d')}};
  return e;
}

std::vector<MeasurementEvent> Log() {
  return {Event(1, "crm-bot", 'a'), Event(2, "mail-bot", 'b'), Event(3, "crm-bot", 'a')};
}

TEST(MeasurementTest, ReplayMatchesAnIndependentComputation) {
  auto log = Log();
  // PCR extend computed by hand: H(H(H(0 || d1) || d2) || d3).
  common::Bytes pcr(32, 0);
  for (const auto& e : log) {
    common::Bytes input = pcr;
    common::Bytes d = common::Sha256(common::AsBytes(EventToJson(e).dump()));
    input.insert(input.end(), d.begin(), d.end());
    pcr = common::Sha256(input);
  }
  EXPECT_EQ(ReplayLog(log), pcr);
  EXPECT_NE(ReplayLog({}), pcr);
  EXPECT_EQ(ReplayLog({}), common::Bytes(32, 0));
}

// THREATS.md #5: edit, drop, reorder, insert.
TEST(MeasurementTest, AnyChangeToTheLogChangesTheReplay) {
  auto log = Log();
  common::Bytes good = ReplayLog(log);
  auto edited = log;
  edited[1].exe_sha256_hex = Hex('e');
  EXPECT_NE(ReplayLog(edited), good);
  auto dropped = log;
  dropped.erase(dropped.begin() + 1);
  EXPECT_NE(ReplayLog(dropped), good);
  auto reordered = log;
  std::swap(reordered[0], reordered[1]);
  EXPECT_NE(ReplayLog(reordered), good);
  auto inserted = log;
  inserted.insert(inserted.begin() + 1, Event(2, "evil", 'f'));
  EXPECT_NE(ReplayLog(inserted), good);
  auto file_edit = log;
  file_edit[2].files[0].sha256_hex = Hex('0');
  EXPECT_NE(ReplayLog(file_edit), good);
}

TEST(MeasurementTest, LogRoundTripsAndRejectsBadLines) {
  auto log = Log();
  auto parsed = ParseLog(SerializeLog(log));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, log);
  std::string text = SerializeLog(log);
  EXPECT_FALSE(ParseLog(text + "{not json}\n").ok());
  // A gap in the sequence (a dropped line) is named.
  auto gap = log;
  gap.erase(gap.begin() + 1);
  auto result = ParseLog(SerializeLog(gap));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("line 2"), std::string::npos);
  // Unexpected or malformed members.
  common::Json extra = EventToJson(log[0]);
  extra["note"] = "x";
  EXPECT_FALSE(EventFromJson(extra).ok());
  common::Json bad = EventToJson(log[0]);
  bad["exe_sha256"] = "XYZ";
  EXPECT_FALSE(EventFromJson(bad).ok());
  bad = EventToJson(log[0]);
  bad.erase("pid");
  EXPECT_FALSE(EventFromJson(bad).ok());
}

TEST(MeasurementTest, QualifyingDataBindsEachInput) {
  common::Bytes nonce(32, 1), name(34, 2), digest(32, 3);
  common::Bytes q = QualifyingData(nonce, name, digest);
  EXPECT_EQ(q.size(), 32u);
  common::Bytes other = nonce;
  other[0] ^= 1;
  EXPECT_NE(QualifyingData(other, name, digest), q);
  other = name;
  other[5] ^= 1;
  EXPECT_NE(QualifyingData(nonce, other, digest), q);
  other = digest;
  other[31] ^= 1;
  EXPECT_NE(QualifyingData(nonce, name, other), q);
  // Length prefixes: moving a byte between fields changes the result.
  common::Bytes n2(33, 1), name2(33, 2);
  EXPECT_NE(QualifyingData(n2, name2, digest), QualifyingData(nonce, name, digest));
  EXPECT_NE(CertifyQualifyingData(nonce), q);
}

TEST(MeasurementTest, ShadowReportQualifyingData) {
  ShadowReport r{1700000000, 4242, 1001, 1001, "/usr/bin/curl", Hex('e')};
  const common::Bytes nonce = common::ToBytes("nonce-1");
  // The construction, spelled out: label || nonce || SHA-256(canonical JSON).
  const std::string canonical =
      "{\"exe_path\":\"/usr/bin/curl\",\"exe_sha256\":\"" + Hex('e') +
      "\",\"gid\":1001,\"pid\":4242,\"time\":1700000000,\"uid\":1001}";
  EXPECT_EQ(ShadowReportToJson(r).dump(), canonical);
  common::Bytes input = common::ToBytes("agentroot shadow report v1nonce-1");
  common::Bytes digest = common::Sha256(common::AsBytes(canonical));
  input.insert(input.end(), digest.begin(), digest.end());
  EXPECT_EQ(ShadowReportQualifyingData(nonce, r), common::Sha256(input));
  // Every member and the nonce count.
  for (auto change : std::vector<std::function<void(ShadowReport&)>>{
           [](ShadowReport& x) { x.time++; }, [](ShadowReport& x) { x.pid++; }, [](ShadowReport& x) { x.uid++; },
           [](ShadowReport& x) { x.gid++; }, [](ShadowReport& x) { x.exe_path += "x"; },
           [](ShadowReport& x) { x.exe_sha256_hex = Hex('f'); }}) {
    ShadowReport other = r;
    change(other);
    EXPECT_NE(ShadowReportQualifyingData(nonce, other), ShadowReportQualifyingData(nonce, r));
  }
  EXPECT_NE(ShadowReportQualifyingData(common::ToBytes("nonce-2"), r), ShadowReportQualifyingData(nonce, r));
  // JSON round trip, and what is refused.
  auto back = ShadowReportFromJson(ShadowReportToJson(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, r);
  common::Json extra = ShadowReportToJson(r);
  extra["agent"] = "x";
  EXPECT_FALSE(ShadowReportFromJson(extra).ok());
  common::Json negative = ShadowReportToJson(r);
  negative["pid"] = -1;
  EXPECT_FALSE(ShadowReportFromJson(negative).ok());
  common::Json bad_hash = ShadowReportToJson(r);
  bad_hash["exe_sha256"] = "abc";
  EXPECT_FALSE(ShadowReportFromJson(bad_hash).ok());
}

TEST(MeasurementTest, ManifestContentIsParsedStrictly) {
  const std::string exe(64, 'a'), file(64, 'b');
  auto parsed = ParseManifestDigests(common::Json{{"exe_sha256", exe}, {"files", {{"/etc/a.toml", file}}}, {"model_id", "m"}});
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->exe_sha256_hex, exe);
  EXPECT_EQ(parsed->files.at("/etc/a.toml"), file);
  for (const common::Json& bad : {common::Json::array(), common::Json{{"files", common::Json::object()}}, common::Json{{"exe_sha256", "abc"}},
                          common::Json{{"exe_sha256", std::string(64, 'A')}}, common::Json{{"exe_sha256", exe}, {"files", common::Json::array()}},
                          common::Json{{"exe_sha256", exe}, {"files", {{"relative", file}}}},
                          common::Json{{"exe_sha256", exe}, {"files", {{"/x", 7}}}}}) {
    auto refused = ParseManifestDigests(bad);
    EXPECT_EQ(refused.status().code(), common::StatusCode::kInvalidArgument) << bad.dump();
    EXPECT_NE(refused.status().message().find("manifest: "), std::string::npos);
  }
}

TEST(MeasurementTest, ManifestMatching) {
  MeasurementEvent e = Event(1, "crm-bot", 'a');
  ManifestDigests m{Hex('a'), {{"/etc/agents/crm-bot.toml", Hex('c')}, {"/etc/agents/tools.json", Hex('d')}}};
  EXPECT_TRUE(MatchManifest(e, m).ok());
  ManifestDigests other_exe = m;
  other_exe.exe_sha256_hex = Hex('b');
  EXPECT_EQ(MatchManifest(e, other_exe).code(), common::StatusCode::kPermissionDenied);
  ManifestDigests changed = m;
  changed.files["/etc/agents/tools.json"] = Hex('e');
  EXPECT_FALSE(MatchManifest(e, changed).ok());
  ManifestDigests more = m;
  more.files["/etc/agents/prompt.txt"] = Hex('f');
  EXPECT_FALSE(MatchManifest(e, more).ok());  // a manifest file not measured
  MeasurementEvent extra = e;
  extra.files.push_back({"/tmp/injected.py", Hex('9')});
  EXPECT_FALSE(MatchManifest(extra, m).ok());  // a file the manifest does not list
}

}  // namespace
}  // namespace agentroot::attestation
