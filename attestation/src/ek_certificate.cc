#include "agentroot/attestation/ek_certificate.h"

#include <ctime>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agentroot/common/signer.h"

namespace agentroot::attestation {

using common::InvalidArgumentError;
using common::Status;
using common::UnauthenticatedError;

namespace {

void FreeX509Stack(STACK_OF(X509)* stack) { sk_X509_pop_free(stack, X509_free); }

std::string NameText(const X509_NAME* name) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

Result<std::vector<common::X509Ptr>> ParsePemCertificates(std::string_view pem) {
  common::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return common::OpenSslInternal("pem: BIO");
  std::vector<common::X509Ptr> out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert);
  }
  common::ClearOpenSslErrors();  // the loop ends with a "no start line" error
  if (out.empty()) return InvalidArgumentError("pem: no certificate found");
  return out;
}

Result<common::X509Ptr> ParseCertificate(ByteView der_or_pem) {
  std::string_view text(reinterpret_cast<const char*>(der_or_pem.data()), der_or_pem.size());
  if (text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    AR_ASSIGN_OR_RETURN(auto certs, ParsePemCertificates(text));
    if (certs.size() != 1) return InvalidArgumentError("certificate: expected exactly one");
    return std::move(certs.front());
  }
  const uint8_t* p = der_or_pem.data();
  common::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der_or_pem.size())));
  if (!cert) return common::OpenSslError(common::StatusCode::kInvalidArgument, "certificate: bad DER");
  if (p != der_or_pem.data() + der_or_pem.size()) {
    return InvalidArgumentError("certificate: trailing bytes after DER");
  }
  return cert;
}

Result<std::unique_ptr<EkCertificateValidator>> EkCertificateValidator::Create(std::string_view trusted_roots_pem) {
  AR_ASSIGN_OR_RETURN(auto roots, ParsePemCertificates(trusted_roots_pem));
  return std::unique_ptr<EkCertificateValidator>(new EkCertificateValidator(std::move(roots)));
}

Result<EkValidationResult> EkCertificateValidator::Validate(ByteView ek_certificate,
                                                            std::string_view intermediates_pem,
                                                            const TpmPublic& ek_public) const {
  AR_ASSIGN_OR_RETURN(common::X509Ptr cert, ParseCertificate(ek_certificate));
  common::X509StorePtr store(X509_STORE_new());
  if (!store) return common::OpenSslInternal("ek: X509_STORE_new");
  for (const auto& root : roots_) {
    if (X509_STORE_add_cert(store.get(), root.get()) != 1) return common::OpenSslInternal("ek: adding root");
  }
  common::OpenSslPtr<STACK_OF(X509), FreeX509Stack> untrusted(sk_X509_new_null());
  std::vector<common::X509Ptr> intermediates;
  if (!intermediates_pem.empty()) {
    AR_ASSIGN_OR_RETURN(intermediates, ParsePemCertificates(intermediates_pem));
    for (auto& c : intermediates) {
      if (sk_X509_push(untrusted.get(), c.get()) <= 0) return common::OpenSslInternal("ek: stack");
      c.release();  // owned by the stack now
    }
  }
  common::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), untrusted.get()) != 1) {
    return common::OpenSslInternal("ek: verify context");
  }
  // EK certificates carry TCG-specific critical extensions (a subject
  // alternative name naming the TPM model) that OpenSSL handles; the purpose
  // is not TLS, so check the chain only.
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    common::ClearOpenSslErrors();
    return UnauthenticatedError(std::string("ek: certificate does not chain to a trusted manufacturer CA: ") +
                                X509_verify_cert_error_string(err));
  }
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr presented, ek_public.ToOpenSslKey());
  EVP_PKEY* certified = X509_get0_pubkey(cert.get());
  if (certified == nullptr || EVP_PKEY_eq(certified, presented.get()) != 1) {
    common::ClearOpenSslErrors();
    return UnauthenticatedError("ek: the certificate's key is not the presented EK");
  }
  EkValidationResult out;
  out.subject = NameText(X509_get_subject_name(cert.get()));
  out.issuer = NameText(X509_get_issuer_name(cert.get()));
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  common::BignumPtr serial_bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (serial_bn) {
    char* hex = BN_bn2hex(serial_bn.get());
    out.serial_hex = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
  }
  int spki_len = i2d_PUBKEY(certified, nullptr);
  if (spki_len > 0) {
    Bytes spki(static_cast<std::size_t>(spki_len));
    uint8_t* p = spki.data();
    i2d_PUBKEY(certified, &p);
    out.ek_public_sha256 = common::Sha256(spki);
  }
  return out;
}

namespace {

int64_t UnixTime(const ASN1_TIME* time) {
  struct tm tm {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

Result<CertificateSummary> SummarizeCertificate(const X509* cert) {
  if (cert == nullptr) return InvalidArgumentError("certificate: missing");
  CertificateSummary out;
  out.subject = NameText(X509_get_subject_name(cert));
  out.issuer = NameText(X509_get_issuer_name(cert));
  common::BignumPtr serial_bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial_bn) {
    char* hex = BN_bn2hex(serial_bn.get());
    out.serial_hex = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
  }
  out.not_before = UnixTime(X509_get0_notBefore(cert));
  out.not_after = UnixTime(X509_get0_notAfter(cert));
  out.is_ca = X509_check_ca(const_cast<X509*>(cert)) == 1;
  int len = i2d_X509(cert, nullptr);
  if (len <= 0) return common::OpenSslInternal("certificate: DER");
  out.der.resize(static_cast<std::size_t>(len));
  uint8_t* p = out.der.data();
  i2d_X509(cert, &p);
  return out;
}

Status VerifyCertificateChain(const X509* cert, std::string_view roots_pem, int64_t now, bool client_auth) {
  AR_ASSIGN_OR_RETURN(auto roots, ParsePemCertificates(roots_pem));
  common::X509StorePtr store(X509_STORE_new());
  if (!store) return common::OpenSslInternal("chain: X509_STORE_new");
  for (const auto& root : roots) {
    if (X509_STORE_add_cert(store.get(), root.get()) != 1) return common::OpenSslInternal("chain: adding root");
  }
  common::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(cert), nullptr) != 1) {
    return common::OpenSslInternal("chain: verify context");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now));
  if (client_auth && X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return common::OpenSslInternal("chain: purpose");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    common::ClearOpenSslErrors();
    return UnauthenticatedError(std::string("certificate: ") + X509_verify_cert_error_string(err));
  }
  return Status::Ok();
}

}  // namespace agentroot::attestation
