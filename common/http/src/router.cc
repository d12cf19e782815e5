#include "router.h"

#include <algorithm>
#include <set>
#include <utility>

namespace agentroot::http::internal {
namespace {

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsParamNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Literal beats parameter, position by position from the left.
bool MoreSpecific(const std::vector<bool>& a, const std::vector<bool>& b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] != b[i]) return a[i];
  }
  return false;
}

}  // namespace

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path == "/") return out;
  if (path.front() == '/') path.remove_prefix(1);
  while (true) {
    std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

common::Status Router::Add(std::string_view method, std::string_view pattern, Handler handler) {
  if (method.empty() || !std::all_of(method.begin(), method.end(), IsTokenChar)) {
    return common::InvalidArgumentError("invalid method \"" + std::string(method) + "\"");
  }
  if (!handler) return common::InvalidArgumentError("empty handler");
  if (pattern.empty() || pattern.front() != '/') {
    return common::InvalidArgumentError("path pattern must start with '/'");
  }
  Route route;
  route.method = std::string(method);
  route.handler = std::move(handler);
  std::set<std::string_view> names;
  for (std::string_view seg : SplitPath(pattern)) {
    if (seg.empty()) return common::InvalidArgumentError("empty segment in path pattern");
    Segment s;
    if (seg.front() == '{') {
      if (seg.size() < 3 || seg.back() != '}' ||
          !std::all_of(seg.begin() + 1, seg.end() - 1, IsParamNameChar)) {
        return common::InvalidArgumentError("bad parameter segment \"" + std::string(seg) + "\"");
      }
      s.is_param = true;
      s.text = std::string(seg.substr(1, seg.size() - 2));
      if (!names.insert(seg).second) {
        return common::InvalidArgumentError("duplicate parameter " + std::string(seg));
      }
    } else {
      if (seg.find_first_of("{}?#") != std::string_view::npos) {
        return common::InvalidArgumentError("bad literal segment \"" + std::string(seg) + "\"");
      }
      s.text = std::string(seg);
    }
    route.segments.push_back(std::move(s));
  }
  for (const Route& r : routes_) {
    if (r.method != route.method || r.segments.size() != route.segments.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < r.segments.size() && same; ++i) {
      const Segment& a = r.segments[i];
      const Segment& b = route.segments[i];
      same = a.is_param == b.is_param && (a.is_param || a.text == b.text);
    }
    if (same) {
      return common::AlreadyExistsError("route " + route.method + " " + std::string(pattern) +
                                        " already registered");
    }
  }
  routes_.push_back(std::move(route));
  return common::Status::Ok();
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  std::vector<std::string_view> segs = SplitPath(path);
  const Route* best = nullptr;
  std::vector<bool> best_shape;
  std::set<std::string> allowed;
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::vector<bool> shape;
    bool ok = true;
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      const Segment& s = r.segments[i];
      ok = s.is_param ? !segs[i].empty() : s.text == segs[i];
      shape.push_back(!s.is_param);
    }
    if (!ok) continue;
    if (r.method != method) {
      allowed.insert(r.method);
      continue;
    }
    if (best == nullptr || MoreSpecific(shape, best_shape)) {
      best = &r;
      best_shape = std::move(shape);
    }
  }
  Match m;
  if (best == nullptr) {
    if (allowed.empty()) return m;
    m.kind = Match::Kind::kMethodNotAllowed;
    for (const std::string& a : allowed) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += a;
    }
    return m;
  }
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (!best->segments[i].is_param) continue;
    common::Result<std::string> decoded = PercentDecode(segs[i]);
    if (!decoded.ok()) {
      m.kind = Match::Kind::kBadPath;
      return m;
    }
    m.params.emplace(best->segments[i].text, std::move(decoded).value());
  }
  m.kind = Match::Kind::kFound;
  m.handler = &best->handler;
  return m;
}

}  // namespace agentroot::http::internal
