// Endorsement key certificate validation.
//
// A host proves "this AK lives in a genuine TPM" by presenting its EK
// certificate. The verifier checks that the certificate chains to one of the
// TPM manufacturer CAs it was configured to trust (intermediates may be
// supplied by the host, they are untrusted until chained), and that the key
// in the certificate is exactly the EK public area the host presents, which
// later receives the MakeCredential challenge.
//
// Thread safety: an EkCertificateValidator is immutable after Create and
// may be shared between threads.
#ifndef AGENTROOT_ATTESTATION_EK_CERTIFICATE_H_
#define AGENTROOT_ATTESTATION_EK_CERTIFICATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation {

struct EkValidationResult {
  std::string subject;   // RFC 2253 text, may be empty for TCG EK certificates
  std::string issuer;
  std::string serial_hex;
  Bytes ek_public_sha256;  // SHA-256 of the certificate's SubjectPublicKeyInfo DER
};

class EkCertificateValidator {
 public:
  // `trusted_roots_pem`: one or more PEM certificates (concatenated), the
  // manufacturer CAs. INVALID_ARGUMENT when none parse.
  static Result<std::unique_ptr<EkCertificateValidator>> Create(std::string_view trusted_roots_pem);

  // `ek_certificate` is DER or PEM; `intermediates_pem` may be empty.
  // UNAUTHENTICATED when the chain does not verify (the OpenSSL reason is in
  // the message) or the certified key is not `ek_public`.
  Result<EkValidationResult> Validate(ByteView ek_certificate, std::string_view intermediates_pem,
                                      const TpmPublic& ek_public) const;

 private:
  explicit EkCertificateValidator(std::vector<common::X509Ptr> roots) : roots_(std::move(roots)) {}

  std::vector<common::X509Ptr> roots_;
};

// Parses every PEM certificate in `pem` (at least one, else INVALID_ARGUMENT).
Result<std::vector<common::X509Ptr>> ParsePemCertificates(std::string_view pem);
// Parses one certificate given as DER or PEM.
Result<common::X509Ptr> ParseCertificate(ByteView der_or_pem);

// What an operator sees of a certificate.
struct CertificateSummary {
  std::string subject;  // RFC 2253
  std::string issuer;
  std::string serial_hex;
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;
  bool is_ca = false;      // basicConstraints CA:TRUE
  Bytes der;
};
Result<CertificateSummary> SummarizeCertificate(const X509* cert);

// Verifies that `cert` chains to one of the PEM certificates in `roots_pem`
// and is valid at `now` (Unix seconds); with `client_auth`, that it may be
// used as a TLS client certificate (extendedKeyUsage clientAuth, when
// present). UNAUTHENTICATED with OpenSSL's reason otherwise.
common::Status VerifyCertificateChain(const X509* cert, std::string_view roots_pem, int64_t now, bool client_auth);

}  // namespace agentroot::attestation

#endif  // AGENTROOT_ATTESTATION_EK_CERTIFICATE_H_
