#include "agentroot/common/jwk.h"

#include <openssl/core_names.h>

#include <array>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "agentroot/common/signer.h"  // Sha256

namespace agentroot::common {
namespace {

constexpr std::size_t kP256CoordinateSize = 32;
constexpr int kMaxRsaBits = 16384;
constexpr std::array<const char*, 8> kPrivateMembers = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

Result<Bytes> DecodeMember(const Json& json, const char* name) {
  AR_ASSIGN_OR_RETURN(std::string text, GetString(json, name));
  auto bytes = Base64UrlDecode(text);
  if (!bytes.ok()) return bytes.status().WithContext(std::string("jwk: member \"") + name + "\"");
  return bytes;
}

Result<std::string> OptionalString(const Json& json, const char* name) {
  auto it = json.find(name);
  if (it == json.end()) return std::string();
  if (!it->is_string()) {
    return InvalidArgumentError(std::string("jwk: member \"") + name + "\" is not a string");
  }
  return it->get<std::string>();
}

Result<Bytes> BignumParam(const EVP_PKEY* key, const char* name, int pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return OpenSslInternal(std::string("reading key parameter ") + name);
  }
  BignumPtr bn(raw);
  int size = pad_to > 0 ? pad_to : BN_num_bytes(bn.get());
  Bytes out(static_cast<std::size_t>(size));
  if (BN_bn2binpad(bn.get(), out.data(), size) != size) {
    return OpenSslInternal(std::string("encoding key parameter ") + name);
  }
  return out;
}

// Building an OpenSSL EC key from its coordinates recreates the curve group
// each time (~30% of an ECDSA verify in OpenSSL 3.0). Clients present the
// same keys again and again (a DPoP key signs every request), so validated
// keys are kept in a small LRU keyed by the complete public key material,
// with their thumbprint (a SHA-256 a DPoP proof would otherwise pay on every
// request). Entries are immutable: a hit returns exactly the key and
// thumbprint the coordinates denote.
class BuiltKeyCache {
 public:
  static BuiltKeyCache& Instance() {
    static BuiltKeyCache* cache = new BuiltKeyCache();  // never destroyed: used during exit
    return *cache;
  }

  // A built key and the RFC 7638 thumbprint of the same key material.
  struct Entry {
    std::shared_ptr<EVP_PKEY> key;
    std::string thumbprint;
  };

  std::optional<Entry> Find(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }

  void Insert(const std::string& id, Entry entry) {
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.count(id) != 0) return;
    order_.emplace_front(id, std::move(entry));
    index_[id] = order_.begin();
    if (order_.size() > kCapacity) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

 private:
  static constexpr std::size_t kCapacity = 4096;
  std::mutex mu_;
  std::list<std::pair<std::string, Entry>> order_;
  std::unordered_map<std::string, decltype(order_)::iterator> index_;
};

}  // namespace

Result<Jwk> Jwk::FromJson(const Json& json) {
  if (!json.is_object()) return InvalidArgumentError("jwk: not a JSON object");
  for (const char* member : kPrivateMembers) {
    if (json.contains(member)) {
      return InvalidArgumentError(std::string("jwk: private member \"") + member +
                                  "\" present; only public keys are accepted");
    }
  }
  AR_ASSIGN_OR_RETURN(std::string kty, GetString(json, "kty"));
  Result<Jwk> parsed = InvalidArgumentError("jwk: unsupported kty \"" + kty.substr(0, 16) + "\"");
  if (kty == "EC") {
    AR_ASSIGN_OR_RETURN(std::string crv, GetString(json, "crv"));
    if (crv != "P-256") return InvalidArgumentError("jwk: unsupported crv \"" + crv.substr(0, 16) + "\"");
    AR_ASSIGN_OR_RETURN(Bytes x, DecodeMember(json, "x"));
    AR_ASSIGN_OR_RETURN(Bytes y, DecodeMember(json, "y"));
    // RFC 7518 §6.2.1.2: coordinates are exactly the field size.
    if (x.size() != kP256CoordinateSize || y.size() != kP256CoordinateSize) {
      return InvalidArgumentError("jwk: P-256 coordinates must be 32 bytes each");
    }
    parsed = Jwk(JwkKeyType::kEcP256, std::move(x), std::move(y));
  } else if (kty == "RSA") {
    AR_ASSIGN_OR_RETURN(Bytes n, DecodeMember(json, "n"));
    AR_ASSIGN_OR_RETURN(Bytes e, DecodeMember(json, "e"));
    // RFC 7518 §6.3.1: minimal encodings, no leading zero octets.
    if (n.empty() || n.front() == 0 || e.empty() || e.front() == 0) {
      return InvalidArgumentError("jwk: RSA n and e must be minimally encoded and non-zero");
    }
    if (e.size() > 8 || (e.back() & 1) == 0 || (e.size() == 1 && e[0] < 3)) {
      return InvalidArgumentError("jwk: RSA public exponent must be odd, at least 3, at most 64 bits");
    }
    parsed = Jwk(JwkKeyType::kRsa, std::move(n), std::move(e));
    int bits = parsed->bits();
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      return InvalidArgumentError("jwk: RSA modulus of " + std::to_string(bits) +
                                  " bits is outside [2048, 16384]");
    }
  }
  if (!parsed.ok()) return parsed.status();
  AR_ASSIGN_OR_RETURN(parsed->kid_, OptionalString(json, "kid"));
  AR_ASSIGN_OR_RETURN(parsed->alg_, OptionalString(json, "alg"));
  AR_ASSIGN_OR_RETURN(parsed->use_, OptionalString(json, "use"));
  // Reject keys OpenSSL will not accept (an EC point off the curve, say) now,
  // not at first use.
  AR_RETURN_IF_ERROR(parsed->BuildKey());
  return parsed;
}

Result<Jwk> Jwk::Parse(std::string_view text) {
  AR_ASSIGN_OR_RETURN(Json json, ParseJsonStrict(text));
  return FromJson(json);
}

Result<Jwk> Jwk::FromPublicKey(const EVP_PKEY* key) {
  if (key == nullptr) return InvalidArgumentError("jwk: null key");
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    std::size_t group_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &group_len) != 1) {
      return OpenSslInternal("jwk: reading EC group");
    }
    if (std::string_view(group, group_len) != "prime256v1") {
      return InvalidArgumentError("jwk: unsupported EC group " + std::string(group, group_len));
    }
    AR_ASSIGN_OR_RETURN(Bytes x, BignumParam(key, OSSL_PKEY_PARAM_EC_PUB_X, kP256CoordinateSize));
    AR_ASSIGN_OR_RETURN(Bytes y, BignumParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, kP256CoordinateSize));
    Jwk jwk(JwkKeyType::kEcP256, std::move(x), std::move(y));
    AR_RETURN_IF_ERROR(jwk.BuildKey());
    return jwk;
  }
  if (id == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(key) < kMinRsaBits) {
      return InvalidArgumentError("jwk: RSA key shorter than 2048 bits");
    }
    AR_ASSIGN_OR_RETURN(Bytes n, BignumParam(key, OSSL_PKEY_PARAM_RSA_N, 0));
    AR_ASSIGN_OR_RETURN(Bytes e, BignumParam(key, OSSL_PKEY_PARAM_RSA_E, 0));
    Jwk jwk(JwkKeyType::kRsa, std::move(n), std::move(e));
    AR_RETURN_IF_ERROR(jwk.BuildKey());
    return jwk;
  }
  return InvalidArgumentError("jwk: unsupported key type");
}

Result<EvpPkeyPtr> Jwk::ToPublicKey() const {
  if (!pkey_ || EVP_PKEY_up_ref(pkey_.get()) != 1) return InternalError("jwk: key not built");
  return EvpPkeyPtr(pkey_.get());
}

Status Jwk::BuildKey() {
  std::string cache_id(1, type_ == JwkKeyType::kEcP256 ? 'E' : 'R');
  cache_id += std::to_string(a_.size());
  cache_id += ':';
  cache_id.append(a_.begin(), a_.end());
  cache_id.append(b_.begin(), b_.end());
  if (auto cached = BuiltKeyCache::Instance().Find(cache_id)) {
    pkey_ = std::move(cached->key);
    thumbprint_ = std::move(cached->thumbprint);
    return Status::Ok();
  }
  Result<EvpPkeyPtr> built = InternalError("jwk: no key type");
  if (type_ == JwkKeyType::kEcP256) {
    Bytes point;
    point.reserve(1 + a_.size() + b_.size());
    point.push_back(0x04);  // uncompressed SEC1 point
    point.insert(point.end(), a_.begin(), a_.end());
    point.insert(point.end(), b_.begin(), b_.end());
    built = EcPublicKeyFromPoint("prime256v1", point);
  } else {
    built = RsaPublicKeyFromParts(a_, b_);
  }
  if (!built.ok()) return built.status().WithContext("jwk");
  EvpPkeyPtr key = std::move(built).value();
  pkey_ = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
  thumbprint_ = ComputeThumbprint();
  BuiltKeyCache::Instance().Insert(cache_id, {pkey_, thumbprint_});
  return Status::Ok();
}

Json Jwk::ToJson() const {
  Json json = Json::object();
  if (type_ == JwkKeyType::kEcP256) {
    json["kty"] = "EC";
    json["crv"] = "P-256";
    json["x"] = Base64UrlEncode(a_);
    json["y"] = Base64UrlEncode(b_);
  } else {
    json["kty"] = "RSA";
    json["n"] = Base64UrlEncode(a_);
    json["e"] = Base64UrlEncode(b_);
  }
  if (!kid_.empty()) json["kid"] = kid_;
  if (!alg_.empty()) json["alg"] = alg_;
  if (!use_.empty()) json["use"] = use_;
  return json;
}

std::string Jwk::ComputeThumbprint() const {
  // RFC 7638 §3.2: required members only, lexicographic order, no
  // whitespace. Built by hand so the byte string is exactly specified.
  std::string canonical;
  if (type_ == JwkKeyType::kEcP256) {
    canonical = R"({"crv":"P-256","kty":"EC","x":")" + Base64UrlEncode(a_) + R"(","y":")" +
                Base64UrlEncode(b_) + R"("})";
  } else {
    canonical = R"({"e":")" + Base64UrlEncode(b_) + R"(","kty":"RSA","n":")" +
                Base64UrlEncode(a_) + R"("})";
  }
  return Base64UrlEncode(Sha256(AsBytes(canonical)));
}

int Jwk::bits() const {
  if (type_ == JwkKeyType::kEcP256) return 256;
  BignumPtr n(BN_bin2bn(a_.data(), static_cast<int>(a_.size()), nullptr));
  return n ? BN_num_bits(n.get()) : 0;
}

Jwk Jwk::WithKid(std::string kid) const {
  Jwk copy = *this;
  copy.kid_ = std::move(kid);
  return copy;
}

}  // namespace agentroot::common
