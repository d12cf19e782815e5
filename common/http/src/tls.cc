#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <climits>

#include "agentroot/common/openssl.h"

namespace agentroot::http::internal {
namespace {

common::BioPtr MemBio(std::string_view data) {
  if (data.size() > static_cast<std::size_t>(INT_MAX)) return nullptr;
  return common::BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

common::Status InvalidPem(std::string_view what) {
  return common::OpenSslError(common::StatusCode::kInvalidArgument, what);
}

}  // namespace

common::Status ApplyTlsPolicy(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return common::OpenSslInternal("SSL_CTX_set_min_proto_version");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION |
                                 SSL_OP_LEGACY_SERVER_CONNECT);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    return common::OpenSslInternal("SSL_CTX_set_cipher_list");
  }
  if (SSL_CTX_set_ciphersuites(ctx, kTls13Ciphersuites) != 1) {
    return common::OpenSslInternal("SSL_CTX_set_ciphersuites");
  }
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return common::OpenSslInternal("SSL_CTX_set1_groups_list");
  }
  // No resumption: every connection authenticates afresh (client
  // certificates included); keep-alive amortizes the handshake instead.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  return common::Status::Ok();
}

common::Status LoadCertificateAndKey(SSL_CTX* ctx, std::string_view chain_pem,
                                     const common::SecretBytes& key_pem) {
  common::ClearOpenSslErrors();
  common::BioPtr bio = MemBio(chain_pem);
  if (!bio) return common::OpenSslInternal("BIO_new_mem_buf");
  common::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) return InvalidPem("certificate chain PEM: no certificate");
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return InvalidPem("SSL_CTX_use_certificate");
  }
  SSL_CTX_clear_chain_certs(ctx);
  while (true) {
    X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return InvalidPem("SSL_CTX_add0_chain_cert");
    }
  }
  common::ClearOpenSslErrors();  // the loop ends on "no start line"

  common::ByteView key = key_pem.Reveal();
  if (key.empty()) return common::InvalidArgumentError("private key PEM is empty");
  common::BioPtr key_bio = MemBio(
      std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  if (!key_bio) return common::OpenSslInternal("BIO_new_mem_buf");
  // A passphrase-protected key fails here instead of prompting on a tty.
  common::EvpPkeyPtr pkey(PEM_read_bio_PrivateKey(
      key_bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!pkey) return InvalidPem("private key PEM");
  if (SSL_CTX_use_PrivateKey(ctx, pkey.get()) != 1) {
    return InvalidPem("SSL_CTX_use_PrivateKey");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return InvalidPem("private key does not match the certificate");
  }
  return common::Status::Ok();
}

common::Status AddTrustAnchors(SSL_CTX* ctx, std::string_view pem, bool set_client_ca_list) {
  common::ClearOpenSslErrors();
  common::BioPtr bio = MemBio(pem);
  if (!bio) return common::OpenSslInternal("BIO_new_mem_buf");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (true) {
    common::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return InvalidPem("X509_STORE_add_cert");
    }
    if (set_client_ca_list && SSL_CTX_add_client_CA(ctx, cert.get()) != 1) {
      return InvalidPem("SSL_CTX_add_client_CA");
    }
    ++count;
  }
  common::ClearOpenSslErrors();
  if (count == 0) return common::InvalidArgumentError("CA PEM holds no certificate");
  return common::Status::Ok();
}

common::Status ConfigureServerContext(SSL_CTX* ctx, const TlsServerOptions& options) {
  AR_RETURN_IF_ERROR(ApplyTlsPolicy(ctx));
  AR_RETURN_IF_ERROR(LoadCertificateAndKey(ctx, options.certificate_chain_pem,
                                           options.private_key_pem)
                         .WithContext("server certificate"));
  if (options.client_auth == ClientAuth::kNone) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return common::Status::Ok();
  }
  AR_RETURN_IF_ERROR(AddTrustAnchors(ctx, options.client_ca_pem, /*set_client_ca_list=*/true)
                         .WithContext("client CA"));
  if (!options.client_crl_pem.empty()) {
    common::BioPtr bio = MemBio(options.client_crl_pem);
    if (!bio) return common::OpenSslInternal("BIO_new_mem_buf");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
      int ok = X509_STORE_add_crl(store, crl);
      X509_CRL_free(crl);
      if (ok != 1) return InvalidPem("X509_STORE_add_crl");
      ++count;
    }
    common::ClearOpenSslErrors();
    if (count == 0) return common::InvalidArgumentError("client CRL PEM holds no CRL");
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  // The client certificate must carry the TLS client purpose (EKU
  // clientAuth or no EKU): a server certificate cannot pose as a client.
  if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
    return common::OpenSslInternal("SSL_CTX_set_purpose");
  }
  SSL_CTX_set_verify_depth(ctx, 4);
  int mode = SSL_VERIFY_PEER;
  if (options.client_auth == ClientAuth::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  return common::Status::Ok();
}

std::string VerifyFailureText(const SSL* ssl) {
  long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return std::string();
  return std::string("certificate verify failed: ") +
         X509_verify_cert_error_string(result);
}

common::Bytes PeerCertificateDer(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return {};
  int len = i2d_X509(cert, nullptr);
  if (len <= 0) return {};
  common::Bytes der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  i2d_X509(cert, &p);
  return der;
}

}  // namespace agentroot::http::internal
