#include "agentroot/provisioning/operator_ca.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/openssl.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/signer.h"
#include "agentroot/provisioning/cli_support.h"

namespace agentroot::provisioning {
namespace {

using common::InvalidArgumentError;
using common::OpenSslInternal;
using common::Result;
using common::Status;

using Asn1IntegerPtr = common::OpenSslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;

constexpr int64_t kBackdateSeconds = 300;  // tolerate small clock skew at the verifier

// What an operator sees of a certificate: attestation's summary plus the
// fingerprint the verifier names operators by.
Result<CertificateInfo> Inspect(X509* cert) {
  AR_ASSIGN_OR_RETURN(attestation::CertificateSummary summary, attestation::SummarizeCertificate(cert));
  CertificateInfo info;
  static_cast<attestation::CertificateSummary&>(info) = std::move(summary);
  info.sha256_hex = common::HexEncode(common::Sha256(info.der));
  return info;
}

Result<common::X509Ptr> ParsePem(std::string_view pem) {
  common::ClearOpenSslErrors();
  common::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslInternal("BIO_new_mem_buf");
  common::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return common::OpenSslError(common::StatusCode::kInvalidArgument, "not a PEM certificate");
  return cert;
}

Result<std::string> CertPem(X509* cert) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslInternal("PEM_write_bio_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// PKCS#8 PEM of `key`; the BIO's copy is wiped.
Result<common::SecretBytes> KeyPem(EVP_PKEY* key) {
  common::BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslInternal("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  common::SecretBytes out(common::ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<std::size_t>(len)));
  common::SecureWipe(data, static_cast<std::size_t>(len));
  return out;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return OpenSslInternal(std::string("X509V3_EXT_conf_nid ") + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslInternal("X509_add_ext");
  return Status::Ok();
}

// A random positive 159-bit serial (RFC 5280: at most 20 octets).
Status SetRandomSerial(X509* cert) {
  common::BignumPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) return OpenSslInternal("BN_rand");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1) return OpenSslInternal("serial");
  return Status::Ok();
}

Status AddNameEntry(X509_NAME* name, int nid, const std::string& value) {
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                 -1, -1, 0) != 1) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "subject name");
  }
  return Status::Ok();
}

// A v3 certificate for `subject_key`, valid from a few minutes ago to not_after.
Result<common::X509Ptr> NewCertificate(EVP_PKEY* subject_key, int64_t not_after) {
  common::X509Ptr cert(X509_new());
  if (!cert) return OpenSslInternal("X509_new");
  AR_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, nullptr) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after)) == nullptr ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpenSslInternal("building certificate");
  }
  return cert;
}

// `dir` (0700) and, like mkdir -p, any missing parents (0700 too).
Status MakeDirectory(const std::string& dir) {
  if (std::size_t slash = dir.find_last_of('/'); slash != std::string::npos && slash > 0) {
    const std::string parent = dir.substr(0, slash);
    struct stat parent_st {};
    if (::stat(parent.c_str(), &parent_st) != 0) {
      AR_RETURN_IF_ERROR(MakeDirectory(parent));
    }
  }
  if (::mkdir(dir.c_str(), 0700) == 0) return Status::Ok();
  if (errno != EEXIST) return InvalidArgumentError("cannot create directory " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return InvalidArgumentError(dir + " is not a directory");
  return Status::Ok();
}

bool ValidOperatorId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id.front() == '.') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '@' || c == '+' || c == '-';
  });
}

// Writes the key first (0600), then the certificate; removes the key when
// the certificate cannot be written, so a retry starts clean.
Status WriteCredential(const std::string& key_path, const common::SecretBytes& key_pem, const std::string& cert_path,
                       const std::string& cert_pem) {
  // Check both before creating either: a refusal leaves nothing behind.
  struct stat st {};
  if (::lstat(key_path.c_str(), &st) == 0) return common::AlreadyExistsError(key_path + " exists; refusing to overwrite it");
  if (::lstat(cert_path.c_str(), &st) == 0) {
    return common::AlreadyExistsError(cert_path + " exists; refusing to overwrite it");
  }
  std::string_view key_text(reinterpret_cast<const char*>(key_pem.Reveal().data()), key_pem.size());
  AR_RETURN_IF_ERROR(WriteNewFile(key_path, key_text, 0600));
  Status cert_status = WriteNewFile(cert_path, cert_pem, 0644);
  if (!cert_status.ok()) {
    ::unlink(key_path.c_str());
    return cert_status;
  }
  return Status::Ok();
}

}  // namespace

Result<CertificateInfo> InspectCertificate(std::string_view pem) {
  AR_ASSIGN_OR_RETURN(common::X509Ptr cert, ParsePem(pem));
  return Inspect(cert.get());
}

Result<CaInitResult> InitOperatorCa(const std::string& dir, const std::string& common_name, int days) {
  if (days < 1 || days > 36500) return InvalidArgumentError("--days must be 1..36500");
  if (common_name.empty()) return InvalidArgumentError("--name must not be empty");
  AR_RETURN_IF_ERROR(MakeDirectory(dir));
  CaInitResult result;
  result.key_path = dir + "/ca.key";
  result.certificate_path = dir + "/ca.crt";

  common::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslInternal("EVP_EC_gen");
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  AR_ASSIGN_OR_RETURN(common::X509Ptr cert, NewCertificate(key.get(), now + int64_t{days} * 86400));
  X509* c = cert.get();
  AR_RETURN_IF_ERROR(AddNameEntry(X509_get_subject_name(c), NID_commonName, common_name));
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) return OpenSslInternal("issuer");
  AR_RETURN_IF_ERROR(AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  AR_RETURN_IF_ERROR(AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  AR_RETURN_IF_ERROR(AddExtension(c, c, NID_subject_key_identifier, "hash"));
  if (X509_sign(c, key.get(), EVP_sha256()) <= 0) return OpenSslInternal("X509_sign");

  AR_ASSIGN_OR_RETURN(std::string cert_pem, CertPem(c));
  AR_ASSIGN_OR_RETURN(common::SecretBytes key_pem, KeyPem(key.get()));
  AR_RETURN_IF_ERROR(WriteCredential(result.key_path, key_pem, result.certificate_path, cert_pem));
  AR_ASSIGN_OR_RETURN(result.certificate, Inspect(c));
  return result;
}

Result<IssueResult> IssueOperatorCertificate(const std::string& ca_dir, const std::string& id,
                                             const std::string& full_name, int days, const std::string& out_dir) {
  if (!ValidOperatorId(id)) {
    return InvalidArgumentError("bad operator id '" + OneLine(id) +
                                "' (1-128 of A-Z a-z 0-9 . _ @ + -, not starting with '.')");
  }
  if (days < 1 || days > 3650) return InvalidArgumentError("--days must be 1..3650");
  AR_ASSIGN_OR_RETURN(std::string ca_pem, ReadLocalFile(ca_dir + "/ca.crt", "CA certificate"));
  AR_ASSIGN_OR_RETURN(std::string ca_key_text, ReadLocalFile(ca_dir + "/ca.key", "CA key"));
  common::SecretBytes ca_key_pem(common::AsBytes(ca_key_text));
  common::SecureWipe(ca_key_text.data(), ca_key_text.size());

  AR_ASSIGN_OR_RETURN(common::X509Ptr ca, ParsePem(ca_pem));
  common::BioPtr key_bio(BIO_new_mem_buf(ca_key_pem.Reveal().data(), static_cast<int>(ca_key_pem.size())));
  if (!key_bio) return OpenSslInternal("BIO_new_mem_buf");
  common::EvpPkeyPtr ca_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca_key) return common::OpenSslError(common::StatusCode::kInvalidArgument, ca_dir + "/ca.key: not a PEM private key");
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    common::ClearOpenSslErrors();
    return common::FailedPreconditionError(ca_dir + "/ca.key does not match " + ca_dir + "/ca.crt");
  }
  AR_ASSIGN_OR_RETURN(CertificateInfo ca_info, Inspect(ca.get()));
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (ca_info.not_after <= now) {
    return common::FailedPreconditionError("the CA certificate " + ca_dir + "/ca.crt expired at " +
                                           FormatTime(ca_info.not_after) + " UTC");
  }
  const int64_t not_after = std::min(now + int64_t{days} * 86400, ca_info.not_after);

  AR_RETURN_IF_ERROR(MakeDirectory(out_dir));
  IssueResult result;
  result.key_path = out_dir + "/" + id + ".key";
  result.certificate_path = out_dir + "/" + id + ".crt";

  common::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslInternal("EVP_EC_gen");
  AR_ASSIGN_OR_RETURN(common::X509Ptr cert, NewCertificate(key.get(), not_after));
  X509* c = cert.get();
  X509_NAME* subject = X509_get_subject_name(c);
  AR_RETURN_IF_ERROR(AddNameEntry(subject, NID_commonName, id));
  if (!full_name.empty()) AR_RETURN_IF_ERROR(AddNameEntry(subject, NID_name, full_name));
  if (X509_set_issuer_name(c, X509_get_subject_name(ca.get())) != 1) return OpenSslInternal("issuer");
  AR_RETURN_IF_ERROR(AddExtension(c, ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca.get(), NID_key_usage, "critical,digitalSignature"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca.get(), NID_ext_key_usage, "clientAuth"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca.get(), NID_subject_key_identifier, "hash"));
  AR_RETURN_IF_ERROR(AddExtension(c, ca.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(c, ca_key.get(), EVP_sha256()) <= 0) return OpenSslInternal("X509_sign");

  AR_ASSIGN_OR_RETURN(std::string cert_pem, CertPem(c));
  AR_ASSIGN_OR_RETURN(common::SecretBytes key_pem, KeyPem(key.get()));
  AR_RETURN_IF_ERROR(WriteCredential(result.key_path, key_pem, result.certificate_path, cert_pem));
  AR_ASSIGN_OR_RETURN(result.certificate, Inspect(c));
  return result;
}

Status CheckOperatorCertificate(const std::string& path, std::string_view pem, int64_t now) {
  auto info = InspectCertificate(pem);
  if (!info.ok()) return InvalidArgumentError("operator certificate " + path + ": " + info.status().message());
  if (now >= info->not_after) {
    return common::UnauthenticatedError("operator certificate " + path + " expired at " +
                                        FormatTime(info->not_after) + " UTC");
  }
  if (now < info->not_before) {
    return common::UnauthenticatedError("operator certificate " + path + " is not valid before " +
                                        FormatTime(info->not_before) + " UTC");
  }
  return Status::Ok();
}

}  // namespace agentroot::provisioning
