#include "agentroot/attestation/make_credential.h"

#include <algorithm>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <tss2/tss2_tpm2_types.h>

#include "agentroot/common/openssl.h"
#include "agentroot/common/random.h"
#include "tss_mu.h"

namespace agentroot::attestation {

using common::InvalidArgumentError;
using common::SecretBytes;

namespace {

void AppendU32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void AppendLabel(Bytes& out, std::string_view label) {
  out.insert(out.end(), label.begin(), label.end());
  if (label.empty() || label.back() != '\0') out.push_back(0);
}

// The counter-mode construction shared by KDFa (HMAC) and KDFe (hash).
template <typename Block>
Result<SecretBytes> CounterKdf(uint16_t hash_alg, uint32_t bits, Block block) {
  if (bits == 0 || bits % 8 != 0 || bits > 8 * 1024) {
    return InvalidArgumentError("kdf: output size must be a positive multiple of 8 bits");
  }
  AR_ASSIGN_OR_RETURN(const EVP_MD* md, DigestForTpmHash(hash_alg));
  const std::size_t want = bits / 8;
  const std::size_t hash_size = static_cast<std::size_t>(EVP_MD_get_size(md));
  SecretBytes out(want);
  SecretBytes chunk(hash_size);
  for (uint32_t counter = 1, done = 0; done < want; ++counter) {
    AR_RETURN_IF_ERROR(block(md, counter, chunk.MutableData()));
    std::size_t take = std::min(hash_size, want - done);
    std::copy(chunk.Reveal().begin(), chunk.Reveal().begin() + static_cast<long>(take),
              out.MutableData() + done);
    done += static_cast<uint32_t>(take);
  }
  return out;
}

Result<SecretBytes> Hmac(const EVP_MD* md, ByteView key, ByteView data) {
  SecretBytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (HMAC(md, key.data(), static_cast<int>(key.size()), data.data(), data.size(),
           out.MutableData(), &len) == nullptr) {
    return common::OpenSslInternal("hmac");
  }
  return out;
}

Result<Bytes> AesCfbEncrypt(ByteView key, ByteView plaintext) {
  const EVP_CIPHER* cipher = key.size() == 16 ? EVP_aes_128_cfb128()
                             : key.size() == 32 ? EVP_aes_256_cfb128()
                                                : nullptr;
  if (cipher == nullptr) return InvalidArgumentError("make credential: unsupported AES key size");
  const uint8_t iv[16] = {0};  // the TPM uses a zero IV for credentials
  common::OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> ctx(EVP_CIPHER_CTX_new());
  Bytes out(plaintext.size() + 16);
  int len = 0;
  int final_len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, key.data(), iv) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    return common::OpenSslInternal("make credential: AES-CFB");
  }
  out.resize(static_cast<std::size_t>(len + final_len));
  return out;
}

// RSA EK: a random seed, OAEP-encrypted with label "IDENTITY".
Result<std::pair<SecretBytes, Bytes>> RsaSeed(const TpmPublic& ek, const EVP_MD* md) {
  AR_ASSIGN_OR_RETURN(SecretBytes seed, common::RandomSecret(static_cast<std::size_t>(EVP_MD_get_size(md))));
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, ek.ToOpenSslKey());
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  // OpenSSL takes ownership of the label buffer.
  static constexpr char kLabel[] = "IDENTITY";  // sizeof includes the NUL, as the TPM expects
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  if (!ctx || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) != 1 ||
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof(kLabel)) != 1) {
    OPENSSL_free(label);
    return common::OpenSslInternal("make credential: OAEP setup");
  }
  std::size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, seed.Reveal().data(), seed.size()) != 1) {
    return common::OpenSslInternal("make credential: OAEP size");
  }
  Bytes encrypted(len);
  if (EVP_PKEY_encrypt(ctx.get(), encrypted.data(), &len, seed.Reveal().data(), seed.size()) != 1) {
    return common::OpenSslInternal("make credential: OAEP encrypt");
  }
  encrypted.resize(len);
  TPM2B_ENCRYPTED_SECRET out{};
  out.size = static_cast<uint16_t>(encrypted.size());
  std::copy(encrypted.begin(), encrypted.end(), out.secret);
  AR_ASSIGN_OR_RETURN(Bytes marshalled, internal::Marshal(out, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal,
                                                          "TPM2B_ENCRYPTED_SECRET"));
  return std::make_pair(std::move(seed), std::move(marshalled));
}

Result<Bytes> BnParam(const EVP_PKEY* key, const char* name, std::size_t field) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return common::OpenSslInternal("reading EC point");
  common::BignumPtr bn(raw);
  Bytes out(field);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(field)) != static_cast<int>(field)) {
    return common::OpenSslInternal("encoding EC point");
  }
  return out;
}

// ECC EK: one-pass ECDH with an ephemeral key; seed = KDFe(Z, "IDENTITY").
Result<std::pair<SecretBytes, Bytes>> EccSeed(const TpmPublic& ek, const EVP_MD* md) {
  const bool p256 = ek.ecc_curve() == kTpmEccNistP256;
  const std::size_t field = p256 ? 32 : 48;
  common::EvpPkeyPtr ephemeral(EVP_EC_gen(p256 ? "P-256" : "P-384"));
  if (!ephemeral) return common::OpenSslInternal("make credential: ephemeral key");
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr peer, ek.ToOpenSslKey());
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ephemeral.get(), nullptr));
  std::size_t z_len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &z_len) != 1) {
    return common::OpenSslInternal("make credential: ECDH setup");
  }
  SecretBytes z(z_len);
  if (EVP_PKEY_derive(ctx.get(), z.MutableData(), &z_len) != 1 || z_len != field) {
    return common::OpenSslInternal("make credential: ECDH");
  }
  AR_ASSIGN_OR_RETURN(Bytes eph_x, BnParam(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_X, field));
  AR_ASSIGN_OR_RETURN(Bytes eph_y, BnParam(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_Y, field));
  Bytes ek_x = ek.ecc_x();
  AR_ASSIGN_OR_RETURN(SecretBytes seed, KdfE(ek.name_alg(), z.Reveal(), "IDENTITY", eph_x, ek_x,
                                             static_cast<uint32_t>(EVP_MD_get_size(md)) * 8));
  TPMS_ECC_POINT point{};
  point.x.size = static_cast<uint16_t>(field);
  point.y.size = static_cast<uint16_t>(field);
  std::copy(eph_x.begin(), eph_x.end(), point.x.buffer);
  std::copy(eph_y.begin(), eph_y.end(), point.y.buffer);
  AR_ASSIGN_OR_RETURN(Bytes point_bytes, internal::Marshal(point, Tss2_MU_TPMS_ECC_POINT_Marshal, "TPMS_ECC_POINT"));
  TPM2B_ENCRYPTED_SECRET out{};
  out.size = static_cast<uint16_t>(point_bytes.size());
  std::copy(point_bytes.begin(), point_bytes.end(), out.secret);
  AR_ASSIGN_OR_RETURN(Bytes marshalled, internal::Marshal(out, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal,
                                                          "TPM2B_ENCRYPTED_SECRET"));
  return std::make_pair(std::move(seed), std::move(marshalled));
}

}  // namespace

Result<SecretBytes> KdfA(uint16_t hash_alg, ByteView key, std::string_view label, ByteView context_u,
                         ByteView context_v, uint32_t bits) {
  return CounterKdf(hash_alg, bits, [&](const EVP_MD* md, uint32_t counter, uint8_t* out) -> Status {
    Bytes data;
    AppendU32(data, counter);
    AppendLabel(data, label);
    data.insert(data.end(), context_u.begin(), context_u.end());
    data.insert(data.end(), context_v.begin(), context_v.end());
    AppendU32(data, bits);
    unsigned int len = 0;
    if (HMAC(md, key.data(), static_cast<int>(key.size()), data.data(), data.size(), out, &len) == nullptr) {
      return common::OpenSslInternal("KDFa: HMAC");
    }
    return Status::Ok();
  });
}

Result<SecretBytes> KdfE(uint16_t hash_alg, ByteView z, std::string_view label, ByteView party_u,
                         ByteView party_v, uint32_t bits) {
  return CounterKdf(hash_alg, bits, [&](const EVP_MD* md, uint32_t counter, uint8_t* out) -> Status {
    Bytes prefix;
    AppendU32(prefix, counter);
    Bytes suffix;
    AppendLabel(suffix, label);
    suffix.insert(suffix.end(), party_u.begin(), party_u.end());
    suffix.insert(suffix.end(), party_v.begin(), party_v.end());
    common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    unsigned int len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), z.data(), z.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), suffix.data(), suffix.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), out, &len) != 1) {
      return common::OpenSslInternal("KDFe: hash");
    }
    return Status::Ok();
  });
}

Result<CredentialChallenge> MakeCredential(const TpmPublic& ek, ByteView ak_name, const SecretBytes& secret) {
  using namespace tpma_object;
  if (!ek.HasAttributes(kRestricted | kDecrypt) || ek.HasAttributes(kSign)) {
    return InvalidArgumentError("make credential: EK must be a restricted decryption key");
  }
  if (ek.symmetric_alg() != tpm_alg::kAes || ek.symmetric_mode() != tpm_alg::kCfb ||
      (ek.symmetric_bits() != 128 && ek.symmetric_bits() != 256)) {
    return InvalidArgumentError("make credential: EK symmetric definition must be AES-128/256-CFB");
  }
  AR_ASSIGN_OR_RETURN(const EVP_MD* md, DigestForTpmHash(ek.name_alg()));
  const std::size_t digest_size = static_cast<std::size_t>(EVP_MD_get_size(md));
  if (secret.empty() || secret.size() > digest_size) {
    return InvalidArgumentError("make credential: secret must be 1.." + std::to_string(digest_size) + " bytes");
  }
  if (ak_name.size() < 2 + 32 || ak_name.size() > sizeof(TPMU_NAME)) {
    return InvalidArgumentError("make credential: AK name has an impossible size");
  }

  std::pair<SecretBytes, Bytes> seeded;
  if (ek.type() == tpm_alg::kRsa) {
    AR_ASSIGN_OR_RETURN(seeded, RsaSeed(ek, md));
  } else {
    AR_ASSIGN_OR_RETURN(seeded, EccSeed(ek, md));
  }
  const SecretBytes& seed = seeded.first;

  AR_ASSIGN_OR_RETURN(SecretBytes sym_key,
                      KdfA(ek.name_alg(), seed.Reveal(), "STORAGE", ak_name, {}, ek.symmetric_bits()));
  // The plaintext is the credential as a marshalled TPM2B_DIGEST.
  common::SecretBytes plaintext(2 + secret.size());
  plaintext.MutableData()[0] = static_cast<uint8_t>(secret.size() >> 8);
  plaintext.MutableData()[1] = static_cast<uint8_t>(secret.size());
  std::copy(secret.Reveal().begin(), secret.Reveal().end(), plaintext.MutableData() + 2);
  AR_ASSIGN_OR_RETURN(Bytes enc_identity, AesCfbEncrypt(sym_key.Reveal(), plaintext.Reveal()));

  AR_ASSIGN_OR_RETURN(SecretBytes hmac_key, KdfA(ek.name_alg(), seed.Reveal(), "INTEGRITY", {}, {},
                                                 static_cast<uint32_t>(digest_size * 8)));
  Bytes hmac_input = enc_identity;
  hmac_input.insert(hmac_input.end(), ak_name.begin(), ak_name.end());
  AR_ASSIGN_OR_RETURN(SecretBytes outer_hmac, Hmac(md, hmac_key.Reveal(), hmac_input));

  // TPM2B_ID_OBJECT: TPM2B_DIGEST(integrity HMAC) || encIdentity.
  TPM2B_ID_OBJECT id{};
  Bytes inner;
  inner.push_back(static_cast<uint8_t>(digest_size >> 8));
  inner.push_back(static_cast<uint8_t>(digest_size));
  inner.insert(inner.end(), outer_hmac.Reveal().begin(), outer_hmac.Reveal().end());
  inner.insert(inner.end(), enc_identity.begin(), enc_identity.end());
  if (inner.size() > sizeof(id.credential)) return common::InternalError("make credential: blob too large");
  id.size = static_cast<uint16_t>(inner.size());
  std::copy(inner.begin(), inner.end(), id.credential);
  AR_ASSIGN_OR_RETURN(Bytes blob, internal::Marshal(id, Tss2_MU_TPM2B_ID_OBJECT_Marshal, "TPM2B_ID_OBJECT"));
  return CredentialChallenge{std::move(blob), std::move(seeded.second)};
}

}  // namespace agentroot::attestation
