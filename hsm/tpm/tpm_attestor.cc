#include "agentroot/hsm/tpm/tpm_attestor.h"

#include <tss2/tss2_esys.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "tpm_device_impl.h"
#include "tpm_key.h"
#include "tpm_objects.h"
#include "tss_error.h"

namespace agentroot::hsm::tpm {

using common::Result;
using common::Status;
using Op = TpmDevice::Impl::Op;
using ObjectRef = TpmDevice::Impl::ObjectRef;

namespace {

constexpr char kAkSuffix[] = ".tpmkey";
constexpr TSS2_RC kLayerMask = 0xFF0000;

uint8_t AkCode(AkAlgorithm alg) { return alg == AkAlgorithm::kRsa2048 ? 2 : 1; }

// An ESYS_TR for a persistent object: closed (never flushed) at scope exit.
class ScopedTrClose {
 public:
  ScopedTrClose(ESYS_CONTEXT* esys, ESYS_TR handle) : esys_(esys), handle_(handle) {}
  ScopedTrClose(const ScopedTrClose&) = delete;
  ScopedTrClose& operator=(const ScopedTrClose&) = delete;
  ~ScopedTrClose() {
    if (handle_ != ESYS_TR_NONE) Esys_TR_Close(esys_, &handle_);
  }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_;
};

Result<TPM2B_DATA> QualifyingData(ByteView data) {
  TPM2B_DATA out{};
  if (data.size() > sizeof(out.buffer)) {
    return common::InvalidArgumentError("qualifying data longer than " +
                                        std::to_string(sizeof(out.buffer)) + " bytes");
  }
  out.size = static_cast<uint16_t>(data.size());
  std::memcpy(out.buffer, data.data(), data.size());
  return out;
}

Result<TPML_PCR_SELECTION> ToSelection(const std::vector<PcrBank>& banks) {
  TPML_PCR_SELECTION sel{};
  if (banks.empty() || banks.size() > TPM2_NUM_PCR_BANKS) {
    return common::InvalidArgumentError("PCR selection needs 1 to 16 banks");
  }
  sel.count = static_cast<uint32_t>(banks.size());
  for (size_t i = 0; i < banks.size(); ++i) {
    TPMS_PCR_SELECTION& s = sel.pcrSelections[i];
    s.hash = banks[i].hash_alg;
    s.sizeofSelect = 3;
    for (uint32_t pcr : banks[i].pcrs) {
      if (pcr > 23) return common::InvalidArgumentError("PCR index " + std::to_string(pcr) + " > 23");
      s.pcrSelect[pcr / 8] |= static_cast<uint8_t>(1u << (pcr % 8));
    }
  }
  return sel;
}

Result<SignedAttestation> ToSignedAttestation(const TPM2B_ATTEST& attest, const TPMT_SIGNATURE& sig) {
  SignedAttestation out;
  out.tpms_attest.assign(attest.attestationData, attest.attestationData + attest.size);
  AR_ASSIGN_OR_RETURN(out.tpmt_signature, MarshalSignature(sig));
  return out;
}

struct LoadedEk {
  ESYS_TR handle = ESYS_TR_NONE;
  TPMA_OBJECT attributes = 0;
  TPMI_ALG_HASH name_alg = TPM2_ALG_SHA256;
  std::optional<ObjectRef> created;  // set when recreated from the template
  std::optional<ScopedTrClose> persistent;
};

// The EK: the persistent one if present, else CreatePrimary from the
// template. Reserves the object slot it occupies during the next command.
Status AcquireEk(Op& op, EkKind kind, LoadedEk* ek) {
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(op.esys(), EkPersistentHandle(kind), ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE, &handle);
  if (rc == TSS2_RC_SUCCESS) {
    ek->persistent.emplace(op.esys(), handle);
    TPM2B_PUBLIC* raw = nullptr;
    rc = Esys_ReadPublic(op.esys(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw,
                         nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> pub(raw);
    if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_ReadPublic of the EK");
    ek->handle = handle;
    ek->attributes = pub->publicArea.objectAttributes;
    ek->name_alg = pub->publicArea.nameAlg;
    return op.MakeRoom(1);
  }
  if (!IsTpmFormat1Error(rc, TPM2_RC_HANDLE)) {
    return op.Fail(rc, "looking up the persistent EK");
  }
  AR_RETURN_IF_ERROR(op.MakeRoom(1));
  TPM2B_PUBLIC in_public = EkTemplate(kind);
  TPM2B_SENSITIVE_CREATE in_sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  rc = Esys_CreatePrimary(op.esys(), ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                          ESYS_TR_NONE, &in_sensitive, &in_public, &outside, &creation_pcr,
                          &handle, &out_public, &creation_data, &creation_hash, &ticket);
  EsysPtr<TPM2B_PUBLIC> pub(out_public);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "CreatePrimary of the EK from its template");
  ek->created.emplace(op.Adopt(handle));
  ek->handle = handle;
  ek->attributes = pub->publicArea.objectAttributes;
  ek->name_alg = pub->publicArea.nameAlg;
  return Status::Ok();
}

Result<TPM2B_PUBLIC> ReadEkPublicOp(Op& op, EkKind kind) {
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(op.esys(), EkPersistentHandle(kind), ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE, &handle);
  if (rc == TSS2_RC_SUCCESS) {
    ScopedTrClose close(op.esys(), handle);
    TPM2B_PUBLIC* raw = nullptr;
    rc = Esys_ReadPublic(op.esys(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw,
                         nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> pub(raw);
    if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_ReadPublic of the EK");
    return *pub;
  }
  if (!IsTpmFormat1Error(rc, TPM2_RC_HANDLE)) return op.Fail(rc, "looking up the persistent EK");
  LoadedEk ek;
  AR_RETURN_IF_ERROR(AcquireEk(op, kind, &ek));
  TPM2B_PUBLIC* raw = nullptr;
  rc = Esys_ReadPublic(op.esys(), ek.handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw,
                       nullptr, nullptr);
  EsysPtr<TPM2B_PUBLIC> pub(raw);
  if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_ReadPublic of the EK");
  return *pub;
}

}  // namespace

Result<std::unique_ptr<TpmAttestor>> TpmAttestor::Create(std::shared_ptr<TpmDevice> device,
                                                         std::filesystem::path state_dir) {
  if (device == nullptr) return common::InvalidArgumentError("null TpmDevice");
  if (state_dir.empty()) return common::InvalidArgumentError("empty state directory");
  std::filesystem::path aks = state_dir / "aks";
  AR_RETURN_IF_ERROR(EnsurePrivateDirectory(state_dir));
  AR_RETURN_IF_ERROR(EnsurePrivateDirectory(aks));
  return std::unique_ptr<TpmAttestor>(new TpmAttestor(std::move(device), std::move(aks)));
}

std::filesystem::path TpmAttestor::PathFor(std::string_view id) const {
  return aks_dir_ / (std::string(id) + kAkSuffix);
}

Result<Bytes> TpmAttestor::ReadEkPublic(EkKind kind) {
  return device_->impl().Run<Bytes>([&](Op& op) -> Result<Bytes> {
    AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, ReadEkPublicOp(op, kind));
    return MarshalPublic(pub);
  });
}

Result<Bytes> TpmAttestor::ReadEkCertificate(EkKind kind) { return device_->ReadEkCertificate(kind); }

namespace {

struct AkRecord {
  AttestationKeyInfo info;
  KeyBlob blob;
};

Result<AkRecord> AkFromFile(std::string id, const KeyFile& file) {
  if (file.kind != BlobKind::kAttestationKey || (file.algorithm != 1 && file.algorithm != 2)) {
    return common::DataLossError("'" + id + "' is not an attestation key blob");
  }
  AkRecord record;
  record.info.id = std::move(id);
  record.info.algorithm = file.algorithm == 2 ? AkAlgorithm::kRsa2048 : AkAlgorithm::kEccP256;
  AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, UnmarshalPublic(file.public_area));
  const TPM2B_PUBLIC expected = AkTemplate(record.info.algorithm == AkAlgorithm::kRsa2048);
  if (pub.publicArea.objectAttributes != expected.publicArea.objectAttributes ||
      pub.publicArea.type != expected.publicArea.type) {
    return common::DataLossError("AK blob of '" + record.info.id + "' has unexpected attributes");
  }
  record.info.tpm2b_public = file.public_area;
  AR_ASSIGN_OR_RETURN(record.info.name, ObjectName(pub.publicArea));
  record.blob = KeyBlob{file.public_area, file.private_area, record.info.name};
  return record;
}

}  // namespace

Result<AttestationKeyInfo> TpmAttestor::CreateAk(std::string_view id, AkAlgorithm algorithm) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard<std::mutex> lock(mu_);
  const std::filesystem::path path = PathFor(id);
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    return common::AlreadyExistsError("AK '" + std::string(id) + "' exists");
  }
  AR_ASSIGN_OR_RETURN(
      KeyFile file, device_->impl().Run<KeyFile>([&](Op& op) -> Result<KeyFile> {
        TPM2B_PUBLIC in_public = AkTemplate(algorithm == AkAlgorithm::kRsa2048);
        AR_ASSIGN_OR_RETURN(auto created, op.CreateUnderSrk(in_public, "AK '" + std::string(id) + "'"));
        EsysPtr<TPM2B_PRIVATE>& priv = created.private_part;
        EsysPtr<TPM2B_PUBLIC>& pub = created.public_part;
        KeyFile f;
        f.kind = BlobKind::kAttestationKey;
        f.algorithm = AkCode(algorithm);
        AR_ASSIGN_OR_RETURN(f.public_area, MarshalPublic(*pub));
        AR_ASSIGN_OR_RETURN(f.private_area, MarshalPrivate(*priv));
        return f;
      }));
  AR_ASSIGN_OR_RETURN(AkRecord record, AkFromFile(std::string(id), file));
  AR_ASSIGN_OR_RETURN(Bytes serialized, SerializeKeyFile(file));
  AR_RETURN_IF_ERROR(WriteFileAtomic(path, serialized));
  return record.info;
}

namespace {
Result<AkRecord> LoadAkRecord(const std::filesystem::path& path, std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  auto bytes = ReadWholeFile(path);
  if (!bytes.ok()) {
    if (bytes.status().code() == common::StatusCode::kNotFound) {
      return common::NotFoundError("no AK '" + std::string(id) + "'");
    }
    return bytes.status();
  }
  AR_ASSIGN_OR_RETURN(KeyFile file, ParseKeyFile(*bytes));
  return AkFromFile(std::string(id), file);
}
}  // namespace

Result<AttestationKeyInfo> TpmAttestor::GetAk(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard<std::mutex> lock(mu_);
  AR_ASSIGN_OR_RETURN(AkRecord record, LoadAkRecord(PathFor(id), id));
  return record.info;
}

Status TpmAttestor::DeleteAk(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard<std::mutex> lock(mu_);
  AR_ASSIGN_OR_RETURN(AkRecord record, LoadAkRecord(PathFor(id), id));
  if (::unlink(PathFor(id).c_str()) != 0) {
    return common::InternalError("removing AK file: " + std::string(std::strerror(errno)));
  }
  std::lock_guard<std::mutex> device_lock(device_->impl().mutex());
  device_->impl().Evict(record.blob.name);
  return Status::Ok();
}

Result<common::SecretBytes> TpmAttestor::ActivateCredential(std::string_view ak_id, EkKind ek_kind,
                                                            ByteView credential_blob,
                                                            ByteView encrypted_secret) {
  AR_ASSIGN_OR_RETURN(TPM2B_ID_OBJECT id_object, UnmarshalIdObject(credential_blob));
  AR_ASSIGN_OR_RETURN(TPM2B_ENCRYPTED_SECRET secret, UnmarshalEncryptedSecret(encrypted_secret));
  AkRecord ak;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AR_ASSIGN_OR_RETURN(ak, LoadAkRecord(PathFor(ak_id), ak_id));
  }
  return device_->impl().Run<common::SecretBytes>([&](Op& op) -> Result<common::SecretBytes> {
    AR_ASSIGN_OR_RETURN(ObjectRef ak_ref, op.Load(ak.blob));
    LoadedEk ek;
    AR_RETURN_IF_ERROR(AcquireEk(op, ek_kind, &ek));
    ESYS_TR ek_auth = ESYS_TR_PASSWORD;
    ESYS_TR policy = ESYS_TR_NONE;
    if ((ek.attributes & TPMA_OBJECT_USERWITHAUTH) == 0) {
      AR_ASSIGN_OR_RETURN(policy, StartSession(op, TPM2_SE_POLICY, ek.name_alg));
    }
    ScopedSession session(op.esys(), policy);
    if (policy != ESYS_TR_NONE) {
      TPM2B_TIMEOUT* timeout = nullptr;
      TPMT_TK_AUTH* ticket = nullptr;
      TSS2_RC rc = Esys_PolicySecret(op.esys(), ESYS_TR_RH_ENDORSEMENT, policy, ESYS_TR_PASSWORD,
                                     ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0,
                                     &timeout, &ticket);
      Esys_Free(timeout);
      Esys_Free(ticket);
      if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "PolicySecret(TPM_RH_ENDORSEMENT)");
      ek_auth = policy;
    }
    TPM2B_DIGEST* raw = nullptr;
    TSS2_RC rc = Esys_ActivateCredential(op.esys(), ak_ref.handle(), ek.handle, ESYS_TR_PASSWORD,
                                         ek_auth, ESYS_TR_NONE, &id_object, &secret, &raw);
    EsysPtr<TPM2B_DIGEST> cert_info(raw);
    if (rc != TSS2_RC_SUCCESS) {
      Status failed = op.Fail(rc, "TPM2_ActivateCredential");
      if ((rc & kLayerMask) == TSS2_TPM_RC_LAYER && !IsTpmFormat1Error(rc, TPM2_RC_HANDLE) &&
          rc != TPM2_RC_OBJECT_MEMORY) {
        return common::PermissionDeniedError(failed.message() +
                                             ": the TPM refused the credential (not made for "
                                             "this EK and AK, or tampered)");
      }
      return failed;
    }
    common::SecretBytes out(ByteView(cert_info->buffer, cert_info->size));
    common::SecureWipe(cert_info->buffer, sizeof(cert_info->buffer));
    return out;
  });
}

Result<SignedAttestation> TpmAttestor::Certify(std::string_view ak_id, const Key& key,
                                               ByteView qualifying_data) {
  const auto* tpm_key = dynamic_cast<const TpmKey*>(&key);
  if (tpm_key == nullptr || tpm_key->device() != device_) {
    return common::InvalidArgumentError("Certify needs a key of a TpmKeyManager on this TPM");
  }
  if (tpm_key->deleted()) return common::FailedPreconditionError("key was deleted");
  AR_ASSIGN_OR_RETURN(TPM2B_DATA qualifying, QualifyingData(qualifying_data));
  AkRecord ak;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AR_ASSIGN_OR_RETURN(ak, LoadAkRecord(PathFor(ak_id), ak_id));
  }
  return device_->impl().Run<SignedAttestation>([&](Op& op) -> Result<SignedAttestation> {
    AR_ASSIGN_OR_RETURN(ObjectRef object, op.Load(tpm_key->blob()));
    AR_ASSIGN_OR_RETURN(ObjectRef signer, op.Load(ak.blob));
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_ATTEST* attest = nullptr;
    TPMT_SIGNATURE* sig = nullptr;
    TSS2_RC rc = Esys_Certify(op.esys(), object.handle(), signer.handle(), ESYS_TR_PASSWORD,
                              ESYS_TR_PASSWORD, ESYS_TR_NONE, &qualifying, &scheme, &attest, &sig);
    EsysPtr<TPM2B_ATTEST> attest_ptr(attest);
    EsysPtr<TPMT_SIGNATURE> sig_ptr(sig);
    if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_Certify");
    return ToSignedAttestation(*attest, *sig);
  });
}

Result<SignedAttestation> TpmAttestor::Quote(std::string_view ak_id,
                                             const std::vector<PcrBank>& selection,
                                             ByteView qualifying_data) {
  AR_ASSIGN_OR_RETURN(TPM2B_DATA qualifying, QualifyingData(qualifying_data));
  AR_ASSIGN_OR_RETURN(TPML_PCR_SELECTION sel, ToSelection(selection));
  AkRecord ak;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AR_ASSIGN_OR_RETURN(ak, LoadAkRecord(PathFor(ak_id), ak_id));
  }
  return device_->impl().Run<SignedAttestation>([&](Op& op) -> Result<SignedAttestation> {
    AR_ASSIGN_OR_RETURN(ObjectRef signer, op.Load(ak.blob));
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_ATTEST* attest = nullptr;
    TPMT_SIGNATURE* sig = nullptr;
    TSS2_RC rc = Esys_Quote(op.esys(), signer.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                            ESYS_TR_NONE, &qualifying, &scheme, &sel, &attest, &sig);
    EsysPtr<TPM2B_ATTEST> attest_ptr(attest);
    EsysPtr<TPMT_SIGNATURE> sig_ptr(sig);
    if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_Quote");
    return ToSignedAttestation(*attest, *sig);
  });
}

Result<PcrValues> TpmAttestor::PcrRead(const std::vector<PcrBank>& selection) {
  AR_ASSIGN_OR_RETURN(TPML_PCR_SELECTION remaining, ToSelection(selection));
  return device_->impl().Run<PcrValues>([&](Op& op) -> Result<PcrValues> {
    TPML_PCR_SELECTION want = remaining;
    PcrValues values;
    for (int round = 0; round < 32; ++round) {
      bool any = false;
      for (uint32_t b = 0; b < want.count; ++b) {
        for (int i = 0; i < 3; ++i) any = any || want.pcrSelections[b].pcrSelect[i] != 0;
      }
      if (!any) return values;
      uint32_t counter = 0;
      TPML_PCR_SELECTION* out_sel = nullptr;
      TPML_DIGEST* out_values = nullptr;
      TSS2_RC rc = Esys_PCR_Read(op.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &want,
                                 &counter, &out_sel, &out_values);
      EsysPtr<TPML_PCR_SELECTION> sel_ptr(out_sel);
      EsysPtr<TPML_DIGEST> values_ptr(out_values);
      if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_PCR_Read");
      uint32_t next = 0;
      bool progressed = false;
      for (uint32_t b = 0; b < out_sel->count; ++b) {
        const TPMS_PCR_SELECTION& s = out_sel->pcrSelections[b];
        for (uint32_t pcr = 0; pcr < 8u * s.sizeofSelect && pcr < 24; ++pcr) {
          if ((s.pcrSelect[pcr / 8] & (1u << (pcr % 8))) == 0) continue;
          if (next >= out_values->count) return common::DataLossError("PCR_Read: too few values");
          const TPM2B_DIGEST& d = out_values->digests[next++];
          values[{s.hash, pcr}] = Bytes(d.buffer, d.buffer + d.size);
          progressed = true;
          for (uint32_t w = 0; w < want.count; ++w) {
            if (want.pcrSelections[w].hash == s.hash) {
              want.pcrSelections[w].pcrSelect[pcr / 8] &= static_cast<uint8_t>(~(1u << (pcr % 8)));
            }
          }
        }
      }
      if (!progressed) {
        return common::InvalidArgumentError("the TPM returns no values for part of the selection "
                                            "(unsupported PCR bank?)");
      }
    }
    return common::InternalError("PCR_Read did not converge");
  });
}

Status TpmAttestor::PcrExtend(uint32_t pcr, ByteView sha256_digest) {
  if (pcr > 23) return common::InvalidArgumentError("PCR index > 23");
  if (sha256_digest.size() != 32) return common::InvalidArgumentError("digest must be 32 bytes");
  TPML_DIGEST_VALUES digests{};
  digests.count = 1;
  digests.digests[0].hashAlg = TPM2_ALG_SHA256;
  std::memcpy(digests.digests[0].digest.sha256, sha256_digest.data(), 32);
  return device_->impl().RunStatus([&](Op& op) -> Status {
    TSS2_RC rc = Esys_PCR_Extend(op.esys(), ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                 ESYS_TR_NONE, &digests);
    if (rc != TSS2_RC_SUCCESS) return op.Fail(rc, "TPM2_PCR_Extend of PCR " + std::to_string(pcr));
    return Status::Ok();
  }, /*retry=*/false);
}

}  // namespace agentroot::hsm::tpm
