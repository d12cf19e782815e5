// Byte strings and their text encodings: hex and strict base64url.
//
// Decoders are strict on purpose: a security token has exactly one valid
// encoding, so every other spelling is rejected rather than normalised.
// Base64UrlDecode (RFC 4648 §5, as used by JOSE) rejects padding, characters
// outside the URL-safe alphabet, whitespace, impossible lengths and
// non-canonical trailing bits. HexDecode accepts only an even number of
// [0-9a-fA-F].
//
// Thread safety: pure functions.
#ifndef AGENTROOT_COMMON_BYTES_H_
#define AGENTROOT_COMMON_BYTES_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::common {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// The bytes of a string, and back. No encoding is applied.
Bytes ToBytes(std::string_view text);
std::string ToString(ByteView bytes);
inline ByteView AsBytes(std::string_view text) {
  return ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// Lower-case hex.
std::string HexEncode(ByteView bytes);
Result<Bytes> HexDecode(std::string_view hex);

// Unpadded base64url.
std::string Base64UrlEncode(ByteView bytes);
inline std::string Base64UrlEncode(std::string_view text) { return Base64UrlEncode(AsBytes(text)); }
Result<Bytes> Base64UrlDecode(std::string_view text);

// Compares in time that depends only on the lengths (CRYPTO_memcmp). Returns
// false when the lengths differ.
bool ConstantTimeEquals(ByteView a, ByteView b);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_BYTES_H_
