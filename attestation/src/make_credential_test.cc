#include "agentroot/attestation/make_credential.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "testing/fake_tpm.h"
#include "tss_mu.h"

namespace agentroot::attestation {
namespace {

using common::SecretBytes;

// TPM2_ActivateCredential in software (TPM 2.0 Part 1 §24), the inverse of
// MakeCredential, to check our blobs open only with the right EK and AK name.
// Real-TPM recovery is tested in tests/interop with tpm2_activatecredential.
Result<SecretBytes> SoftwareActivate(const testing::FakeKey& ek_key, const TpmPublic& ek, ByteView ak_name,
                                     const CredentialChallenge& challenge) {
  const EVP_MD* md = *DigestForTpmHash(ek.name_alg());
  const std::size_t digest_size = static_cast<std::size_t>(EVP_MD_get_size(md));
  AR_ASSIGN_OR_RETURN(TPM2B_ENCRYPTED_SECRET secret,
                      internal::UnmarshalExact<TPM2B_ENCRYPTED_SECRET>(
                          challenge.encrypted_secret, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal, "secret"));
  SecretBytes seed;
  if (ek.type() == tpm_alg::kRsa) {
    common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key.key.get(), nullptr));
    static constexpr char kLabel[] = "IDENTITY";
    EVP_PKEY_decrypt_init(ctx.get());
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md);
    EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), OPENSSL_memdup(kLabel, sizeof(kLabel)), sizeof(kLabel));
    std::size_t len = 512;
    Bytes out(len);
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, secret.secret, secret.size) != 1) {
      return common::UnauthenticatedError("OAEP decrypt failed");
    }
    out.resize(len);
    seed = SecretBytes(out);
  } else {
    AR_ASSIGN_OR_RETURN(TPMS_ECC_POINT point, internal::UnmarshalExact<TPMS_ECC_POINT>(
                                                  ByteView(secret.secret, secret.size),
                                                  Tss2_MU_TPMS_ECC_POINT_Unmarshal, "point"));
    // Rebuild the ephemeral public key and derive Z with the EK private key.
    Bytes x(point.x.buffer, point.x.buffer + point.x.size);
    Bytes y(point.y.buffer, point.y.buffer + point.y.size);
    auto eph = testing::MakeEccKey(ek.ecc_curve(), 0);  // only for its shape
    Bytes encoded = {0x04};
    encoded.insert(encoded.end(), x.begin(), x.end());
    encoded.insert(encoded.end(), y.begin(), y.end());
    common::EvpPkeyPtr peer(EVP_PKEY_new());
    EVP_PKEY_copy_parameters(peer.get(), ek_key.key.get());
    if (EVP_PKEY_set1_encoded_public_key(peer.get(), encoded.data(), encoded.size()) != 1) {
      return common::InvalidArgumentError("bad point");
    }
    common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key.key.get(), nullptr));
    std::size_t z_len = 64;
    Bytes z(z_len);
    EVP_PKEY_derive_init(ctx.get());
    EVP_PKEY_derive_set_peer(ctx.get(), peer.get());
    EVP_PKEY_derive(ctx.get(), z.data(), &z_len);
    z.resize(z_len);
    AR_ASSIGN_OR_RETURN(seed, KdfE(ek.name_alg(), z, "IDENTITY", x, ek.ecc_x(),
                                   static_cast<uint32_t>(digest_size * 8)));
  }
  AR_ASSIGN_OR_RETURN(TPM2B_ID_OBJECT id, internal::UnmarshalExact<TPM2B_ID_OBJECT>(
                                              challenge.credential_blob, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal, "id"));
  ByteView inner(id.credential, id.size);
  std::size_t hmac_size = (std::size_t{inner[0]} << 8) | inner[1];
  ByteView hmac = inner.subspan(2, hmac_size);
  ByteView enc_identity = inner.subspan(2 + hmac_size);
  AR_ASSIGN_OR_RETURN(SecretBytes hmac_key, KdfA(ek.name_alg(), seed.Reveal(), "INTEGRITY", {}, {},
                                                 static_cast<uint32_t>(digest_size * 8)));
  Bytes hmac_input(enc_identity.begin(), enc_identity.end());
  hmac_input.insert(hmac_input.end(), ak_name.begin(), ak_name.end());
  uint8_t expected[64];
  unsigned int len = 0;
  HMAC(md, hmac_key.Reveal().data(), static_cast<int>(hmac_key.size()), hmac_input.data(), hmac_input.size(),
       expected, &len);
  if (!common::ConstantTimeEquals(ByteView(expected, len), hmac)) {
    return common::UnauthenticatedError("integrity HMAC mismatch");
  }
  AR_ASSIGN_OR_RETURN(SecretBytes sym, KdfA(ek.name_alg(), seed.Reveal(), "STORAGE", ak_name, {},
                                            ek.symmetric_bits()));
  const EVP_CIPHER* cipher = sym.size() == 16 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128();
  common::OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> cctx(EVP_CIPHER_CTX_new());
  const uint8_t iv[16] = {0};
  Bytes plain(enc_identity.size() + 16);
  int out_len = 0;
  EVP_DecryptInit_ex(cctx.get(), cipher, nullptr, sym.Reveal().data(), iv);
  EVP_DecryptUpdate(cctx.get(), plain.data(), &out_len, enc_identity.data(), static_cast<int>(enc_identity.size()));
  std::size_t size = (std::size_t{plain[0]} << 8) | plain[1];
  return SecretBytes(ByteView(plain).subspan(2, size));
}

struct EkCase {
  const char* name;
  bool rsa;
  uint16_t curve;
  uint16_t name_alg;
  uint16_t sym_bits;
};

class MakeCredentialTest : public ::testing::TestWithParam<EkCase> {
 protected:
  testing::FakeKey MakeEk() const {
    const EkCase& c = GetParam();
    if (c.rsa) {
      return testing::MakeRsaKey(testing::kEkAttributes, TPM2_ALG_NULL, 0, TPM2_ALG_AES, c.sym_bits);
    }
    return testing::MakeEccKey(c.curve, testing::kEkAttributes, TPM2_ALG_NULL, 0, c.name_alg, TPM2_ALG_AES,
                               c.sym_bits);
  }
};

TEST_P(MakeCredentialTest, OnlyTheRightEkAndAkNameRecoverTheSecret) {
  testing::FakeKey ek_key = MakeEk();
  auto ek = TpmPublic::Parse(ek_key.tpm2b_public);
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  auto ak = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  Bytes ak_name = TpmPublic::Parse(ak.tpm2b_public)->name();
  SecretBytes secret(Bytes(32, 0x42));
  auto challenge = MakeCredential(*ek, ak_name, secret);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto recovered = SoftwareActivate(ek_key, *ek, ak_name, *challenge);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_TRUE(recovered->Equals(secret));

  // Another AK name (THREATS #3: an AK from another TPM): integrity fails.
  Bytes other_name = ak_name;
  other_name.back() ^= 1;
  EXPECT_FALSE(SoftwareActivate(ek_key, *ek, other_name, *challenge).ok());
  // Another EK's private key cannot open it.
  testing::FakeKey other_ek = MakeEk();
  EXPECT_FALSE(SoftwareActivate(other_ek, *ek, ak_name, *challenge).ok());
  // A flipped bit in the credential blob fails the integrity check.
  CredentialChallenge tampered = *challenge;
  tampered.credential_blob.back() ^= 1;
  EXPECT_FALSE(SoftwareActivate(ek_key, *ek, ak_name, tampered).ok());
  // Two challenges for the same inputs differ (fresh seed each time).
  auto again = MakeCredential(*ek, ak_name, secret);
  EXPECT_NE(again->encrypted_secret, challenge->encrypted_secret);
}

INSTANTIATE_TEST_SUITE_P(
    Eks, MakeCredentialTest,
    ::testing::Values(EkCase{"Rsa2048Aes128", true, 0, TPM2_ALG_SHA256, 128},
                      EkCase{"EccP256Aes128", false, TPM2_ECC_NIST_P256, TPM2_ALG_SHA256, 128},
                      EkCase{"EccP384Aes256", false, TPM2_ECC_NIST_P384, TPM2_ALG_SHA384, 256}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(MakeCredentialInputTest, RefusesNonEkKeysAndBadSecrets) {
  auto ek_key = testing::MakeRsaKey(testing::kEkAttributes, TPM2_ALG_NULL, 0, TPM2_ALG_AES, 128);
  auto ek = *TpmPublic::Parse(ek_key.tpm2b_public);
  auto ak = testing::MakeEccKey(TPM2_ECC_NIST_P256, testing::kAkAttributes);
  Bytes ak_name = TpmPublic::Parse(ak.tpm2b_public)->name();
  EXPECT_FALSE(MakeCredential(ek, ak_name, SecretBytes()).ok());
  EXPECT_FALSE(MakeCredential(ek, ak_name, SecretBytes(Bytes(33, 1))).ok());
  EXPECT_FALSE(MakeCredential(ek, Bytes(3, 0), SecretBytes(Bytes(16, 1))).ok());
  // A signing key is not an EK.
  EXPECT_FALSE(MakeCredential(*TpmPublic::Parse(ak.tpm2b_public), ak_name, SecretBytes(Bytes(16, 1))).ok());
  // An EK without a symmetric definition.
  auto no_sym = testing::MakeRsaKey(testing::kEkAttributes, TPM2_ALG_NULL, 0);
  EXPECT_FALSE(MakeCredential(*TpmPublic::Parse(no_sym.tpm2b_public), ak_name, SecretBytes(Bytes(16, 1))).ok());
}

TEST(KdfTest, KdfAIsDeterministicAndSeparatesLabelsAndContexts) {
  Bytes key(32, 7);
  auto a = KdfA(tpm_alg::kSha256, key, "STORAGE", Bytes{1, 2}, {}, 128);
  auto b = KdfA(tpm_alg::kSha256, key, "STORAGE", Bytes{1, 2}, {}, 128);
  auto c = KdfA(tpm_alg::kSha256, key, "INTEGRITY", Bytes{1, 2}, {}, 128);
  auto d = KdfA(tpm_alg::kSha256, key, "STORAGE", Bytes{1, 3}, {}, 128);
  auto long_out = KdfA(tpm_alg::kSha256, key, "STORAGE", Bytes{1, 2}, {}, 640);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && long_out.ok());
  EXPECT_TRUE(a->Equals(*b));
  EXPECT_FALSE(a->Equals(*c));
  EXPECT_FALSE(a->Equals(*d));
  EXPECT_EQ(long_out->size(), 80u);
  EXPECT_FALSE(KdfA(tpm_alg::kSha256, key, "X", {}, {}, 0).ok());
  EXPECT_FALSE(KdfA(tpm_alg::kSha256, key, "X", {}, {}, 12).ok());
  EXPECT_FALSE(KdfA(tpm_alg::kSha1, key, "X", {}, {}, 128).ok());
}

TEST(KdfTest, KdfAMatchesTheSpecConstructionForOneBlock) {
  // K(1) = HMAC(key, [1]_32 || "STORAGE" || 0x00 || ctxU || ctxV || [bits]_32).
  Bytes key(32, 9);
  Bytes ctx_u = {0xaa, 0xbb};
  Bytes input = {0, 0, 0, 1, 'S', 'T', 'O', 'R', 'A', 'G', 'E', 0, 0xaa, 0xbb, 0, 0, 0, 128};
  uint8_t mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), 32, input.data(), input.size(), mac, &len);
  auto derived = KdfA(tpm_alg::kSha256, key, "STORAGE", ctx_u, {}, 128);
  ASSERT_TRUE(derived.ok());
  EXPECT_TRUE(derived->Equals(ByteView(mac, 16)));
}

}  // namespace
}  // namespace agentroot::attestation
