#include "tpm_objects.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sys/stat.h>
#include <tss2/tss2_mu.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "tss_error.h"

namespace agentroot::hsm::tpm {

namespace {

constexpr TPMA_OBJECT kKeyBase = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                 TPMA_OBJECT_SENSITIVEDATAORIGIN;

// TCG EK Credential Profile PolicyA (PolicySecret(TPM_RH_ENDORSEMENT)), SHA-256.
constexpr uint8_t kEkPolicyASha256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
// PolicyB of the high-range templates, SHA-384.
constexpr uint8_t kEkPolicyBSha384[48] = {
    0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
    0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
    0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12};

constexpr char kKeyFileMagic[8] = {'A', 'R', 'T', 'P', 'M', 'K', 'E', 'Y'};
constexpr uint8_t kKeyFileVersion = 1;

Status MuError(TSS2_RC rc, std::string_view what) { return TssError(rc, what); }

template <typename T, typename Fn>
Result<T> UnmarshalExact(ByteView bytes, Fn fn, std::string_view what) {
  T out{};
  size_t offset = 0;
  TSS2_RC rc = fn(bytes.data(), bytes.size(), &offset, &out);
  if (rc != TSS2_RC_SUCCESS) {
    Status s = MuError(rc, std::string("unmarshalling ") + std::string(what));
    return Status(common::StatusCode::kInvalidArgument, s.message());
  }
  if (offset != bytes.size()) {
    return common::InvalidArgumentError(std::string(what) + ": " +
                                        std::to_string(bytes.size() - offset) +
                                        " trailing bytes");
  }
  return out;
}

template <typename T, typename Fn>
Result<Bytes> MarshalAny(const T& value, Fn fn, std::string_view what) {
  Bytes out(sizeof(T) + 16);
  size_t offset = 0;
  TSS2_RC rc = fn(&value, out.data(), out.size(), &offset);
  if (rc != TSS2_RC_SUCCESS) return MuError(rc, std::string("marshalling ") + std::string(what));
  out.resize(offset);
  return out;
}

void SetEccUnique(TPMS_ECC_POINT& point, uint16_t size) {
  point.x.size = size;
  point.y.size = size;
  std::memset(point.x.buffer, 0, size);
  std::memset(point.y.buffer, 0, size);
}

}  // namespace

TPM2B_PUBLIC SrkTemplate() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kKeyBase | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  p.parameters.eccDetail.symmetric.keyBits.aes = 128;
  p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  SetEccUnique(p.unique.ecc, 32);
  return t;
}

TPM2B_PUBLIC AgentKeyTemplate(common::JwsAlgorithm alg, ByteView auth_policy) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kKeyBase | TPMA_OBJECT_SIGN_ENCRYPT;
  if (auth_policy.empty()) {
    p.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  } else {
    p.authPolicy.size = static_cast<uint16_t>(std::min(auth_policy.size(), sizeof(p.authPolicy.buffer)));
    std::memcpy(p.authPolicy.buffer, auth_policy.data(), p.authPolicy.size);
  }
  if (alg == common::JwsAlgorithm::kEs256) {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  } else {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    if (alg == common::JwsAlgorithm::kPs256) {
      p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSAPSS;
      p.parameters.rsaDetail.scheme.details.rsapss.hashAlg = TPM2_ALG_SHA256;
    } else {
      p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
      p.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    }
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
  }
  return t;
}

TPM2B_PUBLIC AkTemplate(bool rsa) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kKeyBase | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
                       TPMA_OBJECT_SIGN_ENCRYPT;
  if (!rsa) {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  } else {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
    p.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
  }
  return t;
}

TPM2B_PUBLIC EkTemplate(EkKind kind) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  constexpr TPMA_OBJECT kEkAttributes = kKeyBase | TPMA_OBJECT_ADMINWITHPOLICY |
                                        TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  switch (kind) {
    case EkKind::kRsa2048:
      p.type = TPM2_ALG_RSA;
      p.nameAlg = TPM2_ALG_SHA256;
      p.objectAttributes = kEkAttributes;
      p.authPolicy.size = sizeof(kEkPolicyASha256);
      std::memcpy(p.authPolicy.buffer, kEkPolicyASha256, sizeof(kEkPolicyASha256));
      p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
      p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
      p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
      p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.rsaDetail.keyBits = 2048;
      p.parameters.rsaDetail.exponent = 0;
      p.unique.rsa.size = 256;
      break;
    case EkKind::kEccP256:
      p.type = TPM2_ALG_ECC;
      p.nameAlg = TPM2_ALG_SHA256;
      p.objectAttributes = kEkAttributes;
      p.authPolicy.size = sizeof(kEkPolicyASha256);
      std::memcpy(p.authPolicy.buffer, kEkPolicyASha256, sizeof(kEkPolicyASha256));
      p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
      p.parameters.eccDetail.symmetric.keyBits.aes = 128;
      p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
      p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
      p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
      SetEccUnique(p.unique.ecc, 32);
      break;
    case EkKind::kEccP384:
      p.type = TPM2_ALG_ECC;
      p.nameAlg = TPM2_ALG_SHA384;
      p.objectAttributes = kEkAttributes | TPMA_OBJECT_USERWITHAUTH;
      p.authPolicy.size = sizeof(kEkPolicyBSha384);
      std::memcpy(p.authPolicy.buffer, kEkPolicyBSha384, sizeof(kEkPolicyBSha384));
      p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
      p.parameters.eccDetail.symmetric.keyBits.aes = 256;
      p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
      p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
      p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
      SetEccUnique(p.unique.ecc, 0);
      break;
  }
  return t;
}

uint32_t EkPersistentHandle(EkKind kind) {
  switch (kind) {
    case EkKind::kRsa2048: return 0x81010001;
    case EkKind::kEccP256: return 0x81010002;
    case EkKind::kEccP384: return 0x81010016;
  }
  return 0;
}

Result<Bytes> MarshalPublic(const TPM2B_PUBLIC& pub) {
  return MarshalAny(pub, Tss2_MU_TPM2B_PUBLIC_Marshal, "TPM2B_PUBLIC");
}
Result<TPM2B_PUBLIC> UnmarshalPublic(ByteView bytes) {
  return UnmarshalExact<TPM2B_PUBLIC>(bytes, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "TPM2B_PUBLIC");
}
Result<Bytes> MarshalPrivate(const TPM2B_PRIVATE& priv) {
  return MarshalAny(priv, Tss2_MU_TPM2B_PRIVATE_Marshal, "TPM2B_PRIVATE");
}
Result<TPM2B_PRIVATE> UnmarshalPrivate(ByteView bytes) {
  return UnmarshalExact<TPM2B_PRIVATE>(bytes, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "TPM2B_PRIVATE");
}
Result<Bytes> MarshalSignature(const TPMT_SIGNATURE& sig) {
  return MarshalAny(sig, Tss2_MU_TPMT_SIGNATURE_Marshal, "TPMT_SIGNATURE");
}
Result<TPM2B_ID_OBJECT> UnmarshalIdObject(ByteView bytes) {
  return UnmarshalExact<TPM2B_ID_OBJECT>(bytes, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal,
                                         "TPM2B_ID_OBJECT");
}
Result<TPM2B_ENCRYPTED_SECRET> UnmarshalEncryptedSecret(ByteView bytes) {
  return UnmarshalExact<TPM2B_ENCRYPTED_SECRET>(
      bytes, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal, "TPM2B_ENCRYPTED_SECRET");
}

Result<Bytes> ObjectName(const TPMT_PUBLIC& pub) {
  AR_ASSIGN_OR_RETURN(Bytes body, MarshalAny(pub, Tss2_MU_TPMT_PUBLIC_Marshal, "TPMT_PUBLIC"));
  const EVP_MD* md = nullptr;
  switch (pub.nameAlg) {
    case TPM2_ALG_SHA256: md = EVP_sha256(); break;
    case TPM2_ALG_SHA384: md = EVP_sha384(); break;
    case TPM2_ALG_SHA512: md = EVP_sha512(); break;
    default: return common::InvalidArgumentError("unsupported name algorithm");
  }
  Bytes name = {static_cast<uint8_t>(pub.nameAlg >> 8), static_cast<uint8_t>(pub.nameAlg)};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(body.data(), body.size(), digest, &len, md, nullptr) != 1) {
    return common::OpenSslInternal("hashing TPMT_PUBLIC");
  }
  name.insert(name.end(), digest, digest + len);
  return name;
}

Result<common::EvpPkeyPtr> PublicToEvp(const TPMT_PUBLIC& pub) {
  Result<common::EvpPkeyPtr> key = common::InvalidArgumentError("public area is neither RSA nor ECC");
  if (pub.type == TPM2_ALG_RSA) {
    uint32_t exp = pub.parameters.rsaDetail.exponent == 0 ? 65537 : pub.parameters.rsaDetail.exponent;
    const Bytes e = {static_cast<uint8_t>(exp >> 24), static_cast<uint8_t>(exp >> 16), static_cast<uint8_t>(exp >> 8),
                     static_cast<uint8_t>(exp)};
    key = common::RsaPublicKeyFromParts(ByteView(pub.unique.rsa.buffer, pub.unique.rsa.size), e);
  } else if (pub.type == TPM2_ALG_ECC) {
    const char* group = nullptr;
    size_t field = 0;
    switch (pub.parameters.eccDetail.curveID) {
      case TPM2_ECC_NIST_P256: group = "prime256v1"; field = 32; break;
      case TPM2_ECC_NIST_P384: group = "secp384r1"; field = 48; break;
      default: return common::InvalidArgumentError("unsupported ECC curve");
    }
    const TPMS_ECC_POINT& q = pub.unique.ecc;
    if (q.x.size > field || q.y.size > field) {
      return common::InvalidArgumentError("ECC point larger than the field");
    }
    Bytes point(1 + 2 * field, 0);
    point[0] = 0x04;
    std::memcpy(point.data() + 1 + field - q.x.size, q.x.buffer, q.x.size);
    std::memcpy(point.data() + 1 + 2 * field - q.y.size, q.y.buffer, q.y.size);
    key = common::EcPublicKeyFromPoint(group, point);
  }
  if (!key.ok()) return key.status().WithContext("TPM public area is not a valid public key");
  return key;
}

Result<TPML_PCR_SELECTION> Sha256PcrSelection(const std::vector<uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t pcr : pcrs) {
    if (pcr > 23) return common::InvalidArgumentError("PCR index " + std::to_string(pcr) + " > 23");
    uint8_t& byte = sel.pcrSelections[0].pcrSelect[pcr / 8];
    const auto bit = static_cast<uint8_t>(1u << (pcr % 8));
    if ((byte & bit) != 0) {
      return common::InvalidArgumentError("PCR " + std::to_string(pcr) + " selected twice");
    }
    byte |= bit;
  }
  return sel;
}

Result<Bytes> SerializeKeyFile(const KeyFile& file) {
  if (file.pcrs.size() > 24) return common::InvalidArgumentError("too many PCRs");
  Bytes out(kKeyFileMagic, kKeyFileMagic + sizeof(kKeyFileMagic));
  out.push_back(kKeyFileVersion);
  out.push_back(static_cast<uint8_t>(file.kind));
  out.push_back(file.algorithm);
  out.push_back(static_cast<uint8_t>(file.pcrs.size()));
  for (uint32_t pcr : file.pcrs) {
    if (pcr > 23) return common::InvalidArgumentError("PCR index > 23");
    out.push_back(static_cast<uint8_t>(pcr));
  }
  out.insert(out.end(), file.public_area.begin(), file.public_area.end());
  out.insert(out.end(), file.private_area.begin(), file.private_area.end());
  return out;
}

Result<KeyFile> ParseKeyFile(ByteView bytes) {
  auto bad = [](std::string why) { return common::DataLossError("key blob file: " + why); };
  constexpr size_t kHeader = sizeof(kKeyFileMagic) + 4;
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kKeyFileMagic, sizeof(kKeyFileMagic)) != 0) {
    return bad("bad magic");
  }
  if (bytes[8] != kKeyFileVersion) return bad("unknown version " + std::to_string(bytes[8]));
  KeyFile file;
  if (bytes[9] != static_cast<uint8_t>(BlobKind::kAgentKey) &&
      bytes[9] != static_cast<uint8_t>(BlobKind::kAttestationKey)) {
    return bad("unknown kind");
  }
  file.kind = static_cast<BlobKind>(bytes[9]);
  file.algorithm = bytes[10];
  const size_t npcr = bytes[11];
  if (npcr > 24 || bytes.size() < kHeader + npcr) return bad("bad PCR list");
  for (size_t i = 0; i < npcr; ++i) {
    if (bytes[kHeader + i] > 23) return bad("bad PCR index");
    file.pcrs.push_back(bytes[kHeader + i]);
  }
  size_t offset = kHeader + npcr;
  TPM2B_PUBLIC pub{};
  size_t start = offset;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(bytes.data(), bytes.size(), &offset, &pub) != TSS2_RC_SUCCESS) {
    return bad("bad TPM2B_PUBLIC");
  }
  file.public_area.assign(bytes.begin() + static_cast<long>(start), bytes.begin() + static_cast<long>(offset));
  TPM2B_PRIVATE priv{};
  start = offset;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(bytes.data(), bytes.size(), &offset, &priv) != TSS2_RC_SUCCESS) {
    return bad("bad TPM2B_PRIVATE");
  }
  file.private_area.assign(bytes.begin() + static_cast<long>(start), bytes.begin() + static_cast<long>(offset));
  if (offset != bytes.size()) return bad(std::to_string(bytes.size() - offset) + " trailing bytes");
  // Canonical: re-marshalling the public area must give the same bytes.
  auto remarshalled = MarshalPublic(pub);
  if (!remarshalled.ok() || *remarshalled != file.public_area) return bad("non-canonical TPM2B_PUBLIC");
  return file;
}

namespace {
Status ErrnoError(const std::string& what) {
  return common::InternalError(what + ": " + std::strerror(errno));
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};
}  // namespace

Status WriteFileAtomic(const std::filesystem::path& path, ByteView data) {
  std::random_device rd;
  const std::filesystem::path tmp =
      path.parent_path() / ("." + path.filename().string() + ".tmp" + std::to_string(rd()));
  ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) return ErrnoError("creating " + tmp.string());
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = ErrnoError("writing " + tmp.string());
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.Release()) != 0) {
    Status s = ErrnoError("syncing " + tmp.string());
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = ErrnoError("renaming to " + path.string());
    ::unlink(tmp.c_str());
    return s;
  }
  ScopedFd dir(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0 || ::fsync(dir.get()) != 0) {
    return ErrnoError("syncing directory " + path.parent_path().string());
  }
  return Status::Ok();
}

Result<Bytes> ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return common::NotFoundError(path.string() + " does not exist");
    return ErrnoError("opening " + path.string());
  }
  Bytes out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return ErrnoError("reading " + path.string());
  return out;
}

Status EnsurePrivateDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return common::InternalError("creating " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod " + dir.string());
  return Status::Ok();
}

}  // namespace agentroot::hsm::tpm
