#include "agentroot/common/jws.h"

#include <openssl/rsa.h>

#include <algorithm>

namespace agentroot::common {
namespace {

// One decoded part of a compact JWS as a JSON object; errors name the part.
Result<Json> ParseObjectPart(const Bytes& bytes, const char* part, std::size_t max_bytes,
                             std::size_t max_depth) {
  auto json = ParseJsonStrict(ToString(bytes), JsonLimits{max_bytes, max_depth});
  if (!json.ok()) return json.status().WithContext(std::string("jws ") + part);
  if (!json->is_object()) {
    return InvalidArgumentError(std::string("jws: ") + part + " is not a JSON object");
  }
  return json;
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

Result<UnverifiedJws> ParseJwsCompact(std::string_view compact, JwsPayload payload_kind,
                                      const JwsLimits& limits) {
  if (compact.size() > limits.max_compact_bytes) {
    return InvalidArgumentError("jws: token of " + std::to_string(compact.size()) +
                                " bytes exceeds the limit");
  }
  const std::size_t first = compact.find('.');
  if (first == std::string_view::npos) return InvalidArgumentError("jws: expected 3 parts, got 1");
  const std::size_t second = compact.find('.', first + 1);
  if (second == std::string_view::npos) return InvalidArgumentError("jws: expected 3 parts, got 2");
  if (compact.find('.', second + 1) != std::string_view::npos) {
    return InvalidArgumentError("jws: more than 3 parts (JWE or malformed)");
  }
  const std::string_view header_part = compact.substr(0, first);
  const std::string_view payload_part = compact.substr(first + 1, second - first - 1);
  const std::string_view signature_part = compact.substr(second + 1);
  if (header_part.empty()) return InvalidArgumentError("jws: empty header");
  if (signature_part.empty()) return InvalidArgumentError("jws: empty signature");
  if (header_part.size() > limits.max_header_bytes) {
    return InvalidArgumentError("jws: header exceeds the limit");
  }

  UnverifiedJws out;
  auto header_bytes = Base64UrlDecode(header_part);
  if (!header_bytes.ok()) return header_bytes.status().WithContext("jws header");
  AR_ASSIGN_OR_RETURN(out.header, ParseObjectPart(*header_bytes, "header", limits.max_header_bytes,
                                                  limits.max_header_depth));

  auto payload = Base64UrlDecode(payload_part);
  if (!payload.ok()) return payload.status().WithContext("jws payload");
  out.payload = std::move(payload).value();
  if (payload_kind == JwsPayload::kJsonObject) {
    AR_ASSIGN_OR_RETURN(out.payload_json, ParseObjectPart(out.payload, "payload",
                                                          limits.max_compact_bytes,
                                                          limits.max_payload_depth));
  }

  auto signature = Base64UrlDecode(signature_part);
  if (!signature.ok()) return signature.status().WithContext("jws signature");
  out.signature = std::move(signature).value();
  out.signing_input = compact.substr(0, second);
  return out;
}

Result<VerifiedJws> VerifyJwsCompact(std::string_view compact,
                                     std::span<const VerificationKey> keys,
                                     const JwsLimits& limits) {
  AR_ASSIGN_OR_RETURN(UnverifiedJws jws, ParseJwsCompact(compact, JwsPayload::kBytes, limits));
  return VerifyJwsCompact(std::move(jws), keys);
}

Result<VerifiedJws> VerifyJwsCompact(UnverifiedJws jws, std::span<const VerificationKey> keys) {
  const Json& header = jws.header;
  if (!header.is_object()) return InvalidArgumentError("jws: header is not a JSON object");
  auto alg_name = GetString(header, "alg");
  if (!alg_name.ok()) return alg_name.status().WithContext("jws header");
  auto alg = ParseJwsAlgorithm(*alg_name);
  if (!alg.ok()) return UnauthenticatedError(alg.status().message());
  if (header.contains("crit")) {
    return InvalidArgumentError("jws: crit names extensions this verifier does not understand");
  }

  // Select the key: by kid when present, else the only key.
  const VerificationKey* key = nullptr;
  if (auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) return InvalidArgumentError("jws: kid is not a string");
    const std::string& kid = it->get_ref<const std::string&>();
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

  AR_RETURN_IF_ERROR(VerifySignature(*key, *alg, AsBytes(jws.signing_input), jws.signature));

  return VerifiedJws{std::move(jws.header), std::move(jws.payload), std::move(jws.payload_json),
                     *alg, key->kid()};
}

}  // namespace agentroot::common
