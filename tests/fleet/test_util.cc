#include "test_util.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace agentroot::tests {

bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  return line[paren + 2] != 'Z';
}

std::string ProcessCmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

common::Result<common::X509Ptr> LoadPemCertificate(const std::filesystem::path& path) {
  common::BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) return common::OpenSslError(common::StatusCode::kNotFound, path.string());
  common::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "PEM in " + path.string());
  }
  return cert;
}

common::Result<common::X509Ptr> ParseDerCertificate(const std::vector<uint8_t>& der) {
  const unsigned char* p = der.data();
  common::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr || p != der.data() + der.size()) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "DER certificate");
  }
  return cert;
}

std::vector<uint8_t> ToDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return {};
  std::vector<uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

common::Status VerifyChain(X509* leaf, X509* root, X509* intermediate) {
  common::X509StorePtr store(X509_STORE_new());
  if (store == nullptr || X509_STORE_add_cert(store.get(), root) != 1) {
    return common::OpenSslInternal("X509_STORE setup");
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  if (intermediate != nullptr) sk_X509_push(untrusted, intermediate);
  common::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  common::Status status;
  if (ctx == nullptr || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted) != 1) {
    status = common::OpenSslInternal("X509_STORE_CTX_init");
  } else if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    common::ClearOpenSslErrors();
    status = common::UnauthenticatedError(std::string("chain does not verify: ") +
                                          X509_verify_cert_error_string(err));
  }
  sk_X509_free(untrusted);  // Does not free the certificates.
  return status;
}

common::X509Ptr MakeUnrelatedCa(const std::string& cn) {
  common::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  common::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(cert.get(), bc, -1);
  X509_EXTENSION_free(bc);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  return cert;
}

}  // namespace agentroot::tests
