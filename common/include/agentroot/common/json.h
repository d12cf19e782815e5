// Strict JSON parsing for security-relevant input (JOSE headers and claims,
// API bodies).
//
// nlohmann::json silently keeps the last of duplicate member names; two
// parsers that disagree on which duplicate wins are a classic signature
// bypass, so ParseJsonStrict rejects duplicates outright. It also bounds
// input size and nesting depth and never throws.
//
// Thread safety: pure function.
#ifndef AGENTROOT_COMMON_JSON_H_
#define AGENTROOT_COMMON_JSON_H_

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agentroot/common/status.h"

namespace agentroot::common {

using Json = nlohmann::json;

struct JsonLimits {
  std::size_t max_bytes = 1 << 20;
  // At most this many nested arrays/objects.
  std::size_t max_depth = 32;
};

// Parses `text` as one JSON value (RFC 8259; UTF-8 validated by nlohmann).
// INVALID_ARGUMENT on syntax errors, duplicate member names, trailing
// content, or limits exceeded.
Result<Json> ParseJsonStrict(std::string_view text, const JsonLimits& limits = {});

// Typed member access that returns INVALID_ARGUMENT naming the member instead
// of throwing. `object` must be a JSON object.
Result<std::string> GetString(const Json& object, std::string_view member);

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_JSON_H_
