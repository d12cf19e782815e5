#include "agentroot/common/signer.h"

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

namespace agentroot::common {
namespace {

// Order n of the P-256 group (SEC 2 / FIPS 186-4).
constexpr uint8_t kP256Order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

// True when 1 <= v <= n-1 for the P-256 order n.
bool InScalarRange(const BIGNUM* v) {
  BignumPtr order(BN_bin2bn(kP256Order, sizeof(kP256Order), nullptr));
  return order && !BN_is_zero(v) && !BN_is_negative(v) && BN_cmp(v, order.get()) < 0;
}

Result<EvpPkeyPtr> GenerateKey(JwsAlgorithm alg) {
  EVP_PKEY* raw = nullptr;
  if (alg == JwsAlgorithm::kEs256) {
    raw = EVP_EC_gen("P-256");
  } else {
    raw = EVP_RSA_gen(static_cast<unsigned int>(kMinRsaBits));
  }
  if (raw == nullptr) return OpenSslInternal("generating key");
  return EvpPkeyPtr(raw);
}

}  // namespace

std::string_view JwsAlgorithmName(JwsAlgorithm alg) {
  switch (alg) {
    case JwsAlgorithm::kEs256: return "ES256";
    case JwsAlgorithm::kRs256: return "RS256";
    case JwsAlgorithm::kPs256: return "PS256";
  }
  return "?";
}

Result<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name) {
  if (name == "ES256") return JwsAlgorithm::kEs256;
  if (name == "RS256") return JwsAlgorithm::kRs256;
  if (name == "PS256") return JwsAlgorithm::kPs256;
  if (name == "none" || name == "None" || name == "NONE") {
    return UnimplementedError("jws: alg \"none\" is never accepted");
  }
  static constexpr std::string_view kKnown[] = {"HS256", "HS384", "HS512", "RS384", "RS512",
                                                "ES384", "ES512", "PS384", "PS512", "EdDSA"};
  for (std::string_view known : kKnown) {
    if (name == known) {
      return UnimplementedError("jws: alg \"" + std::string(name) + "\" is not accepted");
    }
  }
  return InvalidArgumentError("jws: unknown alg \"" + std::string(name.substr(0, 32)) + "\"");
}

Status CheckAlgorithmMatchesKey(JwsAlgorithm alg, const Jwk& key) {
  bool ok = alg == JwsAlgorithm::kEs256 ? key.type() == JwkKeyType::kEcP256
                                        : key.type() == JwkKeyType::kRsa && key.bits() >= kMinRsaBits;
  if (!ok) {
    return FailedPreconditionError("jws: algorithm " + std::string(JwsAlgorithmName(alg)) +
                                   " cannot be used with this key type");
  }
  return Status::Ok();
}

Result<Bytes> EcdsaDerToJose(ByteView der) {
  const uint8_t* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) {
    ClearOpenSslErrors();
    return InvalidArgumentError("ecdsa: malformed DER signature");
  }
  const BIGNUM* r = ECDSA_SIG_get0_r(sig.get());
  const BIGNUM* s = ECDSA_SIG_get0_s(sig.get());
  if (!InScalarRange(r) || !InScalarRange(s)) {
    return InvalidArgumentError("ecdsa: r or s outside [1, n-1]");
  }
  Bytes out(kEs256SignatureSize);
  if (BN_bn2binpad(r, out.data(), 32) != 32 || BN_bn2binpad(s, out.data() + 32, 32) != 32) {
    return OpenSslInternal("ecdsa: encoding r||s");
  }
  return out;
}

Result<Bytes> EcdsaJoseToDer(ByteView jose) {
  if (jose.size() != kEs256SignatureSize) {
    return InvalidArgumentError("ecdsa: ES256 signature must be 64 bytes, got " +
                                std::to_string(jose.size()));
  }
  BignumPtr r(BN_bin2bn(jose.data(), 32, nullptr));
  BignumPtr s(BN_bin2bn(jose.data() + 32, 32, nullptr));
  if (!r || !s) return OpenSslInternal("ecdsa: decoding r||s");
  if (!InScalarRange(r.get()) || !InScalarRange(s.get())) {
    return InvalidArgumentError("ecdsa: r or s outside [1, n-1]");
  }
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return OpenSslInternal("ecdsa: building signature");
  }
  r.release();  // now owned by sig
  s.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return OpenSslInternal("ecdsa: DER encoding");
  Bytes der(static_cast<std::size_t>(len));
  uint8_t* out = der.data();
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return OpenSslInternal("ecdsa: DER encoding");
  return der;
}

Result<std::unique_ptr<OpenSslSigner>> OpenSslSigner::Create(EvpPkeyPtr private_key,
                                                             JwsAlgorithm alg, std::string kid) {
  if (!private_key) return InvalidArgumentError("signer: null key");
  AR_ASSIGN_OR_RETURN(Jwk jwk, Jwk::FromPublicKey(private_key.get()));
  AR_RETURN_IF_ERROR(CheckAlgorithmMatchesKey(alg, jwk));
  if (kid.empty()) kid = jwk.Thumbprint();
  return std::unique_ptr<OpenSslSigner>(
      new OpenSslSigner(std::move(private_key), alg, jwk.WithKid(std::move(kid))));
}

Result<std::unique_ptr<OpenSslSigner>> OpenSslSigner::Generate(JwsAlgorithm alg, std::string kid) {
  AR_ASSIGN_OR_RETURN(EvpPkeyPtr key, GenerateKey(alg));
  return Create(std::move(key), alg, std::move(kid));
}

Result<Bytes> OpenSslSigner::SignDigest(ByteView digest) const {
  if (digest.size() != kSha256Size) {
    return InvalidArgumentError("signer: digest must be 32 bytes (SHA-256)");
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return OpenSslInternal("signer: init");
  }
  if (alg_ == JwsAlgorithm::kRs256) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
      return OpenSslInternal("signer: RSA padding");
    }
  } else if (alg_ == JwsAlgorithm::kPs256) {
    // RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash.
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1) {
      return OpenSslInternal("signer: PSS parameters");
    }
  }
  std::size_t len = 0;
  if (EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) {
    return OpenSslInternal("signer: sizing signature");
  }
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1) {
    return OpenSslInternal("signer: sign");
  }
  sig.resize(len);
  if (alg_ == JwsAlgorithm::kEs256) return EcdsaDerToJose(sig);
  return sig;
}

Bytes Sha256(ByteView data) {
  // SHA256() looks the algorithm up in the provider store on every call
  // (EVP_Q_digest), which costs as much as hashing a token; fetch it once.
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  Bytes digest(SHA256_DIGEST_LENGTH);
  unsigned int size = 0;
  if (md == nullptr ||
      EVP_Digest(data.data(), data.size(), digest.data(), &size, md, nullptr) != 1 ||
      size != digest.size()) {
    ClearOpenSslErrors();
    SHA256(data.data(), data.size(), digest.data());  // the same function, unfetched
  }
  return digest;
}

}  // namespace agentroot::common
