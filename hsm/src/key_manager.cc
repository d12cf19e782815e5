#include "agentroot/hsm/key_manager.h"

namespace agentroot::hsm {

Status ValidateKeyId(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return common::InvalidArgumentError("key id must be 1-64 characters");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return common::InvalidArgumentError("key id may contain only [A-Za-z0-9._-]");
  }
  if (id == "." || id == "..") return common::InvalidArgumentError("key id may not be . or ..");
  return Status::Ok();
}

}  // namespace agentroot::hsm
