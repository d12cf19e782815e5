#include "agentroot/common/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace agentroot::common {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorKeepsCodeAndMessage) {
  Status s = InvalidArgumentError("bad base64");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: bad base64");
}

TEST(StatusTest, WithContextPrefixesAndKeepsCode) {
  Status s = UnavailableError("0x101 (tpm:error(2.0): TPM not initialized)").WithContext("quote");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "quote: 0x101 (tpm:error(2.0): TPM not initialized)");
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
}

TEST(StatusTest, OkStatusDropsMessage) {
  Status s(StatusCode::kOk, "should vanish");
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(s.message().empty());
}

Result<int> Half(int v) {
  if (v % 2 != 0) return InvalidArgumentError("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  AR_ASSIGN_OR_RETURN(int half, Half(v));
  AR_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int v) {
  AR_RETURN_IF_ERROR(Half(v).status());
  return Status::Ok();
}

TEST(ResultTest, ValueAndErrorPropagate) {
  auto ok = Quarter(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  auto bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "odd");
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_EQ(CheckEven(3).code(), StatusCode::kInvalidArgument);
}

TEST(ResultTest, OkStatusBecomesInternalError) {
  Result<int> r = Status::Ok();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(ResultTest, HoldsMoveOnlyTypes) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, ValueOnErrorThrowsInsteadOfReadingGarbage) {
  Result<std::string> r = NotFoundError("x");
  EXPECT_THROW((void)r.value(), std::bad_variant_access);
  EXPECT_EQ(r.value_or("fallback"), "fallback");
}

}  // namespace
}  // namespace agentroot::common
