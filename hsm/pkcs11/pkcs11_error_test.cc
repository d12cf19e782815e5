#include "pkcs11_error.h"

#include <gtest/gtest.h>

namespace agentroot::hsm::pkcs11 {
namespace {

using common::StatusCode;

TEST(Pkcs11ErrorTest, NamesKnownCodes) {
  EXPECT_EQ(CkrName(CKR_OK), "CKR_OK");
  EXPECT_EQ(CkrName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(CkrName(CKR_KEY_FUNCTION_NOT_PERMITTED), "CKR_KEY_FUNCTION_NOT_PERMITTED");
  EXPECT_EQ(CkrName(CKR_VENDOR_DEFINED + 0x12), "CKR_VENDOR_DEFINED+0x12");
  EXPECT_EQ(CkrName(0x7777), "CKR_UNKNOWN");
}

TEST(Pkcs11ErrorTest, KeepsNameAndHexAndMapsCodes) {
  common::Status s = CkrError("C_Login", CKR_PIN_INCORRECT);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "C_Login: CKR_PIN_INCORRECT (0x000000a0)");
  EXPECT_EQ(CkrError("x", CKR_PIN_LOCKED).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(CkrError("x", CKR_KEY_HANDLE_INVALID).code(), StatusCode::kNotFound);
  EXPECT_EQ(CkrError("x", CKR_DEVICE_REMOVED).code(), StatusCode::kUnavailable);
  EXPECT_EQ(CkrError("x", CKR_MECHANISM_INVALID).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CkrError("x", CKR_DATA_LEN_RANGE).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CkrError("x", CKR_GENERAL_ERROR).code(), StatusCode::kInternal);
  EXPECT_EQ(CkrError("x", CKR_GENERAL_ERROR).message(), "x: CKR_GENERAL_ERROR (0x00000005)");
}

TEST(Pkcs11ErrorTest, BrokenSessions) {
  EXPECT_TRUE(SessionIsBroken(CKR_SESSION_HANDLE_INVALID));
  EXPECT_TRUE(SessionIsBroken(CKR_DEVICE_REMOVED));
  EXPECT_FALSE(SessionIsBroken(CKR_OK));
  EXPECT_FALSE(SessionIsBroken(CKR_KEY_HANDLE_INVALID));
}

}  // namespace
}  // namespace agentroot::hsm::pkcs11
