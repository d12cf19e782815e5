#include "agentroot/attestation/dpop.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "agentroot/common/jws.h"
#include "agentroot/common/random.h"

namespace agentroot::attestation {

using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;

namespace {

constexpr std::size_t kMaxJtiLength = 256;
constexpr std::size_t kMaxProofHeaderBytes = 8 * 1024;
constexpr std::size_t kMaxProofJsonDepth = 8;

Status ProofError(std::string_view detail) {
  return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof, detail);
}

bool IsUnreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// RFC 3986 §5.2.4.
std::string RemoveDotSegments(std::string_view input) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  bool trailing_slash = false;
  while (pos <= input.size()) {
    std::size_t next = input.find('/', pos);
    std::string_view segment = input.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    trailing_slash = false;
    if (segment == ".") {
      trailing_slash = true;
    } else if (segment == "..") {
      if (out.size() > 1) out.pop_back();
      trailing_slash = true;
    } else {
      out.emplace_back(segment);
    }
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  std::string result;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i > 0) result += '/';
    result += out[i];
  }
  if (trailing_slash && (result.empty() || result.back() != '/')) result += '/';
  return result;
}

Result<std::string> NormalizePercentEncoding(std::string_view path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) {
        return common::InvalidArgumentError("url: truncated percent-encoding");
      }
      int hi = HexDigit(path[i + 1]);
      int lo = HexDigit(path[i + 2]);
      if (hi < 0 || lo < 0) return common::InvalidArgumentError("url: bad percent-encoding");
      char decoded = static_cast<char>((hi << 4) | lo);
      if (IsUnreserved(decoded)) {
        out += decoded;
      } else {
        static constexpr char kHex[] = "0123456789ABCDEF";
        out += '%';
        out += kHex[hi];
        out += kHex[lo];
      }
      i += 2;
    } else if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return common::InvalidArgumentError("url: control, space or non-ASCII character in path");
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Status OAuthError(StatusCode code, std::string_view error, std::string_view detail) {
  std::string message(error);
  message += ": ";
  message += detail;
  return Status(code, std::move(message));
}

std::string_view OAuthErrorOf(const Status& status) {
  static constexpr std::string_view kKnown[] = {
      oauth_error::kInvalidRequest, oauth_error::kInvalidToken,       oauth_error::kInvalidDpopProof,
      oauth_error::kUseDpopNonce,   oauth_error::kInsufficientScope, oauth_error::kInvalidGrant,
      oauth_error::kInvalidScope,   oauth_error::kInvalidTarget,     oauth_error::kUnauthorizedClient,
      oauth_error::kAccessDenied,   oauth_error::kUnsupportedGrantType};
  std::string_view message = status.message();
  for (std::string_view code : kKnown) {
    if (message.size() > code.size() + 1 && message.substr(0, code.size()) == code &&
        message[code.size()] == ':') {
      return code;
    }
  }
  return oauth_error::kInvalidRequest;
}

Result<std::string> NormalizeHtu(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) {
    return common::InvalidArgumentError("url: not absolute");
  }
  std::string scheme = Lower(url.substr(0, scheme_end));
  if (scheme != "https" && scheme != "http") return common::InvalidArgumentError("url: scheme must be http(s)");
  std::string_view rest = url.substr(scheme_end + 3);
  std::size_t path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  // Query and fragment are not part of htu.
  path = path.substr(0, path.find_first_of("?#"));
  if (authority.empty()) return common::InvalidArgumentError("url: no host");
  if (authority.find('@') != std::string_view::npos) return common::InvalidArgumentError("url: userinfo not allowed");
  std::string_view host = authority;
  std::string_view port;
  if (authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return common::InvalidArgumentError("url: bad IPv6 literal");
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return common::InvalidArgumentError("url: bad authority");
      port = after.substr(1);
    }
  } else if (std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return common::InvalidArgumentError("url: no host");
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f || c == '%') {
      return common::InvalidArgumentError("url: bad character in host");
    }
  }
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return common::InvalidArgumentError("url: bad port");
    }
    int value = std::stoi(std::string(port));
    if (value < 1 || value > 65535) return common::InvalidArgumentError("url: port out of range");
    if ((scheme == "https" && value == 443) || (scheme == "http" && value == 80)) port = {};
  }
  AR_ASSIGN_OR_RETURN(std::string normalized_path, NormalizePercentEncoding(path));
  normalized_path = RemoveDotSegments(normalized_path);
  if (normalized_path.empty() || normalized_path.front() != '/') normalized_path.insert(0, "/");
  std::string out = scheme + "://" + Lower(host);
  if (!port.empty()) {
    out += ':';
    out += std::to_string(std::stoi(std::string(port)));  // drops leading zeros
  }
  out += normalized_path;
  return out;
}

Status InMemoryReplayCache::CheckAndRecord(std::string_view id, int64_t expires_at) {
  std::lock_guard<std::mutex> lock(mu_);
  PurgeExpiredLocked(clock_.NowUnixSeconds());
  if (entries_.find(id) != entries_.end()) return common::AlreadyExistsError("replay: identifier already used");
  if (entries_.size() >= capacity_) {
    return common::ResourceExhaustedError("replay: cache full; refusing rather than forgetting");
  }
  entries_.emplace(std::string(id), expires_at);
  by_expiry_.emplace(expires_at, std::string(id));
  return Status::Ok();
}

std::size_t InMemoryReplayCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void InMemoryReplayCache::PurgeExpiredLocked(int64_t now) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now) {
    entries_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

std::string AccessTokenHash(std::string_view access_token) {
  return common::Base64UrlEncode(common::Sha256(common::AsBytes(access_token)));
}

Result<common::UnverifiedJws> ParseDpopProof(std::string_view proof, const DpopRequirements& req) {
  if (proof.empty()) return ProofError("missing DPoP proof");
  if (proof.size() > req.max_proof_bytes) return ProofError("proof too large");
  common::JwsLimits limits;
  limits.max_compact_bytes = req.max_proof_bytes;
  limits.max_header_bytes = kMaxProofHeaderBytes;
  limits.max_header_depth = kMaxProofJsonDepth;
  limits.max_payload_depth = kMaxProofJsonDepth;
  auto parsed = common::ParseJwsCompact(proof, common::JwsPayload::kJsonObject, limits);
  if (!parsed.ok()) return ProofError(parsed.status().message());
  return parsed;
}

Result<VerifiedDpopProof> VerifyDpopProof(std::string_view proof, const DpopRequirements& req,
                                          ReplayCache* replay) {
  AR_ASSIGN_OR_RETURN(common::UnverifiedJws parsed, ParseDpopProof(proof, req));
  return VerifyDpopProof(std::move(parsed), req, replay);
}

Result<VerifiedDpopProof> VerifyDpopProof(common::UnverifiedJws proof, const DpopRequirements& req,
                                          ReplayCache* replay) {
  const Json& header = proof.header;
  auto typ = header.find("typ");
  if (typ == header.end() || !typ->is_string() || typ->get_ref<const std::string&>() != "dpop+jwt") {
    return ProofError("typ must be dpop+jwt");
  }
  if (header.contains("crit")) return ProofError("crit is not supported");
  auto alg_name = header.find("alg");
  if (alg_name == header.end() || !alg_name->is_string()) return ProofError("alg missing");
  auto alg = common::ParseJwsAlgorithm(alg_name->get_ref<const std::string&>());
  if (!alg.ok() || req.allowed_algorithms.count(*alg) == 0) return ProofError("alg not allowed");
  auto jwk_json = header.find("jwk");
  if (jwk_json == header.end()) return ProofError("jwk missing from the header");
  auto jwk = common::Jwk::FromJson(*jwk_json);
  if (!jwk.ok()) return ProofError("jwk rejected: " + jwk.status().message());
  auto key = common::VerificationKey::Create(*jwk, {*alg});
  if (!key.ok()) return ProofError("alg does not fit the jwk");
  if (!common::VerifySignature(*key, *alg, common::AsBytes(proof.signing_input), proof.signature).ok()) {
    return ProofError("signature does not verify");
  }

  const Json& claims = proof.payload_json;
  if (!claims.is_object()) return ProofError("payload is not a JSON object");
  auto jti = claims.find("jti");
  if (jti == claims.end() || !jti->is_string() || jti->get<std::string>().empty() ||
      jti->get<std::string>().size() > kMaxJtiLength) {
    return ProofError("jti missing or invalid");
  }
  auto htm = claims.find("htm");
  if (htm == claims.end() || !htm->is_string() || htm->get<std::string>() != req.method) {
    return ProofError("htm does not match the request method");
  }
  auto htu = claims.find("htu");
  if (htu == claims.end() || !htu->is_string()) return ProofError("htu missing");
  auto proof_url = NormalizeHtu(htu->get<std::string>());
  auto request_url = NormalizeHtu(req.url);
  if (!request_url.ok()) return request_url.status().WithContext("request url");
  if (!proof_url.ok() || *proof_url != *request_url) return ProofError("htu does not match the request URL");
  auto iat = claims.find("iat");
  if (iat == claims.end() || !iat->is_number_integer()) return ProofError("iat missing or not an integer");
  const common::Clock& clock = req.clock != nullptr ? *req.clock : common::Clock::System();
  const int64_t now = clock.NowUnixSeconds();
  const int64_t issued = iat->get<int64_t>();
  if (issued < now - req.max_age.count()) return ProofError("proof is too old (iat)");
  if (issued > now + req.max_future.count()) return ProofError("proof is from the future (iat)");
  if (req.access_token) {
    auto ath = claims.find("ath");
    if (ath == claims.end() || !ath->is_string()) return ProofError("ath missing");
    if (!common::ConstantTimeEquals(common::AsBytes(ath->get<std::string>()),
                                    common::AsBytes(AccessTokenHash(*req.access_token)))) {
      return ProofError("ath does not match the access token");
    }
  }
  if (req.nonce) {
    auto nonce = claims.find("nonce");
    if (nonce == claims.end() || !nonce->is_string() || nonce->get<std::string>() != *req.nonce) {
      return OAuthError(StatusCode::kUnauthenticated, oauth_error::kUseDpopNonce, "a fresh server nonce is required");
    }
  }
  VerifiedDpopProof out{*jwk, jwk->Thumbprint(), jti->get<std::string>(), issued, *alg};
  if (replay != nullptr) {
    // Scoped by key so one client cannot burn another's identifiers.
    Status recorded = replay->CheckAndRecord(out.jkt + ":" + out.jti, issued + req.max_age.count() + 1);
    if (recorded.code() == StatusCode::kAlreadyExists) return ProofError("proof replayed (jti already used)");
    if (!recorded.ok()) return ProofError("replay check unavailable: " + recorded.message());
  }
  return out;
}

Result<std::string> CreateDpopProof(const common::Signer& signer, std::string_view method, std::string_view url,
                                    int64_t iat, std::optional<std::string_view> access_token,
                                    std::optional<std::string_view> nonce) {
  AR_ASSIGN_OR_RETURN(std::string htu, NormalizeHtu(url));
  AR_ASSIGN_OR_RETURN(std::string jti, common::RandomToken(16));
  Json jwk = signer.public_jwk().ToJson();
  jwk.erase("kid");
  jwk.erase("alg");
  jwk.erase("use");
  Json header = {{"typ", "dpop+jwt"}, {"jwk", jwk}};
  Json claims = {{"jti", jti}, {"htm", std::string(method)}, {"htu", htu}, {"iat", iat}};
  if (access_token) claims["ath"] = AccessTokenHash(*access_token);
  if (nonce) claims["nonce"] = std::string(*nonce);
  return common::SignJwsCompact(header, common::AsBytes(claims.dump()), signer);
}

}  // namespace agentroot::attestation
