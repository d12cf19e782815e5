// libFuzzer entry points for every parser that takes untrusted input
// (THREATS.md #11). One source, one binary per target: AGENTROOT_FUZZ_TARGET
// selects the body at compile time.
//
// Besides "no crash, no sanitizer report", several targets assert a property
// that must hold for every input: accepted encodings are canonical (decode
// then encode gives back the input).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/tpm_evidence.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/jws.h"

namespace {

using agentroot::common::ByteView;

[[maybe_unused]] void Require(bool property) {
  if (!property) std::abort();
}

[[maybe_unused]] const std::vector<agentroot::common::VerificationKey>& Keys() {
  // RFC 7515 A.3's public key.
  static const auto* keys = [] {
    auto jwk = agentroot::common::Jwk::Parse(
        R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
    auto key = agentroot::common::VerificationKey::Create(*jwk, {agentroot::common::JwsAlgorithm::kEs256});
    return new std::vector<agentroot::common::VerificationKey>{*key};
  }();
  return *keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView input(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)input;
  (void)text;
#if AGENTROOT_FUZZ_TARGET == 1  // tpm_public
  auto parsed = agentroot::attestation::TpmPublic::Parse(input);
  if (parsed.ok()) {
    Require(parsed->marshalled().size() == size);
    (void)parsed->ToOpenSslKey();
    (void)agentroot::attestation::CheckAttestationKey(*parsed);
  }
#elif AGENTROOT_FUZZ_TARGET == 2  // tpms_attest
  auto parsed = agentroot::attestation::ParseTpmsAttest(input);
  if (parsed.ok()) (void)agentroot::attestation::PcrSelectionToString(parsed->pcr_selection);
#elif AGENTROOT_FUZZ_TARGET == 3  // tpmt_signature
  (void)agentroot::attestation::ParseTpmtSignature(input);
#elif AGENTROOT_FUZZ_TARGET == 4  // jws
  (void)agentroot::common::VerifyJwsCompact(text, Keys());
#elif AGENTROOT_FUZZ_TARGET == 5  // jwk
  auto jwk = agentroot::common::Jwk::Parse(text);
  if (jwk.ok()) {
    auto again = agentroot::common::Jwk::Parse(jwk->ToJson().dump());
    Require(again.ok() && again->SameKey(*jwk) && again->Thumbprint() == jwk->Thumbprint());
  }
#elif AGENTROOT_FUZZ_TARGET == 6  // json
  (void)agentroot::common::ParseJsonStrict(text);
#elif AGENTROOT_FUZZ_TARGET == 7  // base64url
  auto decoded = agentroot::common::Base64UrlDecode(text);
  if (decoded.ok()) Require(agentroot::common::Base64UrlEncode(*decoded) == text);
  auto hex = agentroot::common::HexDecode(text);
  if (hex.ok()) Require(hex->size() * 2 == size);
#elif AGENTROOT_FUZZ_TARGET == 8  // certificate
  (void)agentroot::attestation::ParseCertificate(input);
#elif AGENTROOT_FUZZ_TARGET == 9  // jws_parse: the one unverified compact-JWS parser
  using agentroot::common::JwsPayload;
  auto as_bytes = agentroot::common::ParseJwsCompact(text);
  auto as_json = agentroot::common::ParseJwsCompact(text, JwsPayload::kJsonObject);
  // Parsing the payload as JSON only ever narrows what is accepted.
  if (as_json.ok()) Require(as_bytes.ok() && as_json->payload == as_bytes->payload);
  if (as_bytes.ok()) {
    const std::string_view signing_input = as_bytes->signing_input;
    // Three canonical parts: the signing input is a prefix of the input up
    // to the second dot, and the signature re-encodes to the rest.
    Require(signing_input.data() == text.data() && signing_input.size() < size &&
            text[signing_input.size()] == '.' && as_bytes->header.is_object());
    Require(agentroot::common::Base64UrlEncode(as_bytes->signature) ==
            text.substr(signing_input.size() + 1));
    Require(agentroot::common::Base64UrlEncode(as_bytes->payload) ==
            signing_input.substr(signing_input.find('.') + 1));
    (void)agentroot::common::VerifyJwsCompact(std::move(as_bytes).value(), Keys());
  }
#else
#error "unknown AGENTROOT_FUZZ_TARGET"
#endif
  return 0;
}
