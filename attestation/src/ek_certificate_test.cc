#include "agentroot/attestation/ek_certificate.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "testing/fake_tpm.h"

namespace agentroot::attestation {
namespace {

struct Issued {
  common::EvpPkeyPtr key;
  common::X509Ptr cert;
};

common::X509Ptr MakeCert(EVP_PKEY* subject_key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                         long days_from = 0, long days_to = 365) {
  common::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 42);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), days_from * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days_to * 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), subject_key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(cert.get(), bc, -1);
  X509_EXTENSION_free(bc);
  if (ca) {
    X509_EXTENSION* ku = X509V3_EXT_conf_nid(nullptr, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    X509_add_ext(cert.get(), ku, -1);
    X509_EXTENSION_free(ku);
  }
  X509_sign(cert.get(), issuer_key, EVP_sha256());
  return cert;
}

std::string Pem(X509* cert) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

Bytes Der(X509* cert) {
  int len = i2d_X509(cert, nullptr);
  Bytes out(static_cast<std::size_t>(len));
  uint8_t* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

class EkCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_key_.reset(EVP_EC_gen("P-384"));
    root_ = MakeCert(root_key_.get(), "TPM Manufacturer Root", nullptr, root_key_.get(), true);
    inter_key_.reset(EVP_EC_gen("P-256"));
    inter_ = MakeCert(inter_key_.get(), "TPM Manufacturer EK CA", root_.get(), root_key_.get(), true);
    ek_ = testing::MakeRsaKey(testing::kEkAttributes, TPM2_ALG_NULL, 0, TPM2_ALG_AES, 128);
    ek_cert_ = MakeCert(ek_.key.get(), "", inter_.get(), inter_key_.get(), false);
    validator_ = std::move(EkCertificateValidator::Create(Pem(root_.get()))).value();
  }

  common::EvpPkeyPtr root_key_, inter_key_;
  common::X509Ptr root_, inter_, ek_cert_;
  testing::FakeKey ek_;
  std::unique_ptr<EkCertificateValidator> validator_;
};

TEST_F(EkCertificateTest, ValidChainAndMatchingKeyPasses) {
  auto ek = TpmPublic::Parse(ek_.tpm2b_public);
  auto result = validator_->Validate(Der(ek_cert_.get()), Pem(inter_.get()), *ek);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->serial_hex, "2A");
  EXPECT_EQ(result->ek_public_sha256.size(), 32u);
  // PEM input works too.
  std::string pem = Pem(ek_cert_.get());
  EXPECT_TRUE(validator_->Validate(common::AsBytes(pem), Pem(inter_.get()), *ek).ok());
}

TEST_F(EkCertificateTest, MissingIntermediateOrForeignRootFails) {
  auto ek = TpmPublic::Parse(ek_.tpm2b_public);
  EXPECT_EQ(validator_->Validate(Der(ek_cert_.get()), "", *ek).status().code(),
            common::StatusCode::kUnauthenticated);
  common::EvpPkeyPtr other_key(EVP_EC_gen("P-256"));
  auto other_root = MakeCert(other_key.get(), "Other Root", nullptr, other_key.get(), true);
  auto other = EkCertificateValidator::Create(Pem(other_root.get()));
  EXPECT_FALSE((*other)->Validate(Der(ek_cert_.get()), Pem(inter_.get()), *ek).ok());
  // The attacker may not present its own "root" as an intermediate.
  auto self_signed_ek = MakeCert(ek_.key.get(), "EK", other_root.get(), other_key.get(), false);
  EXPECT_FALSE(validator_->Validate(Der(self_signed_ek.get()), Pem(other_root.get()), *ek).ok());
}

TEST_F(EkCertificateTest, KeyMismatchFails) {
  // A genuine certificate presented with another EK (THREATS #3).
  auto other_ek = testing::MakeRsaKey(testing::kEkAttributes, TPM2_ALG_NULL, 0, TPM2_ALG_AES, 128);
  auto result = validator_->Validate(Der(ek_cert_.get()), Pem(inter_.get()), *TpmPublic::Parse(other_ek.tpm2b_public));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("not the presented EK"), std::string::npos);
}

TEST_F(EkCertificateTest, TamperedOrExpiredCertificateFails) {
  auto ek = TpmPublic::Parse(ek_.tpm2b_public);
  Bytes der = Der(ek_cert_.get());
  der[der.size() - 10] ^= 1;  // inside the signature
  EXPECT_FALSE(validator_->Validate(der, Pem(inter_.get()), *ek).ok());
  auto expired = MakeCert(ek_.key.get(), "", inter_.get(), inter_key_.get(), false, -30, -1);
  EXPECT_FALSE(validator_->Validate(Der(expired.get()), Pem(inter_.get()), *ek).ok());
  Bytes trailing = Der(ek_cert_.get());
  trailing.push_back(0);
  EXPECT_FALSE(validator_->Validate(trailing, Pem(inter_.get()), *ek).ok());
}

TEST(EkValidatorCreateTest, NeedsAtLeastOneRoot) {
  EXPECT_FALSE(EkCertificateValidator::Create("").ok());
  EXPECT_FALSE(EkCertificateValidator::Create("not a pem").ok());
}

}  // namespace
}  // namespace agentroot::attestation
