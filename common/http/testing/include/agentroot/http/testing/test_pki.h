// TestPki: a throwaway certificate authority for tests, made with the
// OpenSSL C API at run time. Keys (ECDSA P-256) exist only in memory; nothing
// is written to disk or committed.
//
// Thread safety: not thread-safe; create and issue from one thread.
#ifndef AGENTROOT_HTTP_TESTING_TEST_PKI_H_
#define AGENTROOT_HTTP_TESTING_TEST_PKI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/http/server.h"

namespace agentroot::http::testing {

struct TestCredential {
  std::string certificate_pem;  // the leaf only (the CA is the direct issuer)
  common::Bytes certificate_der;
  common::SecretBytes private_key_pem;  // PKCS#8 PEM
};

struct IssueOptions {
  std::string common_name;
  std::string subject_alt_names;  // OpenSSL syntax: "DNS:localhost,IP:127.0.0.1"; may be empty
  std::string extended_key_usage;  // "serverAuth", "clientAuth", or empty for none
  long not_before_offset_seconds = -3600;
  long not_after_offset_seconds = 24 * 3600;
};

class TestPki {
 public:
  static common::Result<std::unique_ptr<TestPki>> Create(std::string_view ca_common_name);

  const std::string& ca_certificate_pem() const { return ca_pem_; }

  common::Result<TestCredential> Issue(const IssueOptions& options);

  // serverAuth, SAN DNS:localhost, IP:127.0.0.1, IP:::1 unless `san` given.
  common::Result<TestCredential> IssueServer(
      std::string_view san = "DNS:localhost,IP:127.0.0.1,IP:::1");
  // A TLS listener on 127.0.0.1:`port` (0: an ephemeral one) with a fresh
  // server credential from IssueServer(); set tls.client_auth and
  // tls.client_ca_pem on it for mutual TLS.
  common::Result<TcpListenOptions> LoopbackListener(std::uint16_t port = 0);
  // clientAuth, CN = common_name.
  common::Result<TestCredential> IssueClient(std::string_view common_name);

  // A CRL (PEM) signed by this CA revoking the certificate `der`.
  common::Result<std::string> RevocationList(const common::Bytes& revoked_der);

 private:
  TestPki() = default;
  common::EvpPkeyPtr ca_key_;
  common::X509Ptr ca_cert_;
  std::string ca_pem_;
  std::uint64_t next_serial_ = 2;
};

}  // namespace agentroot::http::testing

#endif  // AGENTROOT_HTTP_TESTING_TEST_PKI_H_
