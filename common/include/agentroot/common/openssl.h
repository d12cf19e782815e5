// OpenSSL 3 ownership wrappers and error capture.
//
// Every OpenSSL object agentroot holds is owned by a std::unique_ptr with the
// type's own free function as deleter, so error paths cannot leak. Errors
// from OpenSSL are turned into Status values that keep the error queue's text
// (OpenSslError), never a bare "internal error".
//
// Thread safety: the wrappers are as thread-safe as the objects they hold;
// OpenSslError drains the calling thread's error queue only.
#ifndef AGENTROOT_COMMON_OPENSSL_H_
#define AGENTROOT_COMMON_OPENSSL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string_view>

#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::common {

template <auto Fn>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

template <typename T, auto Fn>
using OpenSslPtr = std::unique_ptr<T, OpenSslDeleter<Fn>>;

using BioPtr = OpenSslPtr<BIO, BIO_free_all>;
using BignumPtr = OpenSslPtr<BIGNUM, BN_clear_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;
using EcdsaSigPtr = OpenSslPtr<ECDSA_SIG, ECDSA_SIG_free>;
using EvpMdCtxPtr = OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpPkeyCtxPtr = OpenSslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using OsslParamBldPtr = OpenSslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using OsslParamPtr = OpenSslPtr<OSSL_PARAM, OSSL_PARAM_free>;
using X509Ptr = OpenSslPtr<X509, X509_free>;
using X509StorePtr = OpenSslPtr<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr = OpenSslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

// Builds a Status of `code` whose message is `what` followed by every entry
// of this thread's OpenSSL error queue (which it clears).
Status OpenSslError(StatusCode code, std::string_view what);

// Shorthand for OpenSslError(StatusCode::kInternal, what).
Status OpenSslInternal(std::string_view what);

// A public key from an uncompressed EC point (0x04 || x || y) on `group`
// ("prime256v1", "secp384r1"), or from a big-endian RSA modulus and
// exponent. Both run OpenSSL's quick public-key check (point on the curve;
// complete for the prime-order curves used here). INVALID_ARGUMENT, with the
// OpenSSL reason, for a key OpenSSL rejects.
Result<EvpPkeyPtr> EcPublicKeyFromPoint(std::string_view group, ByteView uncompressed_point);
Result<EvpPkeyPtr> RsaPublicKeyFromParts(ByteView n, ByteView e);

// Clears this thread's OpenSSL error queue; call before an operation whose
// failure is expected (a signature that should not verify) so stale entries
// do not leak into the next error message.
void ClearOpenSslErrors();

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_OPENSSL_H_
