#include "agentroot/common/openssl.h"

#include <openssl/err.h>

#include <string>

namespace agentroot::common {

Status OpenSslError(StatusCode code, std::string_view what) {
  std::string message(what);
  unsigned long err = 0;
  const char* file = nullptr;
  int line = 0;
  bool first = true;
  while ((err = ERR_get_error_all(&file, &line, nullptr, nullptr, nullptr)) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    message += first ? " (openssl: " : "; ";
    message += buf;
    first = false;
  }
  if (!first) message += ")";
  return Status(code, std::move(message));
}

Status OpenSslInternal(std::string_view what) {
  return OpenSslError(StatusCode::kInternal, what);
}

void ClearOpenSslErrors() { ERR_clear_error(); }

}  // namespace agentroot::common
