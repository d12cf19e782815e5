#include "agentroot/common/secret_bytes.h"

#include <openssl/crypto.h>

namespace agentroot::common {

void SecureWipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

}  // namespace agentroot::common
