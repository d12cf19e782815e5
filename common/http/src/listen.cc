#include <arpa/inet.h>

#include <charconv>

#include "agentroot/common/log.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/http/server.h"

namespace agentroot::http {

common::Result<TcpListenOptions> ParseListenAddress(std::string_view listen, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return common::InvalidArgumentError(std::string(what) + ": \"" + std::string(listen) + "\" " + std::string(why) +
                                        " (expected ADDRESS:PORT, e.g. 127.0.0.1:8443 or [::1]:8443)");
  };
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return bad("has no port");
  std::string_view address = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  const bool bracketed = address.size() >= 2 && address.front() == '[' && address.back() == ']';
  if (bracketed) address = address.substr(1, address.size() - 2);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return bad("has no valid port (0-65535)");
  }
  const std::string host(address);
  unsigned char buf[16];
  const bool v4 = ::inet_pton(AF_INET, host.c_str(), buf) == 1;
  const bool v6 = ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (!(v4 && !bracketed) && !(v6 && bracketed)) {
    return bad(v6 ? "needs brackets around an IPv6 address" : "has no IP address literal");
  }
  TcpListenOptions out;
  out.address = host;
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

common::Result<TcpListenOptions> TlsListenerFromFiles(std::string_view listen, std::string_view listen_what,
                                                      const std::string& certificate_file,
                                                      std::string_view certificate_what,
                                                      const std::string& private_key_file,
                                                      std::string_view key_what) {
  AR_ASSIGN_OR_RETURN(TcpListenOptions out, ParseListenAddress(listen, listen_what));
  AR_ASSIGN_OR_RETURN(out.tls.certificate_chain_pem, common::ReadConfiguredFile(certificate_file, certificate_what));
  AR_ASSIGN_OR_RETURN(std::string key, common::ReadConfiguredFile(private_key_file, key_what));
  out.tls.private_key_pem = common::SecretBytes(common::AsBytes(key));
  common::SecureWipe(key.data(), key.size());
  return out;
}

}  // namespace agentroot::http
