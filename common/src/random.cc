#include "agentroot/common/random.h"

#include <openssl/rand.h>

#include "agentroot/common/openssl.h"

namespace agentroot::common {
namespace {
constexpr std::size_t kMaxRandomSize = 1 << 20;
}  // namespace

Result<Bytes> RandomBytes(std::size_t size) {
  if (size > kMaxRandomSize) return InvalidArgumentError("random: request too large");
  Bytes out(size);
  if (size > 0 && RAND_bytes(out.data(), static_cast<int>(size)) != 1) {
    return OpenSslError(StatusCode::kUnavailable, "RAND_bytes failed");
  }
  return out;
}

Result<SecretBytes> RandomSecret(std::size_t size) {
  if (size > kMaxRandomSize) return InvalidArgumentError("random: request too large");
  SecretBytes out(size);
  if (size > 0 && RAND_priv_bytes(out.MutableData(), static_cast<int>(size)) != 1) {
    return OpenSslError(StatusCode::kUnavailable, "RAND_priv_bytes failed");
  }
  return out;
}

Result<std::string> RandomToken(std::size_t size) {
  AR_ASSIGN_OR_RETURN(Bytes bytes, RandomBytes(size));
  return Base64UrlEncode(bytes);
}

}  // namespace agentroot::common
