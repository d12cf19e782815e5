#include "agentroot/common/secret_bytes.h"

#include <gtest/gtest.h>

#include <ostream>
#include <set>
#include <type_traits>

#include "agentroot/common/random.h"

namespace agentroot::common {
namespace {

template <typename T>
concept Streamable = requires(std::ostream& os, const T& v) { os << v; };
template <typename T>
concept EqualityComparable = requires(const T& a, const T& b) { a == b; };

static_assert(!Streamable<SecretBytes>, "secrets must never be printable");
static_assert(!EqualityComparable<SecretBytes>, "secret equality must be spelled Equals()");
static_assert(!std::is_copy_constructible_v<SecretBytes>, "copies must be explicit (Clone)");
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);

TEST(SecretBytesTest, EqualsIsContentAndLengthSensitive) {
  Bytes raw = {9, 8, 7, 6};
  SecretBytes a(raw);
  SecretBytes b(raw);
  Bytes other = {9, 8, 7, 5};
  EXPECT_TRUE(a.Equals(b));
  EXPECT_FALSE(a.Equals(SecretBytes(other)));
  EXPECT_FALSE(a.Equals(SecretBytes(ByteView(raw).first(3))));
}

TEST(SecretBytesTest, CloneIsIndependentAndClearEmpties) {
  Bytes raw = {1, 2, 3};
  SecretBytes a(raw);
  SecretBytes copy = a.Clone();
  a.Clear();
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(copy.size(), 3u);
  EXPECT_TRUE(copy.Equals(raw));
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  Bytes raw = {4, 5};
  SecretBytes a(raw);
  SecretBytes b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking moved-from state
  EXPECT_TRUE(b.Equals(raw));
}

TEST(SecureWipeTest, ZeroesBuffer) {
  uint8_t buf[16];
  for (auto& b : buf) b = 0xaa;
  SecureWipe(buf, sizeof(buf));
  for (uint8_t b : buf) EXPECT_EQ(b, 0);
}

TEST(RandomTest, ProducesDistinctValuesOfRequestedSize) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto token = RandomToken(16);
    ASSERT_TRUE(token.ok());
    EXPECT_EQ(token->size(), 22u);  // 16 bytes -> 22 base64url characters
    seen.insert(*token);
  }
  EXPECT_EQ(seen.size(), 100u);
  auto secret = RandomSecret(32);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->size(), 32u);
  EXPECT_FALSE(RandomBytes(2u << 20).ok());
}

}  // namespace
}  // namespace agentroot::common
