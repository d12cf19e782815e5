#include "agentroot/hsm/software/software_key_manager.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "agentroot/common/openssl.h"
#include "agentroot/common/random.h"
#include "agentroot/common/secret_bytes.h"

namespace agentroot::hsm {
namespace {

using common::EvpPkeyPtr;
using common::SecretBytes;

constexpr std::string_view kMagic = "agentroot-software-key v1";
constexpr std::string_view kSuffix = ".key";
constexpr std::size_t kMaxKeyFileBytes = 64 * 1024;

Status ErrnoError(std::string_view what, const std::filesystem::path& path, int err) {
  std::string message = std::string(what) + " " + path.string() + ": " + std::strerror(err);
  if (err == ENOENT) return common::NotFoundError(message);
  if (err == EACCES || err == EPERM) return common::PermissionDeniedError(message);
  return common::InternalError(message);
}

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status FsyncDir(const std::filesystem::path& dir) {
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || fsync(fd.get()) != 0) return ErrnoError("fsync", dir, errno);
  return Status::Ok();
}

Status WriteAll(int fd, common::ByteView data, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path, errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

// The whole file (bounded), refusing symlinks and files readable by others.
Result<SecretBytes> ReadKeyFile(const std::filesystem::path& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("open", path, errno);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat", path, errno);
  if (!S_ISREG(st.st_mode)) return common::FailedPreconditionError(path.string() + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    return common::FailedPreconditionError(path.string() +
                                           " is accessible by group or others; refusing it");
  }
  if (st.st_size <= 0 || static_cast<std::size_t>(st.st_size) > kMaxKeyFileBytes) {
    return common::DataLossError(path.string() + " has an implausible size");
  }
  SecretBytes data(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd.get(), data.MutableData() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", path, errno);
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  if (done != data.size()) return common::DataLossError(path.string() + " changed while reading");
  return data;
}

// "agentroot-software-key v1 alg=ES256 uid=<32 hex>\n"
struct Header {
  common::JwsAlgorithm alg;
  std::string uid;
  std::size_t size;  // bytes including the newline
};

Result<Header> ParseHeader(common::ByteView file, const std::filesystem::path& path) {
  std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  std::size_t nl = text.find('\n');
  if (nl == std::string_view::npos || nl > 256) {
    return common::DataLossError(path.string() + ": no agentroot header line");
  }
  std::string_view line = text.substr(0, nl);
  const std::string prefix = std::string(kMagic) + " alg=";
  if (line.substr(0, prefix.size()) != prefix) {
    return common::DataLossError(path.string() + ": not an agentroot software key");
  }
  line.remove_prefix(prefix.size());
  std::size_t sp = line.find(" uid=");
  if (sp == std::string_view::npos) return common::DataLossError(path.string() + ": header lacks uid");
  auto alg = common::ParseJwsAlgorithm(line.substr(0, sp));
  if (!alg.ok()) return common::DataLossError(path.string() + ": bad alg: " + alg.status().message());
  std::string uid(line.substr(sp + 5));
  if (uid.size() != 32) return common::DataLossError(path.string() + ": bad uid");
  return Header{*alg, uid, nl + 1};
}

Result<Bytes> SpkiDer(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(const_cast<EVP_PKEY*>(key), &der);
  if (len <= 0) return common::OpenSslInternal("software: i2d_PUBKEY");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

class SoftwareKey final : public Key {
 public:
  static Result<std::shared_ptr<Key>> Create(std::string id, KeyPolicy policy,
                                             std::filesystem::path path, std::string uid,
                                             EvpPkeyPtr private_key) {
    AR_ASSIGN_OR_RETURN(Bytes spki, SpkiDer(private_key.get()));
    AR_ASSIGN_OR_RETURN(auto signer,
                        common::OpenSslSigner::Create(std::move(private_key), policy.algorithm));
    return std::shared_ptr<Key>(new SoftwareKey(std::move(id), std::move(policy), std::move(path),
                                                std::move(uid), std::move(spki), std::move(signer)));
  }

  const std::string& id() const override { return id_; }
  const KeyPolicy& policy() const override { return policy_; }
  const common::Jwk& public_jwk() const override { return signer_->public_jwk(); }
  Bytes native_public() const override { return spki_; }

  Result<Bytes> Sign(common::JwsAlgorithm requested, ByteView digest) const override {
    if (requested != policy_.algorithm) {
      return common::FailedPreconditionError(
          "software key " + id_ + " may sign only with " +
          std::string(common::JwsAlgorithmName(policy_.algorithm)) + ", not " +
          std::string(common::JwsAlgorithmName(requested)));
    }
    if (digest.size() != common::kSha256Size) {
      return common::InvalidArgumentError("digest must be 32 bytes (SHA-256)");
    }
    // The key must still be the one stored under this id.
    auto file = ReadKeyFile(path_);
    if (!file.ok()) {
      if (file.status().code() == common::StatusCode::kNotFound) {
        return common::NotFoundError("software key " + id_ + " was deleted");
      }
      return file.status();
    }
    AR_ASSIGN_OR_RETURN(Header header, ParseHeader(file->Reveal(), path_));
    if (header.uid != uid_) {
      return common::NotFoundError("software key " + id_ + " was deleted (id reused)");
    }
    return signer_->SignDigest(digest);
  }

 private:
  SoftwareKey(std::string id, KeyPolicy policy, std::filesystem::path path, std::string uid,
              Bytes spki, std::unique_ptr<common::OpenSslSigner> signer)
      : id_(std::move(id)),
        policy_(std::move(policy)),
        path_(std::move(path)),
        uid_(std::move(uid)),
        spki_(std::move(spki)),
        signer_(std::move(signer)) {}

  std::string id_;
  KeyPolicy policy_;
  std::filesystem::path path_;
  std::string uid_;
  Bytes spki_;
  std::unique_ptr<common::OpenSslSigner> signer_;
};

Result<EvpPkeyPtr> GenerateKey(common::JwsAlgorithm alg) {
  EVP_PKEY* raw = alg == common::JwsAlgorithm::kEs256
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (raw == nullptr) return common::OpenSslInternal("software: key generation");
  return EvpPkeyPtr(raw);
}

}  // namespace

Result<std::unique_ptr<SoftwareKeyManager>> SoftwareKeyManager::Create(
    const std::filesystem::path& dir, InsecureKeys acknowledgement) {
  if (acknowledgement != InsecureKeys::kAcceptedForTesting) {
    return common::FailedPreconditionError(
        "SoftwareKeyManager keeps private keys in plain files; it is for tests only and needs "
        "InsecureKeys::kAcceptedForTesting");
  }
  if (dir.empty()) return common::InvalidArgumentError("software: empty key directory");
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir", dir, errno);
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) return ErrnoError("stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) return common::InvalidArgumentError(dir.string() + " is not a directory");
  std::fprintf(stderr,
               "agentroot: WARNING: SoftwareKeyManager over %s: private keys are NOT protected "
               "(tests only)\n",
               dir.c_str());
  return std::unique_ptr<SoftwareKeyManager>(new SoftwareKeyManager(dir));
}

std::filesystem::path SoftwareKeyManager::PathFor(std::string_view id) const {
  return dir_ / (std::string(id) + std::string(kSuffix));
}

Result<std::shared_ptr<Key>> SoftwareKeyManager::Generate(std::string_view id,
                                                          const KeyPolicy& policy) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  if (!policy.pcr_binding.empty()) {
    return common::UnimplementedError("software backend cannot bind keys to PCRs");
  }
  const std::filesystem::path path = PathFor(id);
  if (access(path.c_str(), F_OK) == 0) {
    return common::AlreadyExistsError("software key " + std::string(id) + " exists");
  }
  AR_ASSIGN_OR_RETURN(EvpPkeyPtr key, GenerateKey(policy.algorithm));
  AR_ASSIGN_OR_RETURN(Bytes uid_bytes, common::RandomBytes(16));
  const std::string uid = common::HexEncode(uid_bytes);

  // Serialise: header line + PKCS#8 PEM, in a wiped buffer.
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  std::string header = std::string(kMagic) + " alg=" +
                       std::string(common::JwsAlgorithmName(policy.algorithm)) + " uid=" + uid + "\n";
  if (!bio || BIO_write(bio.get(), header.data(), static_cast<int>(header.size())) <= 0 ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return common::OpenSslInternal("software: PEM encoding");
  }
  char* mem = nullptr;
  long mem_len = BIO_get_mem_data(bio.get(), &mem);
  SecretBytes contents(ByteView(reinterpret_cast<const uint8_t*>(mem), static_cast<std::size_t>(mem_len)));
  OPENSSL_cleanse(mem, static_cast<std::size_t>(mem_len));

  const std::filesystem::path tmp = dir_ / (".tmp-" + uid);
  {
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return ErrnoError("create", tmp, errno);
    Status written = WriteAll(fd.get(), contents.Reveal(), tmp);
    if (written.ok() && fsync(fd.get()) != 0) written = ErrnoError("fsync", tmp, errno);
    if (!written.ok()) {
      unlink(tmp.c_str());
      return written;
    }
  }
  // link() never replaces an existing file: the loser of a race sees EEXIST.
  int linked = link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  unlink(tmp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST) {
      return common::AlreadyExistsError("software key " + std::string(id) + " exists");
    }
    return ErrnoError("link", path, link_errno);
  }
  AR_RETURN_IF_ERROR(FsyncDir(dir_));
  return SoftwareKey::Create(std::string(id), policy, path, uid, std::move(key));
}

Result<std::shared_ptr<Key>> SoftwareKeyManager::Get(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  const std::filesystem::path path = PathFor(id);
  auto file = ReadKeyFile(path);
  if (!file.ok()) {
    if (file.status().code() == common::StatusCode::kNotFound) {
      return common::NotFoundError("no software key " + std::string(id));
    }
    return file.status();
  }
  AR_ASSIGN_OR_RETURN(Header header, ParseHeader(file->Reveal(), path));
  ByteView pem = file->Reveal().subspan(header.size);
  common::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return common::OpenSslError(common::StatusCode::kDataLoss, "software: reading " + path.string());
  KeyPolicy policy;
  policy.algorithm = header.alg;
  return SoftwareKey::Create(std::string(id), std::move(policy), path, header.uid, std::move(key));
}

Result<std::vector<std::string>> SoftwareKeyManager::List() {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) continue;
    std::string id = name.substr(0, name.size() - kSuffix.size());
    if (ValidateKeyId(id).ok()) ids.push_back(std::move(id));
  }
  if (ec) return common::InternalError("software: listing " + dir_.string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status SoftwareKeyManager::Delete(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  const std::filesystem::path path = PathFor(id);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return common::NotFoundError("no software key " + std::string(id));
    return ErrnoError("unlink", path, errno);
  }
  return FsyncDir(dir_);
}

}  // namespace agentroot::hsm
