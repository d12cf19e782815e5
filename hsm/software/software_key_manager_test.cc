#include "agentroot/hsm/software/software_key_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agentroot/hsm/testing/key_manager_conformance.h"

namespace agentroot::hsm {
namespace {

// One key directory per test process, removed at exit.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "agentroot-swkeys-XXXXXX").string();
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

const std::filesystem::path& KeyDir() {
  static TempDir* dir = new TempDir();  // leaked on purpose; removed by the Environment
  return dir->path();
}

class RemoveKeyDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    if (!KeyDir().empty()) std::filesystem::remove_all(KeyDir(), ec);
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RemoveKeyDir);

testing::KeyManagerFactory SoftwareFactory() {
  testing::KeyManagerFactory factory;
  factory.name = "Software";
  factory.open = []() -> Result<std::unique_ptr<KeyManager>> {
    AR_ASSIGN_OR_RETURN(auto manager,
                        SoftwareKeyManager::Create(KeyDir() / "store", InsecureKeys::kAcceptedForTesting));
    return std::unique_ptr<KeyManager>(std::move(manager));
  };
  return factory;
}

}  // namespace

namespace testing {
INSTANTIATE_TEST_SUITE_P(Software, KeyManagerConformanceTest, ::testing::Values(SoftwareFactory()),
                         KeyManagerFactoryName);
}  // namespace testing

namespace {

TEST(SoftwareKeyManagerTest, RefusesWithoutAcknowledgement) {
  auto made = SoftwareKeyManager::Create(KeyDir() / "refused", InsecureKeys{});
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), common::StatusCode::kFailedPrecondition);
  auto cast = SoftwareKeyManager::Create(KeyDir() / "refused", static_cast<InsecureKeys>(1));
  EXPECT_EQ(cast.status().code(), common::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(KeyDir() / "refused"));
}

TEST(SoftwareKeyManagerTest, RefusesAFileAsDirectory) {
  const auto file = KeyDir() / "plain-file";
  std::ofstream(file) << "x";
  auto made = SoftwareKeyManager::Create(file, InsecureKeys::kAcceptedForTesting);
  EXPECT_EQ(made.status().code(), common::StatusCode::kInvalidArgument);
}

TEST(SoftwareKeyManagerTest, KeyFilesAreOwnerOnlyAndHoldNoTempFiles) {
  const auto dir = KeyDir() / "modes";
  auto manager = SoftwareKeyManager::Create(dir, InsecureKeys::kAcceptedForTesting);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  KeyPolicy policy;
  ASSERT_TRUE((*manager)->Generate("k1", policy).ok());
  struct stat st {};
  ASSERT_EQ(stat((dir / "k1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "k1.key");
  }
  EXPECT_EQ(entries, 1);
}

TEST(SoftwareKeyManagerTest, RefusesAKeyFileReadableByOthers) {
  const auto dir = KeyDir() / "loose";
  auto manager = SoftwareKeyManager::Create(dir, InsecureKeys::kAcceptedForTesting);
  ASSERT_TRUE(manager.ok());
  ASSERT_TRUE((*manager)->Generate("k1", KeyPolicy{}).ok());
  ASSERT_EQ(chmod((dir / "k1.key").c_str(), 0644), 0);
  auto key = (*manager)->Get("k1");
  EXPECT_EQ(key.status().code(), common::StatusCode::kFailedPrecondition);
}

TEST(SoftwareKeyManagerTest, CorruptKeyFileIsDataLoss) {
  const auto dir = KeyDir() / "corrupt";
  auto manager = SoftwareKeyManager::Create(dir, InsecureKeys::kAcceptedForTesting);
  ASSERT_TRUE(manager.ok());
  ASSERT_TRUE((*manager)->Generate("k1", KeyPolicy{}).ok());
  std::filesystem::resize_file(dir / "k1.key", 60);
  EXPECT_EQ((*manager)->Get("k1").status().code(), common::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace agentroot::hsm
