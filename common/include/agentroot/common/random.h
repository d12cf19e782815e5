// Cryptographically secure random bytes from OpenSSL's DRBG (RAND_bytes).
//
// Thread safety: safe from any thread.
#ifndef AGENTROOT_COMMON_RANDOM_H_
#define AGENTROOT_COMMON_RANDOM_H_

#include <cstddef>
#include <string>

#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

// Fails (UNAVAILABLE) only if the DRBG cannot be seeded; never returns
// predictable bytes. `size` is capped at 1 MiB (INVALID_ARGUMENT beyond).
Result<Bytes> RandomBytes(std::size_t size);
Result<SecretBytes> RandomSecret(std::size_t size);

// base64url of `size` random bytes: nonces, jti values, identifiers.
Result<std::string> RandomToken(std::size_t size = 32);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_RANDOM_H_
