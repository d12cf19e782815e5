#include "agentroot/attestation/tpm_public.h"

#include <openssl/core_names.h>
#include <tss2/tss2_tpm2_types.h>

#include "tss_mu.h"

namespace agentroot::attestation {

using common::InvalidArgumentError;

Result<const EVP_MD*> DigestForTpmHash(uint16_t hash_alg) {
  switch (hash_alg) {
    case tpm_alg::kSha256: return EVP_sha256();
    case tpm_alg::kSha384: return EVP_sha384();
    case tpm_alg::kSha512: return EVP_sha512();
    case tpm_alg::kSha1: return InvalidArgumentError("tpm: SHA-1 is not accepted");
    default: break;
  }
  return InvalidArgumentError("tpm: unsupported hash algorithm 0x" +
                              common::HexEncode(Bytes{static_cast<uint8_t>(hash_alg >> 8),
                                                      static_cast<uint8_t>(hash_alg)}));
}

std::size_t TpmHashSize(uint16_t hash_alg) {
  switch (hash_alg) {
    case tpm_alg::kSha1: return 20;
    case tpm_alg::kSha256: return 32;
    case tpm_alg::kSha384: return 48;
    case tpm_alg::kSha512: return 64;
    default: return 0;
  }
}

Result<TpmPublic> TpmPublic::Parse(ByteView tpm2b_public) {
  AR_ASSIGN_OR_RETURN(TPM2B_PUBLIC parsed,
                      internal::UnmarshalExact<TPM2B_PUBLIC>(
                          tpm2b_public, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "TPM2B_PUBLIC"));
  const TPMT_PUBLIC& area = parsed.publicArea;
  // Re-marshal and compare, so the Name is over exactly the bytes presented
  // and the size prefix matches the contents.
  AR_ASSIGN_OR_RETURN(Bytes tpmt, internal::Marshal(area, Tss2_MU_TPMT_PUBLIC_Marshal, "TPMT_PUBLIC"));
  if (tpm2b_public.size() != tpmt.size() + 2 ||
      !std::equal(tpmt.begin(), tpmt.end(), tpm2b_public.begin() + 2)) {
    return InvalidArgumentError("parsing TPM2B_PUBLIC: non-canonical encoding");
  }
  if (area.type == TPM2_ALG_RSA) {
    uint16_t bits = area.parameters.rsaDetail.keyBits;
    if (bits < 2048 || area.unique.rsa.size * 8 != bits) {
      return InvalidArgumentError("tpm public: RSA key must be >= 2048 bits with a matching modulus");
    }
  } else if (area.type == TPM2_ALG_ECC) {
    uint16_t curve = area.parameters.eccDetail.curveID;
    std::size_t field = curve == TPM2_ECC_NIST_P256 ? 32 : curve == TPM2_ECC_NIST_P384 ? 48 : 0;
    if (field == 0) return InvalidArgumentError("tpm public: unsupported ECC curve");
    if (area.unique.ecc.x.size > field || area.unique.ecc.y.size > field ||
        area.unique.ecc.x.size == 0 || area.unique.ecc.y.size == 0) {
      return InvalidArgumentError("tpm public: ECC point coordinates have bad sizes");
    }
  } else {
    return InvalidArgumentError("tpm public: only RSA and ECC keys are accepted");
  }
  AR_ASSIGN_OR_RETURN(const EVP_MD* md, DigestForTpmHash(area.nameAlg));
  TpmPublic out;
  out.name_ = {static_cast<uint8_t>(area.nameAlg >> 8), static_cast<uint8_t>(area.nameAlg)};
  out.name_.resize(2 + static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(tpmt.data(), tpmt.size(), out.name_.data() + 2, &len, md, nullptr) != 1) {
    return common::OpenSslInternal("tpm public: hashing name");
  }
  out.public_ = std::make_shared<const TPMT_PUBLIC>(area);
  out.marshalled_.assign(tpm2b_public.begin(), tpm2b_public.end());
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr pkey, out.BuildOpenSslKey());
  out.pkey_ = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
  return out;
}

uint16_t TpmPublic::type() const { return public_->type; }
uint16_t TpmPublic::name_alg() const { return public_->nameAlg; }
uint32_t TpmPublic::attributes() const { return public_->objectAttributes; }

uint16_t TpmPublic::ecc_curve() const {
  return public_->type == TPM2_ALG_ECC ? public_->parameters.eccDetail.curveID : 0;
}

uint16_t TpmPublic::rsa_bits() const {
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.keyBits : 0;
}

uint16_t TpmPublic::scheme() const {
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.scheme.scheme
                                       : public_->parameters.eccDetail.scheme.scheme;
}

uint16_t TpmPublic::scheme_hash() const {
  if (scheme() == TPM2_ALG_NULL) return 0;
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.scheme.details.anySig.hashAlg
                                       : public_->parameters.eccDetail.scheme.details.anySig.hashAlg;
}

uint16_t TpmPublic::symmetric_alg() const {
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.symmetric.algorithm
                                       : public_->parameters.eccDetail.symmetric.algorithm;
}

uint16_t TpmPublic::symmetric_bits() const {
  if (symmetric_alg() == TPM2_ALG_NULL) return 0;
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.symmetric.keyBits.sym
                                       : public_->parameters.eccDetail.symmetric.keyBits.sym;
}

uint16_t TpmPublic::symmetric_mode() const {
  if (symmetric_alg() == TPM2_ALG_NULL) return TPM2_ALG_NULL;
  return public_->type == TPM2_ALG_RSA ? public_->parameters.rsaDetail.symmetric.mode.sym
                                       : public_->parameters.eccDetail.symmetric.mode.sym;
}

namespace {

Bytes PadLeft(const uint8_t* data, std::size_t size, std::size_t field) {
  Bytes out(field - size, 0);
  out.insert(out.end(), data, data + size);
  return out;
}

std::size_t FieldSize(uint16_t curve) { return curve == TPM2_ECC_NIST_P256 ? 32 : 48; }

}  // namespace

Bytes TpmPublic::ecc_x() const {
  if (public_->type != TPM2_ALG_ECC) return {};
  return PadLeft(public_->unique.ecc.x.buffer, public_->unique.ecc.x.size, FieldSize(ecc_curve()));
}

Bytes TpmPublic::ecc_y() const {
  if (public_->type != TPM2_ALG_ECC) return {};
  return PadLeft(public_->unique.ecc.y.buffer, public_->unique.ecc.y.size, FieldSize(ecc_curve()));
}

Result<common::EvpPkeyPtr> TpmPublic::ToOpenSslKey() const {
  if (!pkey_ || EVP_PKEY_up_ref(pkey_.get()) != 1) return common::InternalError("tpm public: no key");
  return common::EvpPkeyPtr(pkey_.get());
}

Result<common::EvpPkeyPtr> TpmPublic::BuildOpenSslKey() const {
  Result<common::EvpPkeyPtr> key = common::InternalError("tpm public: no key type");
  if (public_->type == TPM2_ALG_RSA) {
    uint32_t exponent = public_->parameters.rsaDetail.exponent;
    if (exponent == 0) exponent = 65537;
    const Bytes e = {static_cast<uint8_t>(exponent >> 24), static_cast<uint8_t>(exponent >> 16),
                     static_cast<uint8_t>(exponent >> 8), static_cast<uint8_t>(exponent)};
    key = common::RsaPublicKeyFromParts(ByteView(public_->unique.rsa.buffer, public_->unique.rsa.size), e);
  } else {
    Bytes point = {0x04};
    Bytes x = ecc_x();
    Bytes y = ecc_y();
    point.insert(point.end(), x.begin(), x.end());
    point.insert(point.end(), y.begin(), y.end());
    key = common::EcPublicKeyFromPoint(ecc_curve() == TPM2_ECC_NIST_P256 ? "prime256v1" : "secp384r1", point);
  }
  if (!key.ok()) return key.status().WithContext("tpm public");
  return key;
}

}  // namespace agentroot::attestation
