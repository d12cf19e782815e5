#include "agentroot/hsm/tpm/ek_profile.h"

#include <gtest/gtest.h>

namespace agentroot::hsm::tpm {
namespace {

TEST(EkProfileTest, IndicesMatchTcgProfile) {
  EXPECT_EQ(EkCertificateNvIndex(EkKind::kRsa2048), 0x01c00002u);
  EXPECT_EQ(EkCertificateNvIndex(EkKind::kEccP256), 0x01c0000au);
  EXPECT_EQ(EkCertificateNvIndex(EkKind::kEccP384), 0x01c00016u);
}

TEST(EkProfileTest, NamesRoundTrip) {
  for (EkKind kind : kAllEkKinds) {
    auto parsed = ParseEkKind(EkKindName(kind));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, kind);
  }
}

TEST(EkProfileTest, RejectsUnknownNames) {
  for (std::string_view bad : {"", "rsa", "RSA2048", "p521", "p256 "}) {
    auto parsed = ParseEkKind(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), common::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace agentroot::hsm::tpm
