#include "tpm_objects.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

namespace agentroot::hsm::tpm {
namespace {

using common::StatusCode;

KeyFile SampleFile() {
  KeyFile file;
  file.kind = BlobKind::kAgentKey;
  file.algorithm = 1;
  file.pcrs = {0, 7};
  TPM2B_PUBLIC pub = AgentKeyTemplate(common::JwsAlgorithm::kEs256, {});
  pub.publicArea.unique.ecc.x.size = 32;
  pub.publicArea.unique.ecc.y.size = 32;
  file.public_area = MarshalPublic(pub).value();
  TPM2B_PRIVATE priv{};
  priv.size = 10;
  for (int i = 0; i < 10; ++i) priv.buffer[i] = static_cast<uint8_t>(i);
  file.private_area = MarshalPrivate(priv).value();
  return file;
}

TEST(KeyFileTest, RoundTrips) {
  KeyFile file = SampleFile();
  auto bytes = SerializeKeyFile(file);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto parsed = ParseKeyFile(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->kind, file.kind);
  EXPECT_EQ(parsed->algorithm, file.algorithm);
  EXPECT_EQ(parsed->pcrs, file.pcrs);
  EXPECT_EQ(parsed->public_area, file.public_area);
  EXPECT_EQ(parsed->private_area, file.private_area);
}

TEST(KeyFileTest, RejectsTruncationTrailingBytesAndBadMagic) {
  Bytes bytes = SerializeKeyFile(SampleFile()).value();
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto parsed = ParseKeyFile(ByteView(bytes.data(), len));
    EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss) << "length " << len;
  }
  Bytes trailing = bytes;
  trailing.push_back(0);
  EXPECT_EQ(ParseKeyFile(trailing).status().code(), StatusCode::kDataLoss);
  Bytes magic = bytes;
  magic[0] ^= 0x01;
  EXPECT_EQ(ParseKeyFile(magic).status().code(), StatusCode::kDataLoss);
  Bytes version = bytes;
  version[8] = 2;
  EXPECT_EQ(ParseKeyFile(version).status().code(), StatusCode::kDataLoss);
  Bytes pcr = bytes;
  pcr[12] = 24;
  EXPECT_EQ(ParseKeyFile(pcr).status().code(), StatusCode::kDataLoss);
}

TEST(KeyFileTest, AtomicWriteIsPrivateAndReplaces) {
  char tmpl[] = "/tmp/agentroot-tpm-objects-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  ASSERT_TRUE(EnsurePrivateDirectory(dir / "keys").ok());
  const auto path = dir / "keys" / "a.tpmkey";
  ASSERT_TRUE(WriteFileAtomic(path, common::ToBytes("first")).ok());
  ASSERT_TRUE(WriteFileAtomic(path, common::ToBytes("second")).ok());
  EXPECT_EQ(ReadWholeFile(path).value(), common::ToBytes("second"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Only the file itself: no temporary left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir / "keys")) ++entries;
  EXPECT_EQ(entries, 1);
  EXPECT_EQ(ReadWholeFile(dir / "missing").status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(PcrSelectionTest, RejectsOutOfRangeAndDuplicates) {
  auto sel = Sha256PcrSelection({0, 7, 23});
  ASSERT_TRUE(sel.ok());
  EXPECT_EQ(sel->pcrSelections[0].pcrSelect[0], 0x81);
  EXPECT_EQ(sel->pcrSelections[0].pcrSelect[2], 0x80);
  EXPECT_EQ(Sha256PcrSelection({24}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Sha256PcrSelection({3, 3}).status().code(), StatusCode::kInvalidArgument);
}

TEST(TemplateTest, AgentKeysAreNonDuplicableSigningKeys) {
  for (auto alg : {common::JwsAlgorithm::kEs256, common::JwsAlgorithm::kRs256,
                   common::JwsAlgorithm::kPs256}) {
    TPMT_PUBLIC p = AgentKeyTemplate(alg, {}).publicArea;
    const TPMA_OBJECT want = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                             TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                             TPMA_OBJECT_SIGN_ENCRYPT;
    EXPECT_EQ(p.objectAttributes, want);
  }
  // With a policy: no userWithAuth (else the empty password bypasses it).
  uint8_t policy[32] = {1};
  TPMT_PUBLIC bound = AgentKeyTemplate(common::JwsAlgorithm::kEs256, policy).publicArea;
  EXPECT_EQ(bound.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0u);
  EXPECT_EQ(bound.authPolicy.size, 32);
}

}  // namespace
}  // namespace agentroot::hsm::tpm
