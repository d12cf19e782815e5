#include "agentroot/attestation/tpm_evidence.h"

#include <openssl/rsa.h>
#include <tss2/tss2_tpm2_types.h>

#include <set>
#include <string>

#include "tss_mu.h"

namespace agentroot::attestation {

using common::InvalidArgumentError;
using common::PermissionDeniedError;
using common::UnauthenticatedError;

namespace {

Bytes FromTpm2b(const uint8_t* data, uint16_t size) { return Bytes(data, data + size); }

Result<PcrSelection> ConvertSelection(const TPML_PCR_SELECTION& list) {
  PcrSelection out;
  std::set<uint16_t> banks;
  for (uint32_t i = 0; i < list.count; ++i) {
    const TPMS_PCR_SELECTION& sel = list.pcrSelections[i];
    if (TpmHashSize(sel.hash) == 0) {
      return InvalidArgumentError("pcr selection: unknown hash algorithm in bank " + std::to_string(i));
    }
    if (!banks.insert(sel.hash).second) {
      return InvalidArgumentError("pcr selection: bank selected twice");
    }
    if (sel.sizeofSelect > sizeof(sel.pcrSelect)) {
      return InvalidArgumentError("pcr selection: sizeofSelect too large");
    }
    PcrBankSelection bank{sel.hash, {}};
    for (uint32_t byte = 0; byte < sel.sizeofSelect; ++byte) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if (sel.pcrSelect[byte] & (1u << bit)) bank.pcrs.push_back(byte * 8 + bit);
      }
    }
    out.push_back(std::move(bank));
  }
  return out;
}

const char* HashName(uint16_t alg) {
  switch (alg) {
    case tpm_alg::kSha1: return "sha1";
    case tpm_alg::kSha256: return "sha256";
    case tpm_alg::kSha384: return "sha384";
    case tpm_alg::kSha512: return "sha512";
    default: return "unknown";
  }
}

// The parts common to quotes and certifications.
Result<std::pair<TpmAttest, TpmSignature>> VerifySignedAttest(const TpmPublic& ak,
                                                              ByteView tpms_attest,
                                                              ByteView tpmt_signature,
                                                              uint16_t expected_type,
                                                              ByteView expected_qualifying_data) {
  AR_ASSIGN_OR_RETURN(TpmAttest attest, ParseTpmsAttest(tpms_attest));
  AR_ASSIGN_OR_RETURN(TpmSignature signature, ParseTpmtSignature(tpmt_signature));
  // Signature first: nothing in an unauthenticated structure is worth
  // reporting back.
  AR_RETURN_IF_ERROR(VerifyTpmSignature(ak, tpms_attest, signature));
  if (attest.type != expected_type) {
    return InvalidArgumentError(expected_type == kTpmStAttestQuote
                                    ? "attest: not a quote (TPM_ST_ATTEST_QUOTE)"
                                    : "attest: not a certification (TPM_ST_ATTEST_CERTIFY)");
  }
  if (!common::ConstantTimeEquals(attest.extra_data, expected_qualifying_data)) {
    return UnauthenticatedError("attest: qualifying data does not match the expected value");
  }
  return std::make_pair(std::move(attest), std::move(signature));
}

}  // namespace

std::string PcrSelectionToString(const PcrSelection& selection) {
  std::string out;
  for (const PcrBankSelection& bank : selection) {
    if (!out.empty()) out += "+";
    out += HashName(bank.hash_alg);
    out += ":";
    for (std::size_t i = 0; i < bank.pcrs.size(); ++i) {
      if (i > 0) out += ",";
      out += std::to_string(bank.pcrs[i]);
    }
  }
  return out;
}

Result<TpmAttest> ParseTpmsAttest(ByteView tpms_attest) {
  AR_ASSIGN_OR_RETURN(TPMS_ATTEST raw, internal::UnmarshalExact<TPMS_ATTEST>(
                                           tpms_attest, Tss2_MU_TPMS_ATTEST_Unmarshal, "TPMS_ATTEST"));
  if (raw.magic != TPM2_GENERATED_VALUE) {
    return InvalidArgumentError("attest: magic is not TPM_GENERATED_VALUE");
  }
  TpmAttest out;
  out.type = raw.type;
  out.qualified_signer = FromTpm2b(raw.qualifiedSigner.name, raw.qualifiedSigner.size);
  out.extra_data = FromTpm2b(raw.extraData.buffer, raw.extraData.size);
  out.clock_info = {raw.clockInfo.clock, raw.clockInfo.resetCount, raw.clockInfo.restartCount,
                    raw.clockInfo.safe == TPM2_YES};
  out.firmware_version = raw.firmwareVersion;
  if (raw.type == TPM2_ST_ATTEST_QUOTE) {
    AR_ASSIGN_OR_RETURN(out.pcr_selection, ConvertSelection(raw.attested.quote.pcrSelect));
    out.pcr_digest = FromTpm2b(raw.attested.quote.pcrDigest.buffer, raw.attested.quote.pcrDigest.size);
  } else if (raw.type == TPM2_ST_ATTEST_CERTIFY) {
    out.certified_name = FromTpm2b(raw.attested.certify.name.name, raw.attested.certify.name.size);
    out.certified_qualified_name = FromTpm2b(raw.attested.certify.qualifiedName.name,
                                             raw.attested.certify.qualifiedName.size);
  }
  return out;
}

Result<TpmSignature> ParseTpmtSignature(ByteView tpmt_signature) {
  AR_ASSIGN_OR_RETURN(TPMT_SIGNATURE raw,
                      internal::UnmarshalExact<TPMT_SIGNATURE>(
                          tpmt_signature, Tss2_MU_TPMT_SIGNATURE_Unmarshal, "TPMT_SIGNATURE"));
  TpmSignature out;
  out.sig_alg = raw.sigAlg;
  switch (raw.sigAlg) {
    case TPM2_ALG_ECDSA:
      out.hash_alg = raw.signature.ecdsa.hash;
      out.ecdsa_r = FromTpm2b(raw.signature.ecdsa.signatureR.buffer, raw.signature.ecdsa.signatureR.size);
      out.ecdsa_s = FromTpm2b(raw.signature.ecdsa.signatureS.buffer, raw.signature.ecdsa.signatureS.size);
      break;
    case TPM2_ALG_RSASSA:
      out.hash_alg = raw.signature.rsassa.hash;
      out.rsa_signature = FromTpm2b(raw.signature.rsassa.sig.buffer, raw.signature.rsassa.sig.size);
      break;
    case TPM2_ALG_RSAPSS:
      out.hash_alg = raw.signature.rsapss.hash;
      out.rsa_signature = FromTpm2b(raw.signature.rsapss.sig.buffer, raw.signature.rsapss.sig.size);
      break;
    default:
      return InvalidArgumentError("signature: unsupported TPM signature algorithm");
  }
  return out;
}

Status VerifyTpmSignature(const TpmPublic& key, ByteView signed_data, const TpmSignature& signature) {
  AR_ASSIGN_OR_RETURN(const EVP_MD* md, DigestForTpmHash(signature.hash_alg));
  const bool ecc_sig = signature.sig_alg == tpm_alg::kEcdsa;
  if (ecc_sig != (key.type() == tpm_alg::kEcc)) {
    return UnauthenticatedError("signature: algorithm does not match the key type");
  }
  if (key.scheme() != tpm_alg::kNull &&
      (key.scheme() != signature.sig_alg || key.scheme_hash() != signature.hash_alg)) {
    return UnauthenticatedError("signature: scheme differs from the one fixed in the key");
  }
  Bytes der;
  ByteView sig = signature.rsa_signature;
  if (ecc_sig) {
    common::BignumPtr r(BN_bin2bn(signature.ecdsa_r.data(), static_cast<int>(signature.ecdsa_r.size()), nullptr));
    common::BignumPtr s(BN_bin2bn(signature.ecdsa_s.data(), static_cast<int>(signature.ecdsa_s.size()), nullptr));
    if (!r || !s || BN_is_zero(r.get()) || BN_is_zero(s.get())) {
      return UnauthenticatedError("signature: ECDSA r or s is zero");
    }
    common::EcdsaSigPtr ecdsa(ECDSA_SIG_new());
    if (!ecdsa || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) {
      return common::OpenSslInternal("signature: building ECDSA_SIG");
    }
    r.release();
    s.release();
    int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
    if (len <= 0) return common::OpenSslInternal("signature: DER length");
    der.resize(static_cast<std::size_t>(len));
    uint8_t* p = der.data();
    i2d_ECDSA_SIG(ecdsa.get(), &p);
    sig = der;
  }
  // Shared, read-only use of the key parsed once (EVP_PKEY is refcounted and
  // safe to verify with from several threads).
  EVP_PKEY* pkey = const_cast<EVP_PKEY*>(key.openssl_key());
  if (!ecc_sig && sig.size() != static_cast<std::size_t>(EVP_PKEY_get_size(pkey))) {
    return UnauthenticatedError("signature: RSA signature length does not match the modulus");
  }
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) {
    return common::OpenSslInternal("signature: verify init");
  }
  if (signature.sig_alg == tpm_alg::kRsaSsa) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return common::OpenSslInternal("signature: RSA padding");
    }
  } else if (signature.sig_alg == tpm_alg::kRsaPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1) {
      return common::OpenSslInternal("signature: PSS parameters");
    }
  }
  if (EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), signed_data.data(), signed_data.size()) != 1) {
    common::ClearOpenSslErrors();
    return UnauthenticatedError("signature: does not verify with the attestation key");
  }
  return Status::Ok();
}

Status CheckAttestationKey(const TpmPublic& ak) {
  using namespace tpma_object;
  constexpr uint32_t kRequired = kFixedTpm | kFixedParent | kSensitiveDataOrigin | kRestricted | kSign;
  if (!ak.HasAttributes(kRequired) || (ak.attributes() & kDecrypt) != 0) {
    return PermissionDeniedError(
        "attestation key must be fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign and "
        "not decrypt");
  }
  return Status::Ok();
}

bool SelectionCovers(const PcrSelection& selection, uint16_t hash_alg, uint32_t pcr) {
  for (const PcrBankSelection& bank : selection) {
    if (bank.hash_alg != hash_alg) continue;
    for (uint32_t p : bank.pcrs) {
      if (p == pcr) return true;
    }
  }
  return false;
}

Result<VerifiedQuote> VerifyQuote(const TpmPublic& ak, ByteView tpms_attest, ByteView tpmt_signature,
                                  ByteView expected_qualifying_data, const PcrValues& pcr_values) {
  AR_ASSIGN_OR_RETURN(auto verified, VerifySignedAttest(ak, tpms_attest, tpmt_signature,
                                                        kTpmStAttestQuote, expected_qualifying_data));
  auto& [attest, signature] = verified;
  if (attest.pcr_selection.empty()) return InvalidArgumentError("quote: selects no PCRs");
  // The quote's PCR digest uses the signing scheme's hash.
  AR_ASSIGN_OR_RETURN(const EVP_MD* md, DigestForTpmHash(signature.hash_alg));
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
    return common::OpenSslInternal("quote: digest init");
  }
  for (const PcrBankSelection& bank : attest.pcr_selection) {
    for (uint32_t pcr : bank.pcrs) {
      auto it = pcr_values.find({bank.hash_alg, pcr});
      if (it == pcr_values.end()) {
        return InvalidArgumentError("quote: no value supplied for PCR " + std::string(HashName(bank.hash_alg)) +
                                    ":" + std::to_string(pcr));
      }
      if (it->second.size() != TpmHashSize(bank.hash_alg)) {
        return InvalidArgumentError("quote: PCR value has the wrong size for its bank");
      }
      EVP_DigestUpdate(ctx.get(), it->second.data(), it->second.size());
    }
  }
  Bytes digest(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) != 1) {
    return common::OpenSslInternal("quote: digest final");
  }
  if (!common::ConstantTimeEquals(digest, attest.pcr_digest)) {
    return UnauthenticatedError("quote: PCR values do not match the quoted PCR digest");
  }
  VerifiedQuote out;
  out.selection = attest.pcr_selection;
  out.attest = std::move(attest);
  return out;
}

Result<TpmAttest> VerifyQuoteSignature(const TpmPublic& ak, ByteView tpms_attest, ByteView tpmt_signature,
                                       ByteView expected_qualifying_data) {
  AR_ASSIGN_OR_RETURN(auto verified, VerifySignedAttest(ak, tpms_attest, tpmt_signature, kTpmStAttestQuote,
                                                        expected_qualifying_data));
  return std::move(verified.first);
}

Result<VerifiedCertification> VerifyCertification(const TpmPublic& ak, ByteView tpms_attest,
                                                  ByteView tpmt_signature,
                                                  ByteView expected_qualifying_data,
                                                  const TpmPublic& certified_key) {
  AR_ASSIGN_OR_RETURN(auto verified, VerifySignedAttest(ak, tpms_attest, tpmt_signature,
                                                        kTpmStAttestCertify, expected_qualifying_data));
  TpmAttest& attest = verified.first;
  if (attest.certified_name != certified_key.name()) {
    return UnauthenticatedError("certify: certified name is not the name of the presented key");
  }
  using namespace tpma_object;
  if (!certified_key.HasAttributes(kFixedTpm | kFixedParent | kSensitiveDataOrigin)) {
    return PermissionDeniedError(
        "certify: key is not fixedTPM + fixedParent + sensitiveDataOrigin: it was imported or can "
        "leave the TPM");
  }
  if (!certified_key.HasAttributes(kSign)) {
    return PermissionDeniedError("certify: key is not a signing key");
  }
  return VerifiedCertification{std::move(attest)};
}

}  // namespace agentroot::attestation
