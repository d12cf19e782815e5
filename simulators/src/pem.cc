#include "pem.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agentroot/common/openssl.h"

namespace agentroot::simulators::internal {

common::Result<std::string> CertificateDerToPem(const std::vector<uint8_t>& der) {
  common::ClearOpenSslErrors();
  const unsigned char* cursor = der.data();
  common::X509Ptr cert(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
  if (cert == nullptr) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "not a DER certificate");
  }
  if (cursor != der.data() + der.size()) {
    return common::InvalidArgumentError("trailing bytes after the DER certificate");
  }
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert.get()) != 1) {
    return common::OpenSslInternal("PEM_write_bio_X509");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

common::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) return common::InternalError("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return common::InternalError("cannot rename to " + path.string());
  }
  return common::Status::Ok();
}

common::Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) return common::NotFoundError(path.string() + " does not exist");
    return common::InternalError("cannot open " + path.string() + ": " + std::strerror(err));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace agentroot::simulators::internal
