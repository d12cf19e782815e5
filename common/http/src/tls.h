// Internal: the TLS policy of the HTTP layer, applied to an OpenSSL SSL_CTX
// (plain OpenSSL, no Asio/Beast, so it compiles fast and is shared by the
// server and the client).
#ifndef AGENTROOT_HTTP_SRC_TLS_H_
#define AGENTROOT_HTTP_SRC_TLS_H_

#include <openssl/ssl.h>

#include <string>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/status.h"
#include "agentroot/http/server.h"

namespace agentroot::http::internal {

// TLS 1.2 suites: ECDHE key exchange with AEAD ciphers only.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kTls13Ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kGroups = "X25519:P-256:P-384";

// Version floor, suites, groups, no compression, no renegotiation, no
// session resumption (tickets or cache). For both sides.
common::Status ApplyTlsPolicy(SSL_CTX* ctx);

// Certificate chain + key (checked to match); the key PEM is parsed from
// memory and not copied elsewhere.
common::Status LoadCertificateAndKey(SSL_CTX* ctx, std::string_view chain_pem,
                                     const common::SecretBytes& key_pem);

// Adds every certificate in `pem` to the context's trust store. Returns the
// number added through `count` (may be null). INVALID_ARGUMENT when none.
common::Status AddTrustAnchors(SSL_CTX* ctx, std::string_view pem, bool set_client_ca_list);

// Server side: the full policy plus client authentication.
common::Status ConfigureServerContext(SSL_CTX* ctx, const TlsServerOptions& options);

// "certificate verify failed: hostname mismatch" and similar, from the
// SSL's verify result; empty when the verification succeeded.
std::string VerifyFailureText(const SSL* ssl);

// Leaf certificate of the peer as DER; empty when none.
common::Bytes PeerCertificateDer(const SSL* ssl);

}  // namespace agentroot::http::internal

#endif  // AGENTROOT_HTTP_SRC_TLS_H_
