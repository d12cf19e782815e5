#include "agentroot/common/openssl.h"

#include <openssl/core_names.h>
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

namespace {

Result<EvpPkeyPtr> FromParams(const char* key_type, OSSL_PARAM_BLD* builder) {
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(builder));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, key_type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return OpenSslInternal("preparing key import");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return OpenSslError(StatusCode::kInvalidArgument, "key rejected by OpenSSL");
  }
  EvpPkeyPtr key(raw);
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return OpenSslError(StatusCode::kInvalidArgument, "public key fails validation");
  }
  return key;
}

}  // namespace

Result<EvpPkeyPtr> EcPublicKeyFromPoint(std::string_view group, ByteView uncompressed_point) {
  OsslParamBldPtr builder(OSSL_PARAM_BLD_new());
  std::string group_name(group);
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name.c_str(), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, uncompressed_point.data(),
                                       uncompressed_point.size()) != 1) {
    return OpenSslInternal("building EC key parameters");
  }
  return FromParams("EC", builder.get());
}

Result<EvpPkeyPtr> RsaPublicKeyFromParts(ByteView n, ByteView e) {
  OsslParamBldPtr builder(OSSL_PARAM_BLD_new());
  BignumPtr n_bn(BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr));
  BignumPtr e_bn(BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr));
  if (!builder || !n_bn || !e_bn || OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    return OpenSslInternal("building RSA key parameters");
  }
  return FromParams("RSA", builder.get());
}

}  // namespace agentroot::common
