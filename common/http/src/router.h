// Internal: maps (method, path) to a handler. Built before the server
// starts, then only read (so concurrent Match() calls need no lock).
#ifndef AGENTROOT_HTTP_SRC_ROUTER_H_
#define AGENTROOT_HTTP_SRC_ROUTER_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/status.h"
#include "agentroot/http/http.h"

namespace agentroot::http::internal {

using Handler = std::function<Response(const Request&)>;

class Router {
 public:
  // See HttpServer::Handle.
  common::Status Add(std::string_view method, std::string_view pattern, Handler handler);

  struct Match {
    enum class Kind { kFound, kNotFound, kMethodNotAllowed, kBadPath };
    Kind kind = Kind::kNotFound;
    const Handler* handler = nullptr;  // kFound
    std::map<std::string, std::string, std::less<>> params;  // kFound
    std::string allow;  // kMethodNotAllowed: "GET, POST"
  };

  // `path` is the percent-encoded path of the request target. kBadPath when a
  // parameter segment has an invalid percent-escape.
  Match Find(std::string_view method, std::string_view path) const;

 private:
  struct Segment {
    bool is_param = false;
    std::string text;  // literal text or parameter name
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Splits "/a/b" into {"a","b"}; "/" into {}; keeps empty segments ("/a//b").
std::vector<std::string_view> SplitPath(std::string_view path);

}  // namespace agentroot::http::internal

#endif  // AGENTROOT_HTTP_SRC_ROUTER_H_
