#include "testing/fake_tpm.h"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include <stdexcept>

namespace agentroot::attestation::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(what);
}

Bytes BnParam(const EVP_PKEY* key, const char* name, std::size_t pad) {
  BIGNUM* raw = nullptr;
  Check(EVP_PKEY_get_bn_param(key, name, &raw) == 1, name);
  common::BignumPtr bn(raw);
  std::size_t size = pad != 0 ? pad : static_cast<std::size_t>(BN_num_bytes(bn.get()));
  Bytes out(size);
  Check(BN_bn2binpad(bn.get(), out.data(), static_cast<int>(size)) == static_cast<int>(size), "pad");
  return out;
}

Bytes MarshalPublic(const TPMT_PUBLIC& area) {
  TPM2B_PUBLIC pub{};
  pub.publicArea = area;
  Bytes out(sizeof(TPM2B_PUBLIC) + 8);
  size_t offset = 0;
  Check(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, out.data(), out.size(), &offset) == TSS2_RC_SUCCESS, "marshal public");
  out.resize(offset);
  return out;
}

}  // namespace

FakeKey MakeEccKey(uint16_t curve, uint32_t attributes, uint16_t scheme, uint16_t scheme_hash,
                   uint16_t name_alg, uint16_t sym_alg, uint16_t sym_bits) {
  FakeKey out;
  out.key.reset(EVP_EC_gen(curve == TPM2_ECC_NIST_P256 ? "P-256" : "P-384"));
  Check(out.key != nullptr, "keygen");
  std::size_t field = curve == TPM2_ECC_NIST_P256 ? 32 : 48;
  TPMT_PUBLIC area{};
  area.type = TPM2_ALG_ECC;
  area.nameAlg = name_alg;
  area.objectAttributes = attributes;
  area.parameters.eccDetail.symmetric.algorithm = sym_alg;
  if (sym_alg != TPM2_ALG_NULL) {
    area.parameters.eccDetail.symmetric.keyBits.sym = sym_bits;
    area.parameters.eccDetail.symmetric.mode.sym = TPM2_ALG_CFB;
  }
  area.parameters.eccDetail.scheme.scheme = scheme;
  if (scheme != TPM2_ALG_NULL) area.parameters.eccDetail.scheme.details.ecdsa.hashAlg = scheme_hash;
  area.parameters.eccDetail.curveID = curve;
  area.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  Bytes x = BnParam(out.key.get(), OSSL_PKEY_PARAM_EC_PUB_X, field);
  Bytes y = BnParam(out.key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, field);
  area.unique.ecc.x.size = static_cast<uint16_t>(field);
  area.unique.ecc.y.size = static_cast<uint16_t>(field);
  std::copy(x.begin(), x.end(), area.unique.ecc.x.buffer);
  std::copy(y.begin(), y.end(), area.unique.ecc.y.buffer);
  out.tpm2b_public = MarshalPublic(area);
  return out;
}

FakeKey MakeRsaKey(uint32_t attributes, uint16_t scheme, uint16_t scheme_hash, uint16_t sym_alg,
                   uint16_t sym_bits) {
  FakeKey out;
  out.key.reset(EVP_RSA_gen(2048));
  Check(out.key != nullptr, "keygen");
  TPMT_PUBLIC area{};
  area.type = TPM2_ALG_RSA;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = attributes;
  area.parameters.rsaDetail.symmetric.algorithm = sym_alg;
  if (sym_alg != TPM2_ALG_NULL) {
    area.parameters.rsaDetail.symmetric.keyBits.sym = sym_bits;
    area.parameters.rsaDetail.symmetric.mode.sym = TPM2_ALG_CFB;
  }
  area.parameters.rsaDetail.scheme.scheme = scheme;
  if (scheme != TPM2_ALG_NULL) area.parameters.rsaDetail.scheme.details.rsassa.hashAlg = scheme_hash;
  area.parameters.rsaDetail.keyBits = 2048;
  area.parameters.rsaDetail.exponent = 0;  // 65537
  Bytes n = BnParam(out.key.get(), OSSL_PKEY_PARAM_RSA_N, 256);
  area.unique.rsa.size = 256;
  std::copy(n.begin(), n.end(), area.unique.rsa.buffer);
  out.tpm2b_public = MarshalPublic(area);
  return out;
}

TPMS_ATTEST BaseAttest(uint16_t type, ByteView extra_data) {
  TPMS_ATTEST attest{};
  attest.magic = TPM2_GENERATED_VALUE;
  attest.type = type;
  attest.qualifiedSigner.size = 34;
  attest.extraData.size = static_cast<uint16_t>(extra_data.size());
  std::copy(extra_data.begin(), extra_data.end(), attest.extraData.buffer);
  attest.clockInfo.clock = 123456;
  attest.clockInfo.resetCount = 3;
  attest.clockInfo.restartCount = 7;
  attest.clockInfo.safe = TPM2_YES;
  attest.firmwareVersion = 0x2020;
  return attest;
}

Bytes MarshalAttest(const TPMS_ATTEST& attest) {
  Bytes out(sizeof(TPMS_ATTEST) + 64);
  size_t offset = 0;
  Check(Tss2_MU_TPMS_ATTEST_Marshal(&attest, out.data(), out.size(), &offset) == TSS2_RC_SUCCESS, "marshal attest");
  out.resize(offset);
  return out;
}

Bytes SignTpm(const FakeKey& key, ByteView data, uint16_t sig_alg, uint16_t hash_alg) {
  const EVP_MD* md = hash_alg == TPM2_ALG_SHA1     ? EVP_sha1()
                     : hash_alg == TPM2_ALG_SHA384 ? EVP_sha384()
                                                   : EVP_sha256();
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  Check(EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key.key.get()) == 1, "sign init");
  if (sig_alg == TPM2_ALG_RSAPSS) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t len = 0;
  Check(EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) == 1, "sign size");
  Bytes sig(len);
  Check(EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) == 1, "sign");
  sig.resize(len);
  TPMT_SIGNATURE out{};
  out.sigAlg = sig_alg;
  if (sig_alg == TPM2_ALG_ECDSA) {
    const uint8_t* p = sig.data();
    common::EcdsaSigPtr ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    Check(ecdsa != nullptr, "der");
    out.signature.ecdsa.hash = hash_alg;
    const BIGNUM* r = ECDSA_SIG_get0_r(ecdsa.get());
    const BIGNUM* s = ECDSA_SIG_get0_s(ecdsa.get());
    out.signature.ecdsa.signatureR.size = static_cast<uint16_t>(BN_bn2bin(r, out.signature.ecdsa.signatureR.buffer));
    out.signature.ecdsa.signatureS.size = static_cast<uint16_t>(BN_bn2bin(s, out.signature.ecdsa.signatureS.buffer));
  } else {
    out.signature.rsassa.hash = hash_alg;
    out.signature.rsassa.sig.size = static_cast<uint16_t>(sig.size());
    std::copy(sig.begin(), sig.end(), out.signature.rsassa.sig.buffer);
  }
  Bytes marshalled(sizeof(TPMT_SIGNATURE) + 8);
  size_t offset = 0;
  Check(Tss2_MU_TPMT_SIGNATURE_Marshal(&out, marshalled.data(), marshalled.size(), &offset) == TSS2_RC_SUCCESS,
        "marshal signature");
  marshalled.resize(offset);
  return marshalled;
}

Bytes QuoteAttest(ByteView extra_data, const std::vector<uint32_t>& pcrs, const std::vector<Bytes>& values,
                  uint16_t hash_alg) {
  TPMS_ATTEST attest = BaseAttest(TPM2_ST_ATTEST_QUOTE, extra_data);
  TPML_PCR_SELECTION& sel = attest.attested.quote.pcrSelect;
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t pcr : pcrs) sel.pcrSelections[0].pcrSelect[pcr / 8] |= static_cast<uint8_t>(1u << (pcr % 8));
  const EVP_MD* md = hash_alg == TPM2_ALG_SHA384 ? EVP_sha384() : EVP_sha256();
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), md, nullptr);
  for (const Bytes& v : values) EVP_DigestUpdate(ctx.get(), v.data(), v.size());
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), attest.attested.quote.pcrDigest.buffer, &len);
  attest.attested.quote.pcrDigest.size = static_cast<uint16_t>(len);
  return MarshalAttest(attest);
}

}  // namespace agentroot::attestation::testing
