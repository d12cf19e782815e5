#include "agentroot/common/json.h"

#include <set>
#include <string>
#include <vector>

namespace agentroot::common {

Result<Json> ParseJsonStrict(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return InvalidArgumentError("json: input of " + std::to_string(text.size()) +
                                " bytes exceeds the limit of " +
                                std::to_string(limits.max_bytes));
  }
  // One set of member names per open object; the callback fires before the
  // value is stored, so duplicates are seen even though nlohmann keeps one.
  std::vector<std::set<std::string>> open_objects;
  std::string problem;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    if (!problem.empty()) return false;
    if (static_cast<std::size_t>(depth) > limits.max_depth) {
      problem = "json: nesting deeper than " + std::to_string(limits.max_depth);
      return false;
    }
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (open_objects.empty() || !open_objects.back().insert(key).second) {
          problem = "json: duplicate member name \"" + key.substr(0, 64) + "\"";
          return false;
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  Json result = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (!problem.empty()) return InvalidArgumentError(problem);
  if (result.is_discarded()) return InvalidArgumentError("json: syntax error");
  return result;
}

Result<std::string> GetString(const Json& object, std::string_view member) {
  if (!object.is_object()) return InvalidArgumentError("json: expected an object");
  auto it = object.find(member);
  if (it == object.end()) {
    return InvalidArgumentError("json: missing member \"" + std::string(member) + "\"");
  }
  if (!it->is_string()) {
    return InvalidArgumentError("json: member \"" + std::string(member) + "\" is not a string");
  }
  return it->get<std::string>();
}

}  // namespace agentroot::common
