#include "agentroot/host/measurement_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace agentroot::host {
namespace {

namespace fs = std::filesystem;
using attestation::MeasurementEvent;

class MeasurementLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentroot-mlog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ / "measurements.jsonl";
  }
  void TearDown() override { fs::remove_all(dir_); }
  static MeasurementEvent Event(const std::string& agent) {
    MeasurementEvent e;
    e.agent_id = agent;
    e.pid = 42;
    e.exe_path = "/opt/a";
    e.exe_sha256_hex = std::string(64, 'a');
    return e;
  }
  fs::path dir_, path_;
};

TEST_F(MeasurementLogTest, PersistsAndReplaysToThePcr) {
  common::Bytes pcr;
  {
    auto log = MeasurementLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_EQ((*log)->expected_pcr(), common::Bytes(32, 0));
    auto a = (*log)->Append(Event("a"));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->sequence, 1u);
    auto b = (*log)->Append(Event("b"));
    EXPECT_EQ(b->sequence, 2u);
    pcr = (*log)->expected_pcr();
    EXPECT_EQ(pcr, attestation::ReplayLog({*a, *b}));
  }
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto reopened = MeasurementLog::Open(path_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->events().size(), 2u);
  EXPECT_EQ((*reopened)->expected_pcr(), pcr);
  EXPECT_EQ(*(*reopened)->Reconcile(pcr, 1000), ReconcileOutcome::kConsistent);
}

TEST_F(MeasurementLogTest, ReconcileDropsUnextendedResetsAndRefusesForeignPcr) {
  auto log = std::move(MeasurementLog::Open(path_)).value();
  ASSERT_TRUE(log->Append(Event("a")).ok());
  common::Bytes after_a = log->expected_pcr();
  ASSERT_TRUE(log->Append(Event("b")).ok());  // crash before its extend
  EXPECT_EQ(*log->Reconcile(after_a, 1000), ReconcileOutcome::kDroppedUnextended);
  EXPECT_EQ(log->events().size(), 1u);
  EXPECT_EQ((*MeasurementLog::Open(path_))->events().size(), 1u);  // rewritten on disk

  auto foreign = log->Reconcile(common::Bytes(32, 7), 1000);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.status().code(), common::StatusCode::kFailedPrecondition);

  EXPECT_EQ(*log->Reconcile(common::Bytes(32, 0), 1000), ReconcileOutcome::kReset);
  EXPECT_TRUE(log->events().empty());
  EXPECT_TRUE(fs::exists(dir_ / "measurements.1000.jsonl"));
  auto next = log->Append(Event("c"));
  EXPECT_EQ(next->sequence, 1u);
}

TEST_F(MeasurementLogTest, TornLastLineIsDroppedOtherDamageIsDataLoss) {
  {
    auto log = std::move(MeasurementLog::Open(path_)).value();
    ASSERT_TRUE(log->Append(Event("a")).ok());
  }
  {
    std::ofstream out(path_, std::ios::app);
    out << "{\"agent_id\":\"b\",\"seq";  // torn write
  }
  auto log = MeasurementLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->events().size(), 1u);
  log->reset();
  {
    std::ofstream out(path_, std::ios::app);
    out << "not json\n";
  }
  auto damaged = MeasurementLog::Open(path_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), common::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace agentroot::host
