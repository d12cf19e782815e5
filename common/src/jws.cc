#include "agentroot/common/jws.h"

#include <openssl/rsa.h>

#include <algorithm>

namespace agentroot::common {
namespace {

struct CompactParts {
  std::string_view header;
  std::string_view payload;
  std::string_view signature;
};

Result<CompactParts> SplitCompact(std::string_view compact, const JwsLimits& limits) {
  if (compact.size() > limits.max_compact_bytes) {
    return InvalidArgumentError("jws: token of " + std::to_string(compact.size()) +
                                " bytes exceeds the limit");
  }
  std::size_t first = compact.find('.');
  if (first == std::string_view::npos) return InvalidArgumentError("jws: expected 3 parts, got 1");
  std::size_t second = compact.find('.', first + 1);
  if (second == std::string_view::npos) return InvalidArgumentError("jws: expected 3 parts, got 2");
  if (compact.find('.', second + 1) != std::string_view::npos) {
    return InvalidArgumentError("jws: more than 3 parts (JWE or malformed)");
  }
  CompactParts parts{compact.substr(0, first), compact.substr(first + 1, second - first - 1),
                     compact.substr(second + 1)};
  if (parts.header.empty()) return InvalidArgumentError("jws: empty header");
  if (parts.signature.empty()) return InvalidArgumentError("jws: empty signature");
  if (parts.header.size() > limits.max_header_bytes) {
    return InvalidArgumentError("jws: header exceeds the limit");
  }
  return parts;
}

}  // namespace

Result<VerificationKey> VerificationKey::Create(const Jwk& jwk, std::set<JwsAlgorithm> allowed) {
  if (allowed.empty()) return FailedPreconditionError("jws: a key needs at least one allowed alg");
  for (JwsAlgorithm alg : allowed) AR_RETURN_IF_ERROR(CheckAlgorithmMatchesKey(alg, jwk));
  AR_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, jwk.ToPublicKey());
  std::shared_ptr<EVP_PKEY> shared(pkey.release(), EVP_PKEY_free);
  return VerificationKey(jwk, std::move(shared), std::move(allowed));
}

Status VerifySignature(const VerificationKey& key, JwsAlgorithm alg, ByteView signing_input,
                       ByteView signature) {
  if (!key.Allows(alg)) {
    return UnauthenticatedError("jws: alg " + std::string(JwsAlgorithmName(alg)) +
                                " is not allowed for this key");
  }
  AR_RETURN_IF_ERROR(CheckAlgorithmMatchesKey(alg, key.jwk()));
  Bytes der;
  ByteView sig = signature;
  if (alg == JwsAlgorithm::kEs256) {
    auto converted = EcdsaJoseToDer(signature);
    if (!converted.ok()) return UnauthenticatedError("jws: " + converted.status().message());
    der = std::move(converted).value();
    sig = der;
  } else if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key.pkey()))) {
    return UnauthenticatedError("jws: RSA signature length does not match the modulus");
  }
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by md
  if (!md || EVP_DigestVerifyInit(md.get(), &pctx, EVP_sha256(), nullptr,
                                  const_cast<EVP_PKEY*>(key.pkey())) != 1) {
    return OpenSslInternal("jws: verify init");
  }
  if (alg == JwsAlgorithm::kRs256) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return OpenSslInternal("jws: RSA padding");
    }
  } else if (alg == JwsAlgorithm::kPs256) {
    // Exactly the RFC 7518 parameters; a PSS signature with another salt
    // length is not a PS256 signature.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      return OpenSslInternal("jws: PSS parameters");
    }
  }
  int rc = EVP_DigestVerify(md.get(), sig.data(), sig.size(), signing_input.data(),
                            signing_input.size());
  if (rc != 1) {
    ClearOpenSslErrors();  // an invalid signature is an expected outcome
    return UnauthenticatedError("jws: signature does not verify");
  }
  return Status::Ok();
}

Result<std::string> SignJwsCompact(const Json& extra_header, ByteView payload,
                                   const Signer& signer) {
  if (!extra_header.is_object() && !extra_header.is_null()) {
    return InvalidArgumentError("jws: header must be a JSON object");
  }
  Json header = extra_header.is_null() ? Json::object() : extra_header;
  if (header.contains("alg")) return InvalidArgumentError("jws: alg comes from the signer");
  if (header.contains("crit")) return InvalidArgumentError("jws: crit is not supported");
  header["alg"] = JwsAlgorithmName(signer.algorithm());
  if (!header.contains("kid") && !signer.public_jwk().kid().empty()) {
    header["kid"] = signer.public_jwk().kid();
  }
  std::string signing_input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(payload);
  Bytes digest = Sha256(AsBytes(signing_input));
  AR_ASSIGN_OR_RETURN(Bytes signature, signer.SignDigest(digest));
  return signing_input + "." + Base64UrlEncode(signature);
}

Result<VerifiedJws> VerifyJwsCompact(std::string_view compact,
                                     std::span<const VerificationKey> keys,
                                     const JwsLimits& limits) {
  AR_ASSIGN_OR_RETURN(CompactParts parts, SplitCompact(compact, limits));

  auto header_bytes = Base64UrlDecode(parts.header);
  if (!header_bytes.ok()) return header_bytes.status().WithContext("jws header");
  auto header = ParseJsonStrict(ToString(*header_bytes), JsonLimits{limits.max_header_bytes, 8});
  if (!header.ok()) return header.status().WithContext("jws header");
  if (!header->is_object()) return InvalidArgumentError("jws: header is not a JSON object");

  auto alg_name = GetString(*header, "alg");
  if (!alg_name.ok()) return alg_name.status().WithContext("jws header");
  auto alg = ParseJwsAlgorithm(*alg_name);
  if (!alg.ok()) return UnauthenticatedError(alg.status().message());
  if (header->contains("crit")) {
    return InvalidArgumentError("jws: crit names extensions this verifier does not understand");
  }

  // Select the key: by kid when present, else the only key.
  const VerificationKey* key = nullptr;
  std::string kid;
  if (auto it = header->find("kid"); it != header->end()) {
    if (!it->is_string()) return InvalidArgumentError("jws: kid is not a string");
    kid = it->get<std::string>();
    auto match = std::find_if(keys.begin(), keys.end(),
                              [&](const VerificationKey& k) { return k.kid() == kid; });
    if (match == keys.end()) {
      return UnauthenticatedError("jws: no trusted key with kid \"" + kid.substr(0, 64) + "\"");
    }
    key = &*match;
  } else if (keys.size() == 1) {
    key = &keys.front();
  } else if (keys.empty()) {
    return FailedPreconditionError("jws: no trusted keys configured");
  } else {
    return UnauthenticatedError("jws: header has no kid and several keys are trusted");
  }
  // "jku", "x5u", "jwk" and "x5c" are attacker-controlled and deliberately
  // not consulted: only the caller's trusted keys can verify.

  auto signature = Base64UrlDecode(parts.signature);
  if (!signature.ok()) return signature.status().WithContext("jws signature");
  auto payload = Base64UrlDecode(parts.payload);
  if (!payload.ok()) return payload.status().WithContext("jws payload");

  std::string_view signing_input =
      compact.substr(0, parts.header.size() + 1 + parts.payload.size());
  AR_RETURN_IF_ERROR(VerifySignature(*key, *alg, AsBytes(signing_input), *signature));

  return VerifiedJws{std::move(header).value(), std::move(payload).value(), *alg, key->kid()};
}

}  // namespace agentroot::common
