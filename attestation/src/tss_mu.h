// Private helpers around tss2-mu for the attestation library.
#ifndef AGENTROOT_ATTESTATION_SRC_TSS_MU_H_
#define AGENTROOT_ATTESTATION_SRC_TSS_MU_H_

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <cstdio>
#include <string>

#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::internal {

// "what: 0x000a0009 (mu:...)" with the tss2 decoded text.
inline common::Status MuError(const std::string& what, TSS2_RC rc) {
  char hex[16];
  std::snprintf(hex, sizeof(hex), "0x%08x", rc);
  return common::InvalidArgumentError(what + ": " + hex + " (" + Tss2_RC_Decode(rc) + ")");
}

// Unmarshals exactly one T from `data`; trailing bytes are an error.
template <typename T, typename Fn>
common::Result<T> UnmarshalExact(common::ByteView data, Fn unmarshal, const char* what) {
  T out{};
  size_t offset = 0;
  TSS2_RC rc = unmarshal(data.data(), data.size(), &offset, &out);
  if (rc != TSS2_RC_SUCCESS) return MuError(std::string("parsing ") + what, rc);
  if (offset != data.size()) {
    return common::InvalidArgumentError(std::string("parsing ") + what + ": " +
                                        std::to_string(data.size() - offset) +
                                        " trailing bytes");
  }
  return out;
}

// Marshals `value` into a fresh buffer of at most `max` bytes.
template <typename T, typename Fn>
common::Result<common::Bytes> Marshal(const T& value, Fn marshal, const char* what,
                                      size_t max = 4096) {
  common::Bytes out(max);
  size_t offset = 0;
  TSS2_RC rc = marshal(&value, out.data(), out.size(), &offset);
  if (rc != TSS2_RC_SUCCESS) return MuError(std::string("marshalling ") + what, rc);
  out.resize(offset);
  return out;
}

}  // namespace agentroot::attestation::internal

#endif  // AGENTROOT_ATTESTATION_SRC_TSS_MU_H_
