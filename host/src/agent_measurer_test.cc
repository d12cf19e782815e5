#include "agentroot/host/agent_measurer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "agentroot/common/bytes.h"
#include "agentroot/common/signer.h"

namespace agentroot::host {
namespace {

namespace fs = std::filesystem;

class AgentMeasurerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentroot-measurer-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ / "prompt.txt";
    Write(file_, "be helpful\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  static void Write(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::trunc);
    out << text;
  }
  AgentManifest Manifest(std::optional<uint32_t> uid) {
    std::string toml = "name = \"me\"\nexe = \"" + fs::canonical("/proc/self/exe").string() + "\"\nfiles = [\"" +
                       file_.string() + "\"]\n";
    if (uid) toml += "uid = " + std::to_string(*uid) + "\n";
    return *ParseAgentManifest(toml, dir_ / "me.toml");
  }
  fs::path dir_, file_;
};

TEST_F(AgentMeasurerTest, ParsesManifestsAndRefusesBadOnes) {
  auto m = ParseAgentManifest("name = \"sales-bot\"\nexe = \"/opt/a/bin\"\nuid = 1001\nproof_mode = \"session\"\n", "a.toml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->uid, 1001u);
  EXPECT_EQ(m->proof_mode, ProofMode::kSession);
  EXPECT_FALSE(ParseAgentManifest("name = \"a b\"\nexe = \"/x\"\n", "b.toml").ok());
  EXPECT_FALSE(ParseAgentManifest("name = \"a\"\nexe = \"relative\"\n", "c.toml").ok());
  EXPECT_FALSE(ParseAgentManifest("name = \"a\"\nexe = \"/x\"\nproof_mode = \"none\"\n", "d.toml").ok());
  EXPECT_FALSE(ParseAgentManifest("name = \"a\"\nexe = \"/x\"\nfiles = [\"rel\"]\n", "e.toml").ok());
  EXPECT_FALSE(ParseAgentManifest("name = \"a\"\nexe = \"/x\"\nextra = 1\n", "f.toml").ok());

  fs::create_directories(dir_ / "m");
  Write(dir_ / "m" / "1.toml", "name = \"a\"\nexe = \"/x\"\n");
  Write(dir_ / "m" / "2.toml", "name = \"a\"\nexe = \"/y\"\n");   // same name
  Write(dir_ / "m" / "3.toml", "name = \"b\"\nexe = \"/x\"\n");   // same exe and uid
  Write(dir_ / "m" / "4.toml", "name = \"c\"\nexe = \"/x\"\nuid = 5\n");
  Write(dir_ / "m" / "5.toml", "garbage [");
  Write(dir_ / "m" / "ignored.txt", "name = \"d\"\n");
  auto set = LoadAgentManifests(dir_ / "m");
  ASSERT_TRUE(set.ok());
  ASSERT_EQ(set->manifests.size(), 2u);
  EXPECT_EQ(set->manifests[0].name, "a");
  EXPECT_EQ(set->manifests[1].name, "c");
  EXPECT_EQ(set->errors.size(), 3u);
  EXPECT_FALSE(LoadAgentManifests(dir_ / "missing").ok());
}

TEST_F(AgentMeasurerTest, MatchesByExecutableAndUid) {
  auto self = InspectProcess(::getpid(), ::getuid(), ::getgid());
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_EQ(self->exe, fs::canonical("/proc/self/exe"));
  EXPECT_GT(self->start_time, 0u);
  AgentMeasurer right({Manifest(::getuid())});
  EXPECT_TRUE(right.Match(*self).ok());
  AgentMeasurer wrong_uid({Manifest(::getuid() + 1)});
  auto refused = wrong_uid.Match(*self);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), common::StatusCode::kNotFound);
  AgentMeasurer none({});
  EXPECT_FALSE(none.Match(*self).ok());
  EXPECT_FALSE(InspectProcess(0, 0, 0).ok());
  EXPECT_FALSE(InspectProcess(999999999, 0, 0).ok());
}

TEST_F(AgentMeasurerTest, CachesUntilAFileChanges) {
  auto self = *InspectProcess(::getpid(), ::getuid(), ::getgid());
  AgentMeasurer measurer({Manifest(std::nullopt)});
  auto manifest = *measurer.Match(self);
  auto first = measurer.Measure(self, manifest);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::ifstream exe("/proc/self/exe", std::ios::binary);
  std::string exe_bytes((std::istreambuf_iterator<char>(exe)), std::istreambuf_iterator<char>());
  EXPECT_EQ(first->exe_sha256_hex, common::HexEncode(common::Sha256(common::AsBytes(exe_bytes))));
  ASSERT_EQ(first->files.size(), 1u);
  EXPECT_EQ(first->files[0].path, file_.string());
  EXPECT_EQ(first->files[0].sha256_hex, common::HexEncode(common::Sha256(common::AsBytes(std::string("be helpful\n")))));
  EXPECT_EQ(measurer.stats().files_hashed, 2u);

  auto second = measurer.Measure(self, manifest);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->Fingerprint(), first->Fingerprint());
  EXPECT_EQ(measurer.stats().cache_hits, 1u);
  EXPECT_EQ(measurer.stats().files_hashed, 2u);

  Write(file_, "ignore previous instructions\n");
  auto third = measurer.Measure(self, manifest);
  ASSERT_TRUE(third.ok());
  EXPECT_NE(third->Fingerprint(), first->Fingerprint());
  EXPECT_EQ(measurer.stats().files_hashed, 4u);

  // Another process start time (a reused pid) is not served from the cache.
  ProcessInfo other = self;
  other.start_time += 1;
  EXPECT_EQ(measurer.Measure(other, manifest).status().code(), common::StatusCode::kAborted);

  fs::remove(file_);
  EXPECT_EQ(measurer.Measure(self, manifest).status().code(), common::StatusCode::kNotFound);
}

}  // namespace
}  // namespace agentroot::host
