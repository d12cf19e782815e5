// Test-only helpers: load JSON vectors from common/testdata and build keys.
#ifndef AGENTROOT_COMMON_SRC_TEST_VECTORS_H_
#define AGENTROOT_COMMON_SRC_TEST_VECTORS_H_

#include <openssl/core_names.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/openssl.h"

namespace agentroot::common::testing {

inline Json LoadVector(const std::string& name) {
  std::ifstream in(std::string(AGENTROOT_COMMON_TESTDATA) + "/" + name);
  if (!in) throw std::runtime_error("missing test vector " + name);
  std::stringstream buf;
  buf << in.rdbuf();
  return Json::parse(buf.str());
}

// A P-256 private key from JWK-style base64url d, x, y.
inline EvpPkeyPtr P256PrivateKey(const std::string& d, const std::string& x, const std::string& y) {
  Bytes d_bytes = *Base64UrlDecode(d);
  Bytes point = {0x04};
  Bytes xb = *Base64UrlDecode(x);
  Bytes yb = *Base64UrlDecode(y);
  point.insert(point.end(), xb.begin(), xb.end());
  point.insert(point.end(), yb.begin(), yb.end());
  BignumPtr priv(BN_bin2bn(d_bytes.data(), static_cast<int>(d_bytes.size()), nullptr));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get());
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    throw std::runtime_error("cannot build P-256 key");
  }
  return EvpPkeyPtr(raw);
}

}  // namespace agentroot::common::testing

#endif  // AGENTROOT_COMMON_SRC_TEST_VECTORS_H_
