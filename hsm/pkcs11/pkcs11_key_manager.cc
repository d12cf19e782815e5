#include "agentroot/hsm/pkcs11/pkcs11_key_manager.h"

#include <dlfcn.h>
#include <openssl/core_names.h>
#include <p11-kit-1/p11-kit/pkcs11.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "agentroot/common/jws.h"
#include "agentroot/common/openssl.h"
#include "pkcs11_error.h"

namespace agentroot::hsm {
namespace {

using common::EvpPkeyPtr;
using common::JwsAlgorithm;
using common::SecretBytes;
using pkcs11::CkrError;

// DER OID 1.2.840.10045.3.1.7 (prime256v1), the CKA_EC_PARAMS of P-256.
constexpr uint8_t kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
constexpr uint8_t kSha256DigestInfo[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                         0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                         0x01, 0x05, 0x00, 0x04, 0x20};
constexpr uint8_t kRsaPublicExponent[] = {0x01, 0x00, 0x01};
constexpr CK_ULONG kRsaBits = 2048;
constexpr std::size_t kMaxIdleSessions = 8;
constexpr std::size_t kTokenLabelSize = 32;

CK_BBOOL kTrue = CK_TRUE;
CK_BBOOL kFalse = CK_FALSE;

CK_MECHANISM_TYPE MechanismFor(JwsAlgorithm alg) {
  switch (alg) {
    case JwsAlgorithm::kEs256:
      return CKM_ECDSA;
    case JwsAlgorithm::kRs256:
      return CKM_RSA_PKCS;
    case JwsAlgorithm::kPs256:
      return CKM_RSA_PKCS_PSS;
  }
  return CKM_VENDOR_DEFINED;
}

template <typename T>
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, T* value, std::size_t size = sizeof(T)) {
  return CK_ATTRIBUTE{type, const_cast<void*>(static_cast<const void*>(value)), size};
}
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, std::string_view text) {
  return CK_ATTRIBUTE{type, const_cast<char*>(text.data()), text.size()};
}

using GetFunctionListFn = CK_RV (*)(CK_FUNCTION_LIST_PTR*);

// ---------------------------------------------------------------------------
// Module: one loaded and initialised PKCS#11 library per path per process.

class Module {
 public:
  static Result<std::shared_ptr<Module>> Open(const std::string& path);

  CK_FUNCTION_LIST* f() const { return fn_; }
  const std::string& path() const { return path_; }

  // Guards the token registry of this module (see Token::Open).
  std::recursive_mutex tokens_mu;
  std::map<CK_SLOT_ID, std::weak_ptr<Pkcs11KeyManager::Token>> tokens;

 private:
  Module(std::string path, CK_FUNCTION_LIST* fn, bool finalize)
      : path_(std::move(path)), fn_(fn), finalize_(finalize) {}
  static void Destroy(Module* module);

  std::string path_;
  CK_FUNCTION_LIST* fn_;
  bool finalize_;  // false when someone else in the process initialised it
};

std::mutex& ModuleRegistryMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}
// An entry whose weak_ptr has expired but is still present is being
// finalised; Open waits for Destroy to remove it.
std::map<std::string, std::weak_ptr<Module>>& ModuleRegistry() {
  static auto* registry = new std::map<std::string, std::weak_ptr<Module>>();
  return *registry;
}

void Module::Destroy(Module* module) {
  std::lock_guard lock(ModuleRegistryMutex());
  if (module->finalize_) module->fn_->C_Finalize(nullptr);
  // The library stays mapped (RTLD_NODELETE): modules commonly register
  // atexit handlers and thread-locals that must not outlive their code.
  ModuleRegistry().erase(module->path_);
  delete module;
}

Result<std::shared_ptr<Module>> Module::Open(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return common::InvalidArgumentError("pkcs11: module path must be absolute, got \"" + path + "\"");
  }
  for (;;) {
    std::unique_lock lock(ModuleRegistryMutex());
    auto it = ModuleRegistry().find(path);
    if (it != ModuleRegistry().end()) {
      if (auto module = it->second.lock()) return module;
      // Being finalised by another thread: wait until it is gone.
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (access(path.c_str(), R_OK) != 0) {
      return common::NotFoundError("pkcs11: module not found: " + path + ": " + std::strerror(errno));
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == nullptr) {
      const char* err = dlerror();
      return common::UnavailableError("pkcs11: cannot load module " + path + ": " +
                                      (err ? err : "dlopen failed"));
    }
    auto get_list = reinterpret_cast<GetFunctionListFn>(dlsym(handle, "C_GetFunctionList"));
    if (get_list == nullptr) {
      dlclose(handle);
      return common::UnavailableError("pkcs11: " + path + " has no C_GetFunctionList; not a PKCS#11 module");
    }
    CK_FUNCTION_LIST_PTR fn = nullptr;
    CK_RV rv = get_list(&fn);
    if (rv != CKR_OK || fn == nullptr) {
      dlclose(handle);
      return common::UnavailableError(CkrError("pkcs11: C_GetFunctionList of " + path, rv).message());
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    rv = fn->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      dlclose(handle);
      return common::UnavailableError(CkrError("pkcs11: C_Initialize of " + path, rv).message());
    }
    dlclose(handle);  // RTLD_NODELETE keeps it mapped; drops our reference count
    std::shared_ptr<Module> module(new Module(path, fn, rv == CKR_OK), &Module::Destroy);
    ModuleRegistry()[path] = module;
    return module;
  }
}

std::string TrimLabel(const CK_UTF8CHAR* label) {
  std::string text(reinterpret_cast<const char*>(label), kTokenLabelSize);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------
// Token: the logged-in state and session pool of one slot, shared by every
// manager and key of this process that uses that slot.

class Pkcs11KeyManager::Token {
 public:
  // A session taken from the pool; returns it (or closes it when broken).
  class Session {
   public:
    Session(Token* token, CK_SESSION_HANDLE handle) : token_(token), handle_(handle) {}
    Session(Session&& other) noexcept
        : token_(std::exchange(other.token_, nullptr)), handle_(other.handle_), broken_(other.broken_) {}
    Session& operator=(Session&&) = delete;
    Session(const Session&) = delete;
    ~Session() {
      if (token_) token_->Release(handle_, broken_);
    }
    CK_SESSION_HANDLE get() const { return handle_; }
    // Passes `rv` through, remembering whether the session is still usable.
    CK_RV Check(CK_RV rv) {
      if (pkcs11::SessionIsBroken(rv)) broken_ = true;
      return rv;
    }

   private:
    Token* token_;
    CK_SESSION_HANDLE handle_;
    bool broken_ = false;
  };

  static Result<std::shared_ptr<Token>> Open(Pkcs11Config config);

  CK_FUNCTION_LIST* f() const { return module_->f(); }
  CK_SLOT_ID slot() const { return slot_; }
  const std::string& label() const { return label_; }

  Result<Session> Acquire();

  // Serialises the check-then-act sequences of Generate and Delete.
  std::mutex& write_mu() { return write_mu_; }

  // A flag that becomes true once `handle` is destroyed through this token.
  std::shared_ptr<std::atomic<bool>> TrackKey(CK_OBJECT_HANDLE handle);
  void MarkDestroyed(CK_OBJECT_HANDLE handle);

 private:
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, std::string label, SecretBytes pin,
        CK_SESSION_HANDLE login_session)
      : module_(std::move(module)),
        slot_(slot),
        label_(std::move(label)),
        pin_(std::move(pin)),
        login_session_(login_session) {}
  static void Destroy(Token* token);
  void Release(CK_SESSION_HANDLE handle, bool broken);

  std::shared_ptr<Module> module_;
  CK_SLOT_ID slot_;
  std::string label_;
  SecretBytes pin_;
  // Held open for the token's lifetime: PKCS#11 login state lasts as long as
  // the application has a session with the token.
  CK_SESSION_HANDLE login_session_;

  std::mutex pool_mu_;
  std::vector<CK_SESSION_HANDLE> idle_;
  std::mutex write_mu_;
  std::mutex tracked_mu_;
  std::map<CK_OBJECT_HANDLE, std::vector<std::weak_ptr<std::atomic<bool>>>> tracked_;
};

using Token = Pkcs11KeyManager::Token;
using Session = Token::Session;

void Token::Destroy(Token* token) {
  std::shared_ptr<Module> module = token->module_;  // outlives the token's cleanup
  {
    std::lock_guard lock(module->tokens_mu);
    CK_FUNCTION_LIST* f = module->f();
    for (CK_SESSION_HANDLE h : token->idle_) f->C_CloseSession(h);
    f->C_Logout(token->login_session_);
    f->C_CloseSession(token->login_session_);
    module->tokens.erase(token->slot_);
    delete token;
  }
}

Result<std::shared_ptr<Token>> Token::Open(Pkcs11Config config) {
  if (config.token_label.empty() || config.token_label.size() > kTokenLabelSize) {
    return common::InvalidArgumentError("pkcs11: token label must be 1-32 bytes");
  }
  if (config.pin.empty()) return common::InvalidArgumentError("pkcs11: empty PIN");
  AR_ASSIGN_OR_RETURN(std::shared_ptr<Module> module, Module::Open(config.module_path));
  CK_FUNCTION_LIST* f = module->f();

  CK_ULONG count = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return CkrError("pkcs11: C_GetSlotList", rv);
  std::vector<CK_SLOT_ID> slots(count);
  rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return CkrError("pkcs11: C_GetSlotList", rv);
  slots.resize(count);
  std::vector<CK_SLOT_ID> matches;
  std::string seen;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    const std::string label = TrimLabel(info.label);
    if (label == config.token_label && (info.flags & CKF_TOKEN_INITIALIZED)) matches.push_back(slot);
    if (!label.empty()) seen += (seen.empty() ? "" : ", ") + ("\"" + label + "\"");
  }
  if (matches.empty()) {
    return common::NotFoundError("pkcs11: no token labelled \"" + config.token_label + "\" in " +
                                 module->path() + " (tokens: " + (seen.empty() ? "none" : seen) + ")");
  }
  if (matches.size() > 1) {
    return common::FailedPreconditionError("pkcs11: several tokens labelled \"" +
                                           config.token_label + "\"");
  }
  const CK_SLOT_ID slot = matches.front();

  for (;;) {
    std::unique_lock lock(module->tokens_mu);
    auto it = module->tokens.find(slot);
    if (it != module->tokens.end()) {
      if (auto token = it->second.lock()) {
        if (!token->pin_.Equals(config.pin)) {
          return common::PermissionDeniedError(
              "pkcs11: token \"" + config.token_label +
              "\" is already logged in by this process with a different PIN");
        }
        return token;
      }
      lock.unlock();  // being closed by another thread
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session);
    if (rv != CKR_OK) return CkrError("pkcs11: C_OpenSession", rv);
    rv = f->C_Login(session, CKU_USER, const_cast<CK_UTF8CHAR*>(config.pin.Reveal().data()),
                    config.pin.size());
    if (rv == CKR_USER_ALREADY_LOGGED_IN) {
      f->C_CloseSession(session);
      return common::FailedPreconditionError(
          "pkcs11: token \"" + config.token_label +
          "\" is already logged in by other code in this process; cannot check the PIN");
    }
    if (rv != CKR_OK) {
      f->C_CloseSession(session);
      return CkrError("pkcs11: C_Login to token \"" + config.token_label + "\"", rv);
    }
    std::shared_ptr<Token> token(
        new Token(module, slot, config.token_label, std::move(config.pin), session), &Token::Destroy);
    module->tokens[slot] = token;
    return token;
  }
}

Result<Session> Token::Acquire() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      CK_SESSION_HANDLE h = idle_.back();
      idle_.pop_back();
      return Session(this, h);
    }
  }
  CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
  if (rv != CKR_OK) return CkrError("pkcs11: C_OpenSession", rv);
  return Session(this, h);
}

void Token::Release(CK_SESSION_HANDLE handle, bool broken) {
  {
    std::lock_guard lock(pool_mu_);
    if (!broken && idle_.size() < kMaxIdleSessions) {
      idle_.push_back(handle);
      return;
    }
  }
  f()->C_CloseSession(handle);
}

std::shared_ptr<std::atomic<bool>> Token::TrackKey(CK_OBJECT_HANDLE handle) {
  auto flag = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(tracked_mu_);
  auto& flags = tracked_[handle];
  std::erase_if(flags, [](const auto& w) { return w.expired(); });
  flags.push_back(flag);
  return flag;
}

void Token::MarkDestroyed(CK_OBJECT_HANDLE handle) {
  std::lock_guard lock(tracked_mu_);
  auto it = tracked_.find(handle);
  if (it == tracked_.end()) return;
  for (const auto& w : it->second) {
    if (auto flag = w.lock()) *flag = true;
  }
  tracked_.erase(it);
}

namespace {

// ---------------------------------------------------------------------------
// Object helpers.

Result<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_FUNCTION_LIST* f, Session& s,
                                                  std::vector<CK_ATTRIBUTE> tmpl) {
  CK_RV rv = s.Check(f->C_FindObjectsInit(s.get(), tmpl.data(), tmpl.size()));
  if (rv != CKR_OK) return CkrError("pkcs11: C_FindObjectsInit", rv);
  std::vector<CK_OBJECT_HANDLE> found;
  CK_OBJECT_HANDLE batch[32];
  for (;;) {
    CK_ULONG n = 0;
    rv = s.Check(f->C_FindObjects(s.get(), batch, 32, &n));
    if (rv != CKR_OK) {
      f->C_FindObjectsFinal(s.get());
      return CkrError("pkcs11: C_FindObjects", rv);
    }
    if (n == 0) break;
    found.insert(found.end(), batch, batch + n);
  }
  rv = s.Check(f->C_FindObjectsFinal(s.get()));
  if (rv != CKR_OK) return CkrError("pkcs11: C_FindObjectsFinal", rv);
  return found;
}

Result<std::vector<CK_OBJECT_HANDLE>> FindKeys(CK_FUNCTION_LIST* f, Session& s,
                                               CK_OBJECT_CLASS cls, std::string_view id) {
  std::vector<CK_ATTRIBUTE> tmpl = {Attr(CKA_CLASS, &cls), Attr(CKA_TOKEN, &kTrue)};
  if (!id.empty()) tmpl.push_back(Attr(CKA_LABEL, id));
  return FindObjects(f, s, std::move(tmpl));
}

// NOT_FOUND when the object has no such attribute.
Result<Bytes> GetAttribute(CK_FUNCTION_LIST* f, Session& s, CK_OBJECT_HANDLE obj,
                           CK_ATTRIBUTE_TYPE type, std::string_view name) {
  CK_ATTRIBUTE a{type, nullptr, 0};
  CK_RV rv = s.Check(f->C_GetAttributeValue(s.get(), obj, &a, 1));
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID) return common::NotFoundError("pkcs11: no " + std::string(name));
  if (rv != CKR_OK) return CkrError("pkcs11: reading " + std::string(name), rv);
  if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
    return common::FailedPreconditionError("pkcs11: " + std::string(name) + " is unavailable");
  }
  Bytes value(a.ulValueLen);
  a.pValue = value.data();
  rv = s.Check(f->C_GetAttributeValue(s.get(), obj, &a, 1));
  if (rv != CKR_OK) return CkrError("pkcs11: reading " + std::string(name), rv);
  value.resize(a.ulValueLen);
  return value;
}

Result<bool> GetBool(CK_FUNCTION_LIST* f, Session& s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                     std::string_view name) {
  AR_ASSIGN_OR_RETURN(Bytes v, GetAttribute(f, s, obj, type, name));
  if (v.size() != sizeof(CK_BBOOL)) return common::InternalError("pkcs11: " + std::string(name) + " is not a CK_BBOOL");
  return v[0] != CK_FALSE;
}

Result<CK_ULONG> GetUlong(CK_FUNCTION_LIST* f, Session& s, CK_OBJECT_HANDLE obj,
                          CK_ATTRIBUTE_TYPE type, std::string_view name) {
  AR_ASSIGN_OR_RETURN(Bytes v, GetAttribute(f, s, obj, type, name));
  if (v.size() != sizeof(CK_ULONG)) return common::InternalError("pkcs11: " + std::string(name) + " is not a CK_ULONG");
  CK_ULONG out = 0;
  std::memcpy(&out, v.data(), sizeof(out));
  return out;
}

// CKA_EC_POINT is a DER OCTET STRING holding the uncompressed point; a few
// tokens return the bare point.
Result<EvpPkeyPtr> EcPublicKey(ByteView ec_point) {
  ByteView point = ec_point;
  if (point.size() == 67 && point[0] == 0x04 && point[1] == 0x41) point = point.subspan(2);
  if (point.size() != 65 || point[0] != 0x04) {
    return common::InvalidArgumentError("pkcs11: CKA_EC_POINT is not an uncompressed P-256 point");
  }
  auto key = common::EcPublicKeyFromPoint("prime256v1", point);
  if (!key.ok()) return key.status().WithContext("pkcs11: EC public key");
  return key;
}

Result<EvpPkeyPtr> RsaPublicKey(ByteView n, ByteView e) {
  common::BignumPtr bn_n(BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr));
  common::BignumPtr bn_e(BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr));
  common::OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return common::OpenSslInternal("pkcs11: RSA params");
  }
  common::OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return common::OpenSslError(common::StatusCode::kInvalidArgument, "pkcs11: RSA public key");
  }
  return EvpPkeyPtr(raw);
}

Result<Bytes> SpkiDer(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(const_cast<EVP_PKEY*>(key), &der);
  if (len <= 0) return common::OpenSslInternal("pkcs11: i2d_PUBKEY");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

// Reads the public half: EC from the public object's CKA_EC_POINT, RSA from
// the (public) modulus and exponent attributes of `rsa_obj`.
Result<EvpPkeyPtr> ReadPublicKey(CK_FUNCTION_LIST* f, Session& s, JwsAlgorithm alg,
                                 CK_OBJECT_HANDLE ec_public_obj, CK_OBJECT_HANDLE rsa_obj) {
  if (alg == JwsAlgorithm::kEs256) {
    AR_ASSIGN_OR_RETURN(Bytes point, GetAttribute(f, s, ec_public_obj, CKA_EC_POINT, "CKA_EC_POINT"));
    return EcPublicKey(point);
  }
  AR_ASSIGN_OR_RETURN(Bytes n, GetAttribute(f, s, rsa_obj, CKA_MODULUS, "CKA_MODULUS"));
  AR_ASSIGN_OR_RETURN(Bytes e, GetAttribute(f, s, rsa_obj, CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT"));
  return RsaPublicKey(n, e);
}

// ---------------------------------------------------------------------------

class Pkcs11Key final : public Key {
 public:
  static Result<std::shared_ptr<Key>> Create(std::shared_ptr<Token> token, std::string id,
                                             JwsAlgorithm alg, CK_OBJECT_HANDLE handle,
                                             const EVP_PKEY* public_key) {
    AR_ASSIGN_OR_RETURN(common::Jwk jwk, common::Jwk::FromPublicKey(public_key));
    AR_ASSIGN_OR_RETURN(Bytes spki, SpkiDer(public_key));
    jwk = jwk.WithKid(jwk.Thumbprint());
    KeyPolicy policy;
    policy.algorithm = alg;
    auto deleted = token->TrackKey(handle);
    const std::size_t sig_size = alg == JwsAlgorithm::kEs256
                                     ? common::kEs256SignatureSize
                                     : static_cast<std::size_t>(EVP_PKEY_get_size(public_key));
    return std::shared_ptr<Key>(new Pkcs11Key(std::move(token), std::move(id), std::move(policy),
                                              std::move(jwk), std::move(spki), handle,
                                              std::move(deleted), sig_size));
  }

  const std::string& id() const override { return id_; }
  const KeyPolicy& policy() const override { return policy_; }
  const common::Jwk& public_jwk() const override { return jwk_; }
  Bytes native_public() const override { return spki_; }

  Result<Bytes> Sign(JwsAlgorithm requested, ByteView digest) const override {
    if (requested != policy_.algorithm) {
      return common::FailedPreconditionError(
          "pkcs11 key " + id_ + " may sign only with " +
          std::string(common::JwsAlgorithmName(policy_.algorithm)) + ", not " +
          std::string(common::JwsAlgorithmName(requested)));
    }
    if (digest.size() != common::kSha256Size) {
      return common::InvalidArgumentError("digest must be 32 bytes (SHA-256)");
    }
    if (deleted_->load()) return common::NotFoundError("pkcs11 key " + id_ + " was deleted");
    AR_ASSIGN_OR_RETURN(Session session, token_->Acquire());
    CK_FUNCTION_LIST* f = token_->f();

    CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, common::kSha256Size};
    CK_MECHANISM mechanism{MechanismFor(policy_.algorithm), nullptr, 0};
    uint8_t input[sizeof(kSha256DigestInfo) + common::kSha256Size];
    std::size_t input_len = 0;
    if (policy_.algorithm == JwsAlgorithm::kRs256) {
      std::memcpy(input, kSha256DigestInfo, sizeof(kSha256DigestInfo));
      input_len = sizeof(kSha256DigestInfo);
    } else if (policy_.algorithm == JwsAlgorithm::kPs256) {
      mechanism.pParameter = &pss;
      mechanism.ulParameterLen = sizeof(pss);
    }
    std::memcpy(input + input_len, digest.data(), digest.size());
    input_len += digest.size();

    CK_RV rv = session.Check(f->C_SignInit(session.get(), &mechanism, handle_));
    if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
      return CkrError("pkcs11 key " + id_ + " no longer exists: C_SignInit", rv);
    }
    if (rv != CKR_OK) return CkrError("pkcs11 key " + id_ + ": C_SignInit", rv);
    Bytes sig(512);
    CK_ULONG sig_len = sig.size();
    rv = session.Check(f->C_Sign(session.get(), input, input_len, sig.data(), &sig_len));
    if (rv != CKR_OK) return CkrError("pkcs11 key " + id_ + ": C_Sign", rv);
    if (sig_len != sig_size_) {
      return common::InternalError("pkcs11 key " + id_ + ": token returned a " +
                                   std::to_string(sig_len) + "-byte signature, want " +
                                   std::to_string(sig_size_));
    }
    sig.resize(sig_len);
    return sig;
  }

 private:
  Pkcs11Key(std::shared_ptr<Token> token, std::string id, KeyPolicy policy, common::Jwk jwk,
            Bytes spki, CK_OBJECT_HANDLE handle, std::shared_ptr<std::atomic<bool>> deleted,
            std::size_t sig_size)
      : token_(std::move(token)),
        id_(std::move(id)),
        policy_(std::move(policy)),
        jwk_(std::move(jwk)),
        spki_(std::move(spki)),
        handle_(handle),
        deleted_(std::move(deleted)),
        sig_size_(sig_size) {}

  std::shared_ptr<Token> token_;
  std::string id_;
  KeyPolicy policy_;
  common::Jwk jwk_;
  Bytes spki_;
  CK_OBJECT_HANDLE handle_;
  std::shared_ptr<std::atomic<bool>> deleted_;
  std::size_t sig_size_;
};

// The JOSE algorithm a private key object is fixed to, from its key type and
// CKA_ALLOWED_MECHANISMS.
Result<JwsAlgorithm> AlgorithmOf(CK_FUNCTION_LIST* f, Session& s, CK_OBJECT_HANDLE priv,
                                 CK_KEY_TYPE key_type, const std::string& id) {
  auto allowed_raw = GetAttribute(f, s, priv, CKA_ALLOWED_MECHANISMS, "CKA_ALLOWED_MECHANISMS");
  std::vector<CK_MECHANISM_TYPE> allowed;
  if (allowed_raw.ok()) {
    allowed.resize(allowed_raw->size() / sizeof(CK_MECHANISM_TYPE));
    std::memcpy(allowed.data(), allowed_raw->data(), allowed.size() * sizeof(CK_MECHANISM_TYPE));
  } else if (allowed_raw.status().code() != common::StatusCode::kNotFound) {
    return allowed_raw.status();
  }
  auto has = [&](CK_MECHANISM_TYPE m) { return std::find(allowed.begin(), allowed.end(), m) != allowed.end(); };
  if (key_type == CKK_EC) {
    if (!allowed.empty() && !has(CKM_ECDSA)) {
      return common::FailedPreconditionError("pkcs11 key " + id + ": CKA_ALLOWED_MECHANISMS excludes CKM_ECDSA");
    }
    return JwsAlgorithm::kEs256;
  }
  if (key_type == CKK_RSA) {
    const bool pkcs1 = has(CKM_RSA_PKCS);
    const bool pss = has(CKM_RSA_PKCS_PSS);
    if (pkcs1 == pss) {
      return common::FailedPreconditionError(
          "pkcs11 key " + id +
          ": an RSA key needs CKA_ALLOWED_MECHANISMS with exactly one of CKM_RSA_PKCS (RS256) "
          "and CKM_RSA_PKCS_PSS (PS256)");
    }
    return pkcs1 ? JwsAlgorithm::kRs256 : JwsAlgorithm::kPs256;
  }
  return common::FailedPreconditionError("pkcs11 key " + id + ": key type is neither EC nor RSA");
}

// Refuses private keys that are, or ever were, readable outside the token.
Status CheckCustody(CK_FUNCTION_LIST* f, Session& s, CK_OBJECT_HANDLE priv, const std::string& id) {
  struct Want {
    CK_ATTRIBUTE_TYPE type;
    const char* name;
    bool value;
  };
  const Want wants[] = {
      {CKA_SENSITIVE, "CKA_SENSITIVE", true},
      {CKA_EXTRACTABLE, "CKA_EXTRACTABLE", false},
      {CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", true},
      {CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", true},
      {CKA_PRIVATE, "CKA_PRIVATE", true},
      {CKA_SIGN, "CKA_SIGN", true},
  };
  for (const Want& want : wants) {
    AR_ASSIGN_OR_RETURN(bool value, GetBool(f, s, priv, want.type, want.name));
    if (value != want.value) {
      return common::FailedPreconditionError("pkcs11 key " + id + ": refusing a private key with " +
                                             want.name + "=" + (value ? "TRUE" : "FALSE"));
    }
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------

Pkcs11KeyManager::Pkcs11KeyManager(std::shared_ptr<Token> token) : token_(std::move(token)) {}
Pkcs11KeyManager::~Pkcs11KeyManager() = default;

Result<std::unique_ptr<Pkcs11KeyManager>> Pkcs11KeyManager::Create(Pkcs11Config config) {
  AR_ASSIGN_OR_RETURN(std::shared_ptr<Token> token, Token::Open(std::move(config)));
  return std::unique_ptr<Pkcs11KeyManager>(new Pkcs11KeyManager(std::move(token)));
}

Result<std::shared_ptr<Key>> Pkcs11KeyManager::Generate(std::string_view id, const KeyPolicy& policy) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  if (!policy.pcr_binding.empty()) {
    return common::UnimplementedError("pkcs11 backend cannot bind keys to PCRs");
  }
  const JwsAlgorithm alg = policy.algorithm;
  std::lock_guard write_lock(token_->write_mu());
  AR_ASSIGN_OR_RETURN(Session s, token_->Acquire());
  CK_FUNCTION_LIST* f = token_->f();
  AR_ASSIGN_OR_RETURN(auto existing, FindKeys(f, s, CKO_PRIVATE_KEY, id));
  if (!existing.empty()) return common::AlreadyExistsError("pkcs11 key " + std::string(id) + " exists");
  AR_ASSIGN_OR_RETURN(auto stale_public, FindKeys(f, s, CKO_PUBLIC_KEY, id));
  for (CK_OBJECT_HANDLE h : stale_public) s.Check(f->C_DestroyObject(s.get(), h));

  CK_MECHANISM_TYPE allowed = MechanismFor(alg);
  CK_ULONG bits = kRsaBits;
  // Sign-only: every other usage is switched off explicitly, since tokens
  // default some of them to TRUE (SoftHSM2: decrypt and unwrap).
  std::vector<CK_ATTRIBUTE> pub = {
      Attr(CKA_TOKEN, &kTrue),    Attr(CKA_PRIVATE, &kFalse), Attr(CKA_VERIFY, &kTrue),
      Attr(CKA_ENCRYPT, &kFalse), Attr(CKA_WRAP, &kFalse),    Attr(CKA_DERIVE, &kFalse),
      Attr(CKA_LABEL, id),        Attr(CKA_ID, id),
  };
  std::vector<CK_ATTRIBUTE> priv = {
      Attr(CKA_TOKEN, &kTrue),        Attr(CKA_PRIVATE, &kTrue),       Attr(CKA_SENSITIVE, &kTrue),
      Attr(CKA_EXTRACTABLE, &kFalse), Attr(CKA_SIGN, &kTrue),          Attr(CKA_SIGN_RECOVER, &kFalse),
      Attr(CKA_DECRYPT, &kFalse),     Attr(CKA_UNWRAP, &kFalse),       Attr(CKA_DERIVE, &kFalse),
      Attr(CKA_LABEL, id),            Attr(CKA_ID, id),                Attr(CKA_ALLOWED_MECHANISMS, &allowed),
  };
  CK_MECHANISM mechanism{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  if (alg == JwsAlgorithm::kEs256) {
    pub.push_back(Attr(CKA_EC_PARAMS, kP256Params, sizeof(kP256Params)));
  } else {
    mechanism.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
    pub.push_back(Attr(CKA_MODULUS_BITS, &bits));
    pub.push_back(Attr(CKA_PUBLIC_EXPONENT, kRsaPublicExponent, sizeof(kRsaPublicExponent)));
  }
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv_handle = CK_INVALID_HANDLE;
  CK_RV rv = s.Check(f->C_GenerateKeyPair(s.get(), &mechanism, pub.data(), pub.size(), priv.data(),
                                          priv.size(), &pub_handle, &priv_handle));
  if (rv != CKR_OK) return CkrError("pkcs11: C_GenerateKeyPair for " + std::string(id), rv);

  auto key = [&]() -> Result<std::shared_ptr<Key>> {
    AR_ASSIGN_OR_RETURN(EvpPkeyPtr public_key, ReadPublicKey(f, s, alg, pub_handle, pub_handle));
    return Pkcs11Key::Create(token_, std::string(id), alg, priv_handle, public_key.get());
  }();
  if (!key.ok()) {  // do not leave a half-made key behind
    s.Check(f->C_DestroyObject(s.get(), priv_handle));
    s.Check(f->C_DestroyObject(s.get(), pub_handle));
  }
  return key;
}

Result<std::shared_ptr<Key>> Pkcs11KeyManager::Get(std::string_view id_view) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id_view));
  const std::string id(id_view);
  AR_ASSIGN_OR_RETURN(Session s, token_->Acquire());
  CK_FUNCTION_LIST* f = token_->f();
  AR_ASSIGN_OR_RETURN(auto privs, FindKeys(f, s, CKO_PRIVATE_KEY, id));
  if (privs.empty()) return common::NotFoundError("no pkcs11 key " + id);
  if (privs.size() > 1) {
    return common::FailedPreconditionError("pkcs11: several private keys labelled " + id);
  }
  const CK_OBJECT_HANDLE priv = privs.front();
  AR_RETURN_IF_ERROR(CheckCustody(f, s, priv, id));
  AR_ASSIGN_OR_RETURN(CK_KEY_TYPE key_type, GetUlong(f, s, priv, CKA_KEY_TYPE, "CKA_KEY_TYPE"));
  AR_ASSIGN_OR_RETURN(JwsAlgorithm alg, AlgorithmOf(f, s, priv, key_type, id));

  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
  if (alg == JwsAlgorithm::kEs256) {
    AR_ASSIGN_OR_RETURN(Bytes params, GetAttribute(f, s, priv, CKA_EC_PARAMS, "CKA_EC_PARAMS"));
    if (!std::equal(params.begin(), params.end(), std::begin(kP256Params), std::end(kP256Params))) {
      return common::FailedPreconditionError("pkcs11 key " + id + " is not on curve P-256");
    }
    AR_ASSIGN_OR_RETURN(auto pubs, FindKeys(f, s, CKO_PUBLIC_KEY, id));
    if (pubs.size() != 1) {
      return common::FailedPreconditionError("pkcs11 key " + id + ": expected one public key object, found " +
                                             std::to_string(pubs.size()));
    }
    pub = pubs.front();
  }
  AR_ASSIGN_OR_RETURN(EvpPkeyPtr public_key, ReadPublicKey(f, s, alg, pub, priv));
  if (alg != JwsAlgorithm::kEs256 && EVP_PKEY_get_bits(public_key.get()) < common::kMinRsaBits) {
    return common::FailedPreconditionError("pkcs11 key " + id + ": RSA modulus below 2048 bits");
  }
  AR_ASSIGN_OR_RETURN(auto key, Pkcs11Key::Create(token_, id, alg, priv, public_key.get()));

  // The public object must belong to the private key: one signature proves it.
  const common::Bytes probe = common::ToBytes("agentroot pkcs11 key-pair check " + id);
  AR_ASSIGN_OR_RETURN(Bytes sig, key->Sign(alg, common::Sha256(probe)));
  AR_ASSIGN_OR_RETURN(auto vk, common::VerificationKey::Create(key->public_jwk(), {alg}));
  Status verified = common::VerifySignature(vk, alg, probe, sig);
  if (!verified.ok()) {
    return common::FailedPreconditionError("pkcs11 key " + id +
                                           ": public key does not match the private key: " +
                                           verified.message());
  }
  return key;
}

Result<std::vector<std::string>> Pkcs11KeyManager::List() {
  AR_ASSIGN_OR_RETURN(Session s, token_->Acquire());
  CK_FUNCTION_LIST* f = token_->f();
  AR_ASSIGN_OR_RETURN(auto privs, FindKeys(f, s, CKO_PRIVATE_KEY, ""));
  std::vector<std::string> ids;
  for (CK_OBJECT_HANDLE h : privs) {
    auto label = GetAttribute(f, s, h, CKA_LABEL, "CKA_LABEL");
    if (!label.ok()) continue;
    std::string id = common::ToString(*label);
    if (ValidateKeyId(id).ok()) ids.push_back(std::move(id));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Status Pkcs11KeyManager::Delete(std::string_view id) {
  AR_RETURN_IF_ERROR(ValidateKeyId(id));
  std::lock_guard write_lock(token_->write_mu());
  AR_ASSIGN_OR_RETURN(Session s, token_->Acquire());
  CK_FUNCTION_LIST* f = token_->f();
  AR_ASSIGN_OR_RETURN(auto privs, FindKeys(f, s, CKO_PRIVATE_KEY, id));
  if (privs.empty()) return common::NotFoundError("no pkcs11 key " + std::string(id));
  AR_ASSIGN_OR_RETURN(auto pubs, FindKeys(f, s, CKO_PUBLIC_KEY, id));
  for (CK_OBJECT_HANDLE h : privs) {
    CK_RV rv = s.Check(f->C_DestroyObject(s.get(), h));
    if (rv != CKR_OK) return CkrError("pkcs11: C_DestroyObject for " + std::string(id), rv);
    token_->MarkDestroyed(h);
  }
  for (CK_OBJECT_HANDLE h : pubs) {
    CK_RV rv = s.Check(f->C_DestroyObject(s.get(), h));
    if (rv != CKR_OK) return CkrError("pkcs11: C_DestroyObject (public) for " + std::string(id), rv);
  }
  return Status::Ok();
}

}  // namespace agentroot::hsm
