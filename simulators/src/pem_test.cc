#include "pem.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agentroot/common/openssl.h"

namespace agentroot::simulators::internal {
namespace {

using common::StatusCode;

std::vector<uint8_t> SelfSignedDer() {
  common::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  common::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("pem-test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509_sign(cert.get(), key.get(), EVP_sha256());
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  std::vector<uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

TEST(PemTest, RoundTripsACertificate) {
  const std::vector<uint8_t> der = SelfSignedDer();
  ASSERT_FALSE(der.empty());
  auto pem = CertificateDerToPem(der);
  ASSERT_TRUE(pem.ok()) << pem.status().ToString();
  EXPECT_EQ(pem->rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u);
  common::BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  common::X509Ptr back(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(back, nullptr);
  unsigned char* der2 = nullptr;
  const int len = i2d_X509(back.get(), &der2);
  std::vector<uint8_t> again(der2, der2 + len);
  OPENSSL_free(der2);
  EXPECT_EQ(again, der);
}

TEST(PemTest, RejectsTruncatedFlippedAndPaddedInput) {
  std::vector<uint8_t> der = SelfSignedDer();
  std::vector<uint8_t> truncated(der.begin(), der.end() - 1);
  EXPECT_EQ(CertificateDerToPem(truncated).status().code(), StatusCode::kInvalidArgument);
  std::vector<uint8_t> bad_tag = der;
  bad_tag[0] ^= 0x01;  // SEQUENCE tag 0x30 -> 0x31
  EXPECT_EQ(CertificateDerToPem(bad_tag).status().code(), StatusCode::kInvalidArgument);
  std::vector<uint8_t> padded = der;
  padded.push_back(0);
  EXPECT_EQ(CertificateDerToPem(padded).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CertificateDerToPem({}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentroot::simulators::internal
