#include "tpm/tss_error.h"

#include <gtest/gtest.h>
#include <tss2/tss2_tpm2_types.h>

namespace agentroot::hsm::tpm {
namespace {

using common::StatusCode;

TEST(TssErrorTest, KeepsHexCodeAndDecodedText) {
  // TPM2_RC_HANDLE on handle 1: what a missing NV index produces.
  common::Status status = TssError(0x18b, "NV_ReadPublic 0x01c0000a");
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("NV_ReadPublic 0x01c0000a: TSS2_RC 0x0000018b ("),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("handle"), std::string::npos) << status.message();
}

TEST(TssErrorTest, TctiErrorsAreUnavailable) {
  common::Status status = TssError(TSS2_TCTI_RC_IO_ERROR, "connect");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("0x000a000a"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("tcti"), std::string::npos) << status.message();
}

TEST(TssErrorTest, AuthFailuresArePermissionDenied) {
  EXPECT_EQ(TssStatusCode(TPM2_RC_AUTH_FAIL | TPM2_RC_S | TPM2_RC_1),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(TssStatusCode(TPM2_RC_BAD_AUTH | TPM2_RC_S | TPM2_RC_1),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(TssStatusCode(TPM2_RC_NV_AUTHORIZATION), StatusCode::kPermissionDenied);
}

TEST(TssErrorTest, OtherErrorsAreInternal) {
  EXPECT_EQ(TssStatusCode(TPM2_RC_NV_UNINITIALIZED), StatusCode::kInternal);
  // A handle error from a non-TPM layer is not "not found".
  EXPECT_EQ(TssStatusCode(TSS2_ESAPI_RC_LAYER | TPM2_RC_HANDLE), StatusCode::kInternal);
}

TEST(TssErrorTest, Format1MatchIgnoresHandleNumberButNotLayer) {
  EXPECT_TRUE(IsTpmFormat1Error(TPM2_RC_HANDLE | TPM2_RC_P | TPM2_RC_2, TPM2_RC_HANDLE));
  EXPECT_FALSE(IsTpmFormat1Error(TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_1, TPM2_RC_HANDLE));
  EXPECT_FALSE(IsTpmFormat1Error(TSS2_SYS_RC_LAYER | TPM2_RC_HANDLE, TPM2_RC_HANDLE));
  EXPECT_FALSE(IsTpmFormat1Error(TPM2_RC_INITIALIZE, TPM2_RC_INITIALIZE));
}

}  // namespace
}  // namespace agentroot::hsm::tpm
