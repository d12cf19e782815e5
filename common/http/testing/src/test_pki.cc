#include "agentroot/http/testing/test_pki.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <utility>

namespace agentroot::http::testing {
namespace {

using common::OpenSslInternal;

common::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  if (value.empty()) return common::Status::Ok();
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslInternal("X509V3_EXT_conf_nid " + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslInternal("X509_add_ext");
  return common::Status::Ok();
}

common::Result<std::string> CertPem(X509* cert) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslInternal("PEM_write_bio_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

common::Result<common::SecretBytes> KeyPem(EVP_PKEY* key) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslInternal("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  common::SecretBytes out(common::ByteView(reinterpret_cast<const uint8_t*>(data),
                                           static_cast<std::size_t>(len)));
  common::SecureWipe(data, static_cast<std::size_t>(len));
  return out;
}

common::Result<common::X509Ptr> NewCert(std::uint64_t serial, const std::string& cn,
                                        EVP_PKEY* subject_key, long not_before, long not_after) {
  common::X509Ptr cert(X509_new());
  if (!cert) return OpenSslInternal("X509_new");
  if (X509_set_version(cert.get(), 2) != 1 ||
      ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after) == nullptr ||
      X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpenSslInternal("building certificate");
  }
  return cert;
}

}  // namespace

common::Result<std::unique_ptr<TestPki>> TestPki::Create(std::string_view ca_common_name) {
  std::unique_ptr<TestPki> pki(new TestPki());
  pki->ca_key_.reset(EVP_EC_gen("P-256"));
  if (!pki->ca_key_) return OpenSslInternal("EVP_EC_gen");
  AR_ASSIGN_OR_RETURN(pki->ca_cert_, NewCert(1, std::string(ca_common_name), pki->ca_key_.get(),
                                             -3600, 7 * 24 * 3600));
  X509* ca = pki->ca_cert_.get();
  if (X509_set_issuer_name(ca, X509_get_subject_name(ca)) != 1) return OpenSslInternal("issuer");
  AR_RETURN_IF_ERROR(AddExtension(ca, ca, NID_basic_constraints, "critical,CA:TRUE"));
  AR_RETURN_IF_ERROR(AddExtension(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign"));
  AR_RETURN_IF_ERROR(AddExtension(ca, ca, NID_subject_key_identifier, "hash"));
  if (X509_sign(ca, pki->ca_key_.get(), EVP_sha256()) <= 0) return OpenSslInternal("X509_sign");
  AR_ASSIGN_OR_RETURN(pki->ca_pem_, CertPem(ca));
  return pki;
}

common::Result<TestCredential> TestPki::Issue(const IssueOptions& options) {
  common::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslInternal("EVP_EC_gen");
  AR_ASSIGN_OR_RETURN(common::X509Ptr cert,
                      NewCert(next_serial_++, options.common_name, key.get(),
                              options.not_before_offset_seconds, options.not_after_offset_seconds));
  X509* c = cert.get();
  X509* ca = ca_cert_.get();
  if (X509_set_issuer_name(c, X509_get_subject_name(ca)) != 1) return OpenSslInternal("issuer");
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_basic_constraints, "critical,CA:FALSE"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_key_usage, "critical,digitalSignature"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_ext_key_usage, options.extended_key_usage));
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_subject_alt_name, options.subject_alt_names));
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_subject_key_identifier, "hash"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(c, ca_key_.get(), EVP_sha256()) <= 0) return OpenSslInternal("X509_sign");

  TestCredential out;
  AR_ASSIGN_OR_RETURN(out.certificate_pem, CertPem(c));
  int len = i2d_X509(c, nullptr);
  if (len <= 0) return OpenSslInternal("i2d_X509");
  out.certificate_der.resize(static_cast<std::size_t>(len));
  unsigned char* p = out.certificate_der.data();
  i2d_X509(c, &p);
  AR_ASSIGN_OR_RETURN(out.private_key_pem, KeyPem(key.get()));
  return out;
}

common::Result<TestCredential> TestPki::IssueServer(std::string_view san) {
  IssueOptions options;
  options.common_name = "agentroot test server";
  options.subject_alt_names = std::string(san);
  options.extended_key_usage = "serverAuth";
  return Issue(options);
}

common::Result<TcpListenOptions> TestPki::LoopbackListener(std::uint16_t port) {
  AR_ASSIGN_OR_RETURN(TestCredential credential, IssueServer());
  TcpListenOptions tcp;
  tcp.address = "127.0.0.1";
  tcp.port = port;
  tcp.tls.certificate_chain_pem = std::move(credential.certificate_pem);
  tcp.tls.private_key_pem = std::move(credential.private_key_pem);
  return tcp;
}

common::Result<TestCredential> TestPki::IssueClient(std::string_view common_name) {
  IssueOptions options;
  options.common_name = std::string(common_name);
  options.extended_key_usage = "clientAuth";
  return Issue(options);
}

common::Result<std::string> TestPki::RevocationList(const common::Bytes& revoked_der) {
  const unsigned char* p = revoked_der.data();
  common::X509Ptr revoked(d2i_X509(nullptr, &p, static_cast<long>(revoked_der.size())));
  if (!revoked) return OpenSslInternal("d2i_X509");
  using CrlPtr = common::OpenSslPtr<X509_CRL, X509_CRL_free>;
  CrlPtr crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert_.get())) != 1) {
    return OpenSslInternal("X509_CRL_new");
  }
  using TimePtr = common::OpenSslPtr<ASN1_TIME, ASN1_TIME_free>;
  TimePtr last(X509_gmtime_adj(nullptr, -60));
  TimePtr next(X509_gmtime_adj(nullptr, 24 * 3600));
  X509_REVOKED* entry = X509_REVOKED_new();
  if (!last || !next || entry == nullptr ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1 ||
      X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(revoked.get())) != 1 ||
      X509_REVOKED_set_revocationDate(entry, last.get()) != 1 ||
      X509_CRL_add0_revoked(crl.get(), entry) != 1) {
    X509_REVOKED_free(entry);
    return OpenSslInternal("building CRL");
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), ca_key_.get(), EVP_sha256()) <= 0) {
    return OpenSslInternal("X509_CRL_sign");
  }
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) return OpenSslInternal("PEM CRL");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace agentroot::http::testing
