#include "agentroot/hsm/tpm/tpm_key_manager.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <tss2/tss2_esys.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "tpm_device_impl.h"
#include "tpm_key.h"
#include "tpm_objects.h"
#include "tss_error.h"

namespace agentroot::hsm::tpm {

using common::Result;
using common::Status;

namespace {

constexpr char kKeySuffix[] = ".tpmkey";
constexpr uint32_t kMaxBindablePcr = 15;

uint8_t AlgorithmCode(JwsAlgorithm alg) { return static_cast<uint8_t>(static_cast<int>(alg) + 1); }

Result<JwsAlgorithm> AlgorithmFromCode(uint8_t code) {
  switch (code) {
    case 1: return JwsAlgorithm::kEs256;
    case 2: return JwsAlgorithm::kRs256;
    case 3: return JwsAlgorithm::kPs256;
    default: return common::DataLossError("key blob file: unknown algorithm code");
  }
}

Status ValidatePolicy(const KeyPolicy& policy, std::vector<uint32_t>* sorted_pcrs) {
  switch (policy.algorithm) {
    case JwsAlgorithm::kEs256:
    case JwsAlgorithm::kRs256:
    case JwsAlgorithm::kPs256:
      break;
    default:
      return common::InvalidArgumentError("unknown algorithm");
  }
  std::vector<uint32_t> pcrs = policy.pcr_binding;
  std::sort(pcrs.begin(), pcrs.end());
  if (std::adjacent_find(pcrs.begin(), pcrs.end()) != pcrs.end()) {
    return common::InvalidArgumentError("pcr_binding names a PCR twice");
  }
  for (uint32_t pcr : pcrs) {
    if (pcr > kMaxBindablePcr) {
      return common::InvalidArgumentError(
          "pcr_binding: PCR " + std::to_string(pcr) +
          " refused; only PCRs 0-15 (16-23 are resettable or escape the PCR update counter)");
    }
  }
  *sorted_pcrs = std::move(pcrs);
  return Status::Ok();
}

// Runs PolicyPCR(current values of `pcrs`) on `session`.
Status PolicyPcr(TpmDevice::Impl::Op& op, ESYS_TR session, const std::vector<uint32_t>& pcrs) {
  AR_ASSIGN_OR_RETURN(TPML_PCR_SELECTION sel, Sha256PcrSelection(pcrs));
  TPM2B_DIGEST empty{};
  TSS2_RC rc = Esys_PolicyPCR(op.esys(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &empty, &sel);
  if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_PolicyPCR");
  return Status::Ok();
}

Result<Bytes> PcrPolicyDigest(TpmDevice::Impl::Op& op, const std::vector<uint32_t>& pcrs) {
  AR_ASSIGN_OR_RETURN(ESYS_TR handle, StartSession(op, TPM2_SE_TRIAL, TPM2_ALG_SHA256));
  ScopedSession session(op.esys(), handle);
  AR_RETURN_IF_ERROR(PolicyPcr(op, session.get(), pcrs));
  TPM2B_DIGEST* raw = nullptr;
  TSS2_RC rc = Esys_PolicyGetDigest(op.esys(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &raw);
  EsysPtr<TPM2B_DIGEST> digest(raw);
  if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_PolicyGetDigest");
  return Bytes(digest->buffer, digest->buffer + digest->size);
}

Status VerifyOwnSignature(EVP_PKEY* pkey, JwsAlgorithm alg, ByteView digest, ByteView jose) {
  Bytes sig;
  if (alg == JwsAlgorithm::kEs256) {
    AR_ASSIGN_OR_RETURN(sig, common::EcdsaJoseToDer(jose));
  } else {
    sig.assign(jose.begin(), jose.end());
  }
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return common::OpenSslInternal("verify init");
  }
  if (alg == JwsAlgorithm::kRs256 &&
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
    return common::OpenSslInternal("RSA padding");
  }
  if (alg == JwsAlgorithm::kPs256 &&
      (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1)) {
    return common::OpenSslInternal("PSS parameters");
  }
  if (EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) != 1) {
    common::ClearOpenSslErrors();
    return common::DataLossError("the TPM's signature does not verify with the key's public key");
  }
  return Status::Ok();
}

Result<Bytes> PadTo(const TPM2B_ECC_PARAMETER& v, size_t size) {
  if (v.size > size) return common::DataLossError("ECDSA signature component too long");
  Bytes out(size - v.size, 0);
  out.insert(out.end(), v.buffer, v.buffer + v.size);
  return out;
}

}  // namespace

Result<ESYS_TR> StartSession(TpmDevice::Impl::Op& op, TPM2_SE type, TPMI_ALG_HASH hash) {
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(op.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE, nullptr, type, &symmetric, hash,
                                     &session);
  if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_StartAuthSession");
  // Keep the session after the command; the ScopedSession flushes it.
  rc = Esys_TRSess_SetAttributes(op.esys(), session, TPMA_SESSION_CONTINUESESSION,
                                 TPMA_SESSION_CONTINUESESSION);
  if (rc != TSS2_RC_SUCCESS) {
    Esys_FlushContext(op.esys(), session);
    return op.Fail(rc, "setting session attributes");
  }
  return session;
}

// ---------------------------------------------------------------- TpmKey

bool TpmKey::deleted() const {
  if (deleted_.load()) return true;
  std::error_code ec;
  return !std::filesystem::exists(path_, ec);
}

Result<std::shared_ptr<TpmKey>> TpmKey::FromFile(std::shared_ptr<TpmDevice> device,
                                                 std::string id, const KeyFile& file,
                                                 std::filesystem::path path) {
  if (file.kind != BlobKind::kAgentKey) return common::DataLossError("not an agent key blob");
  KeyPolicy policy;
  AR_ASSIGN_OR_RETURN(policy.algorithm, AlgorithmFromCode(file.algorithm));
  policy.pcr_binding = file.pcrs;
  AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, UnmarshalPublic(file.public_area));
  // The public area must be exactly our template for this policy (apart from
  // the key itself and the policy digest).
  TPM2B_PUBLIC expected = AgentKeyTemplate(policy.algorithm, ByteView(pub.publicArea.authPolicy.buffer,
                                                                      pub.publicArea.authPolicy.size));
  const TPMT_PUBLIC& p = pub.publicArea;
  const TPMT_PUBLIC& e = expected.publicArea;
  const bool params_match =
      p.type == e.type && p.nameAlg == e.nameAlg &&
      (p.type == TPM2_ALG_ECC
           ? (p.parameters.eccDetail.curveID == e.parameters.eccDetail.curveID &&
              p.parameters.eccDetail.scheme.scheme == e.parameters.eccDetail.scheme.scheme &&
              p.parameters.eccDetail.scheme.details.ecdsa.hashAlg ==
                  e.parameters.eccDetail.scheme.details.ecdsa.hashAlg)
           : (p.parameters.rsaDetail.keyBits == e.parameters.rsaDetail.keyBits &&
              p.parameters.rsaDetail.scheme.scheme == e.parameters.rsaDetail.scheme.scheme &&
              p.parameters.rsaDetail.scheme.details.anySig.hashAlg ==
                  e.parameters.rsaDetail.scheme.details.anySig.hashAlg));
  if (p.objectAttributes != e.objectAttributes || !params_match ||
      (policy.pcr_binding.empty() != (p.authPolicy.size == 0))) {
    return common::DataLossError("key blob of '" + id + "' does not match its policy");
  }
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr pkey, PublicToEvp(p));
  AR_ASSIGN_OR_RETURN(common::Jwk jwk, common::Jwk::FromPublicKey(pkey.get()));
  jwk = jwk.WithKid(jwk.Thumbprint());
  KeyBlob blob{file.public_area, file.private_area, {}};
  AR_ASSIGN_OR_RETURN(blob.name, ObjectName(p));
  return std::shared_ptr<TpmKey>(new TpmKey(std::move(device), std::move(id), std::move(policy),
                                            std::move(blob), std::move(pkey), std::move(jwk),
                                            std::move(path)));
}

Result<Bytes> TpmKey::Sign(JwsAlgorithm requested, ByteView digest) const {
  if (requested != policy_.algorithm) {
    return common::FailedPreconditionError("key '" + id_ + "' signs only with " +
                                           std::string(common::JwsAlgorithmName(policy_.algorithm)));
  }
  if (digest.size() != common::kSha256Size) {
    return common::InvalidArgumentError("digest must be 32 bytes (SHA-256)");
  }
  if (deleted()) return common::FailedPreconditionError("key '" + id_ + "' was deleted");

  TpmDevice::Impl& impl = device_->impl();
  AR_ASSIGN_OR_RETURN(
      Bytes jose, impl.Run<Bytes>([&](TpmDevice::Impl::Op& op) -> Result<Bytes> {
        AR_ASSIGN_OR_RETURN(TpmDevice::Impl::ObjectRef key, op.Load(blob_));
        ESYS_TR auth = ESYS_TR_PASSWORD;
        ESYS_TR policy_handle = ESYS_TR_NONE;
        if (!policy_.pcr_binding.empty()) {
          AR_ASSIGN_OR_RETURN(policy_handle, StartSession(op, TPM2_SE_POLICY, TPM2_ALG_SHA256));
        }
        ScopedSession policy_session(op.esys(), policy_handle);
        if (policy_handle != ESYS_TR_NONE) {
          AR_RETURN_IF_ERROR(PolicyPcr(op, policy_handle, policy_.pcr_binding));
          auth = policy_handle;
        }
        TPM2B_DIGEST in{};
        in.size = static_cast<uint16_t>(digest.size());
        std::memcpy(in.buffer, digest.data(), digest.size());
        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_NULL;  // The key's own scheme.
        TPMT_TK_HASHCHECK ticket{};
        ticket.tag = TPM2_ST_HASHCHECK;
        ticket.hierarchy = TPM2_RH_NULL;
        TPMT_SIGNATURE* raw = nullptr;
        TSS2_RC rc = Esys_Sign(op.esys(), key.handle(), auth, ESYS_TR_NONE, ESYS_TR_NONE, &in,
                               &scheme, &ticket, &raw);
        EsysPtr<TPMT_SIGNATURE> sig(raw);
        if (rc != TSS2_RC_SUCCESS) {
          Status failed = op.Fail(rc, "TPM2_Sign with key '" + id_ + "'");
          if (IsTpmFormat1Error(rc, TPM2_RC_POLICY_FAIL) ||
              IsTpmFormat1Error(rc, TPM2_RC_VALUE)) {
            if (!policy_.pcr_binding.empty()) {
              return common::FailedPreconditionError(
                  failed.message() + ": the key's PCR policy is no longer satisfied");
            }
          }
          return failed;
        }
        if (sig->sigAlg == TPM2_ALG_ECDSA) {
          AR_ASSIGN_OR_RETURN(Bytes r, PadTo(sig->signature.ecdsa.signatureR, 32));
          AR_ASSIGN_OR_RETURN(Bytes s, PadTo(sig->signature.ecdsa.signatureS, 32));
          r.insert(r.end(), s.begin(), s.end());
          return r;
        }
        if (sig->sigAlg == TPM2_ALG_RSASSA || sig->sigAlg == TPM2_ALG_RSAPSS) {
          const TPM2B_PUBLIC_KEY_RSA& s = sig->signature.rsassa.sig;
          return Bytes(s.buffer, s.buffer + s.size);
        }
        return common::DataLossError("TPM returned an unexpected signature algorithm");
      }));
  // Fault and stale-handle countermeasure: never return a signature that
  // does not verify under this key.
  AR_RETURN_IF_ERROR(VerifyOwnSignature(pkey_.get(), policy_.algorithm, digest, jose));
  return jose;
}

// ---------------------------------------------------------------- manager

Result<std::unique_ptr<TpmKeyManager>> TpmKeyManager::Create(std::shared_ptr<TpmDevice> device,
                                                             std::filesystem::path state_dir) {
  if (device == nullptr) return common::InvalidArgumentError("null TpmDevice");
  if (state_dir.empty()) return common::InvalidArgumentError("empty state directory");
  std::filesystem::path keys = state_dir / "keys";
  AR_RETURN_IF_ERROR(EnsurePrivateDirectory(state_dir));
  AR_RETURN_IF_ERROR(EnsurePrivateDirectory(keys));
  return std::unique_ptr<TpmKeyManager>(new TpmKeyManager(std::move(device), std::move(keys)));
}

TpmKeyManager::~TpmKeyManager() = default;

std::filesystem::path TpmKeyManager::PathFor(std::string_view id) const {
  return keys_dir_ / (std::string(id) + kKeySuffix);
}

Result<std::shared_ptr<Key>> TpmKeyManager::Generate(std::string_view id, const KeyPolicy& policy) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::vector<uint32_t> pcrs;
  AR_RETURN_IF_ERROR(ValidatePolicy(policy, &pcrs));
  std::lock_guard<std::mutex> lock(mu_);
  const std::filesystem::path path = PathFor(id);
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    return common::AlreadyExistsError("key '" + std::string(id) + "' exists");
  }

  TpmDevice::Impl& impl = device_->impl();
  AR_ASSIGN_OR_RETURN(
      KeyFile file, impl.Run<KeyFile>([&](TpmDevice::Impl::Op& op) -> Result<KeyFile> {
        Bytes auth_policy;
        if (!pcrs.empty()) {
          AR_ASSIGN_OR_RETURN(auth_policy, PcrPolicyDigest(op, pcrs));
        }
        TPM2B_PUBLIC in_public = AgentKeyTemplate(policy.algorithm, auth_policy);
        AR_ASSIGN_OR_RETURN(auto created, op.CreateUnderSrk(in_public, "key '" + std::string(id) + "'"));
        EsysPtr<TPM2B_PRIVATE>& priv = created.private_part;
        EsysPtr<TPM2B_PUBLIC>& pub = created.public_part;
        KeyFile f;
        f.kind = BlobKind::kAgentKey;
        f.algorithm = AlgorithmCode(policy.algorithm);
        f.pcrs = pcrs;
        AR_ASSIGN_OR_RETURN(f.public_area, MarshalPublic(*pub));
        AR_ASSIGN_OR_RETURN(f.private_area, MarshalPrivate(*priv));
        return f;
      }));
  AR_ASSIGN_OR_RETURN(std::shared_ptr<TpmKey> key, TpmKey::FromFile(device_, std::string(id), file, path));
  AR_ASSIGN_OR_RETURN(Bytes serialized, SerializeKeyFile(file));
  AR_RETURN_IF_ERROR(WriteFileAtomic(path, serialized));
  handed_out_[std::string(id)] = key;
  return std::shared_ptr<Key>(key);
}

Result<std::shared_ptr<Key>> TpmKeyManager::Get(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = handed_out_.find(id); it != handed_out_.end()) {
    if (auto key = it->second.lock(); key != nullptr && !key->deleted()) return std::shared_ptr<Key>(key);
  }
  auto bytes = ReadWholeFile(PathFor(id));
  if (!bytes.ok()) {
    if (bytes.status().code() == common::StatusCode::kNotFound) {
      return common::NotFoundError("no key '" + std::string(id) + "'");
    }
    return bytes.status();
  }
  AR_ASSIGN_OR_RETURN(KeyFile file, ParseKeyFile(*bytes));
  AR_ASSIGN_OR_RETURN(std::shared_ptr<TpmKey> key, TpmKey::FromFile(device_, std::string(id), file, PathFor(id)));
  handed_out_[std::string(id)] = key;
  return std::shared_ptr<Key>(key);
}

Result<std::vector<std::string>> TpmKeyManager::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(keys_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string_view suffix = kKeySuffix;
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string id = name.substr(0, name.size() - suffix.size());
    if (ValidateKeyId(id).ok()) ids.push_back(std::move(id));
  }
  if (ec) return common::InternalError("listing " + keys_dir_.string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status TpmKeyManager::Delete(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard<std::mutex> lock(mu_);
  const std::filesystem::path path = PathFor(id);
  auto bytes = ReadWholeFile(path);
  if (!bytes.ok()) {
    if (bytes.status().code() == common::StatusCode::kNotFound) {
      return common::NotFoundError("no key '" + std::string(id) + "'");
    }
    return bytes.status();
  }
  if (::unlink(path.c_str()) != 0) {
    return common::InternalError("removing " + path.string() + ": " + std::strerror(errno));
  }
  if (auto it = handed_out_.find(id); it != handed_out_.end()) {
    if (auto key = it->second.lock()) key->MarkDeleted();
    handed_out_.erase(it);
  }
  // Drop the loaded copy, if any, from the device's LRU.
  auto file = ParseKeyFile(*bytes);
  if (file.ok()) {
    auto pub = UnmarshalPublic(file->public_area);
    if (pub.ok()) {
      auto name = ObjectName(pub->publicArea);
      if (name.ok()) {
        std::lock_guard<std::mutex> device_lock(device_->impl().mutex());
        device_->impl().Evict(*name);
      }
    }
  }
  return Status::Ok();
}

}  // namespace agentroot::hsm::tpm
