#include "agentroot/common/json.h"

#include <string>
#include <vector>

namespace agentroot::common {

namespace {

// Builds the DOM through nlohmann's SAX interface, refusing a duplicate
// member name the moment its key arrives (the member is looked up in the
// object being built: no side table) and nesting beyond the limit. Cheaper
// than nlohmann's callback parser, which this replaced: no std::function per
// event and no set of names per object. Container pointers on the stack stay
// valid: a parent never grows while one of its children is open.
class StrictDomBuilder {
 public:
  StrictDomBuilder(Json& root, std::size_t max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return Put(Json(nullptr)); }
  bool boolean(bool value) { return Put(Json(value)); }
  bool number_integer(Json::number_integer_t value) { return Put(Json(value)); }
  bool number_unsigned(Json::number_unsigned_t value) { return Put(Json(value)); }
  bool number_float(Json::number_float_t value, const Json::string_t& /*text*/) {
    return Put(Json(value));
  }
  bool string(Json::string_t& value) { return Put(Json(std::move(value))); }
  bool binary(Json::binary_t& /*value*/) {
    problem_ = "json: binary value";  // not produced by the JSON lexer
    return false;
  }
  bool start_object(std::size_t /*elements*/) { return Open(Json::value_t::object); }
  bool key(Json::string_t& name) {
    auto& members = stack_.back()->get_ref<Json::object_t&>();
    auto [it, inserted] = members.emplace(std::move(name), nullptr);
    if (!inserted) {
      problem_ = "json: duplicate member name \"" + it->first.substr(0, 64) + "\"";
      return false;
    }
    member_ = &it->second;
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*elements*/) { return Open(Json::value_t::array); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const Json::exception& /*error*/) {
    return false;
  }

  const std::string& problem() const { return problem_; }

 private:
  // Where the next value goes: the root, a new array element, or the member
  // named by the last key.
  Json* Slot() {
    if (stack_.empty()) return &root_;
    Json* top = stack_.back();
    if (top->is_array()) {
      auto& elements = top->get_ref<Json::array_t&>();
      elements.emplace_back();
      return &elements.back();
    }
    return member_;
  }
  bool Put(Json value) {
    *Slot() = std::move(value);
    return true;
  }
  bool Open(Json::value_t type) {
    if (stack_.size() >= max_depth_) {
      problem_ = "json: nesting deeper than " + std::to_string(max_depth_);
      return false;
    }
    Json* slot = Slot();
    *slot = Json(type);
    stack_.push_back(slot);
    return true;
  }

  Json& root_;
  const std::size_t max_depth_;
  std::vector<Json*> stack_;
  Json* member_ = nullptr;
  std::string problem_;
};

}  // namespace

Result<Json> ParseJsonStrict(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return InvalidArgumentError("json: input of " + std::to_string(text.size()) +
                                " bytes exceeds the limit of " +
                                std::to_string(limits.max_bytes));
  }
  Json result;
  StrictDomBuilder builder(result, limits.max_depth);
  // strict: the whole input is one value (trailing content is an error).
  const bool ok = Json::sax_parse(text.begin(), text.end(), &builder,
                                  Json::input_format_t::json, /*strict=*/true);
  if (!builder.problem().empty()) return InvalidArgumentError(builder.problem());
  if (!ok) return InvalidArgumentError("json: syntax error");
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
