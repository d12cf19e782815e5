// Key custody: the one interface every key backend implements.
//
// A KeyManager generates keys *inside* its backend (a TPM, a PKCS#11 HSM, the
// attestation appliance, or, for tests only, process memory) and hands out
// Key objects that sign digests and report their public key. No method ever
// returns private key material, and a key's policy (algorithm, usage,
// non-exportability, an optional PCR binding) is fixed when it is created
// (cf. SPIRE's KeyManager and PSA key policies).
//
// A Key is a common::Signer, so JOSE code signs with a TPM or HSM key without
// knowing where it lives.
//
// Every backend passes the shared conformance suite in
// hsm/testing/key_manager_conformance.h: generate, sign, verify with OpenSSL,
// persist and reload, delete, refuse an algorithm outside the key's policy,
// concurrent use from several threads.
//
// Thread safety: KeyManager and Key implementations must be safe to call from
// several threads; backends that cannot run operations concurrently (an ESYS
// context) serialize internally.
#ifndef AGENTROOT_HSM_KEY_MANAGER_H_
#define AGENTROOT_HSM_KEY_MANAGER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/signer.h"
#include "agentroot/common/status.h"

namespace agentroot::hsm {

using common::ByteView;
using common::Bytes;
using common::JwsAlgorithm;
using common::Result;
using common::Status;

// What a key may do, fixed at creation.
struct KeyPolicy {
  // The only algorithm the key signs with (ES256 => ECC P-256, RS256/PS256 =>
  // RSA 2048).
  JwsAlgorithm algorithm = JwsAlgorithm::kEs256;
  // TPM backend only: when non-empty, the key is bound to the current values
  // of these SHA-256 PCRs (PolicyPCR) and stops signing once any of them
  // changes. Only PCRs 0-15 are accepted (16 and 23 are resettable and do not
  // bump the PCR update counter). Other backends refuse a non-empty list
  // (UNIMPLEMENTED).
  std::vector<uint32_t> pcr_binding;
};

class Key : public common::Signer {
 public:
  // The caller-chosen identifier, unique within its KeyManager.
  virtual const std::string& id() const = 0;
  virtual const KeyPolicy& policy() const = 0;

  // The public key in the backend's native form: TPM2B_PUBLIC (marshalled)
  // for the TPM, SubjectPublicKeyInfo DER otherwise.
  virtual Bytes native_public() const = 0;

  // Signs a SHA-256 digest with `requested`; FAILED_PRECONDITION when it is
  // not the key's policy algorithm (the key never signs with another one),
  // INVALID_ARGUMENT when `digest` is not 32 bytes, NOT_FOUND once the key
  // was deleted. Returns the JOSE encoding (raw r||s for ES256).
  virtual Result<Bytes> Sign(JwsAlgorithm requested, ByteView digest) const = 0;

  // common::Signer
  JwsAlgorithm algorithm() const override { return policy().algorithm; }
  Result<Bytes> SignDigest(ByteView digest) const override { return Sign(algorithm(), digest); }
};

class KeyManager {
 public:
  virtual ~KeyManager() = default;

  // "tpm", "pkcs11", "appliance", "software".
  virtual std::string_view backend() const = 0;

  // Creates a key inside the backend. `id`: 1-64 characters of
  // [A-Za-z0-9._-]. ALREADY_EXISTS when the id is taken; INVALID_ARGUMENT for
  // a bad id or policy; UNIMPLEMENTED for a policy the backend cannot honour.
  virtual Result<std::shared_ptr<Key>> Generate(std::string_view id, const KeyPolicy& policy) = 0;

  // A key created earlier, also by an earlier process. NOT_FOUND if absent;
  // INVALID_ARGUMENT for a malformed id (as for Delete).
  virtual Result<std::shared_ptr<Key>> Get(std::string_view id) = 0;

  // Ids of all keys, sorted.
  virtual Result<std::vector<std::string>> List() = 0;

  // Destroys the key in the backend; Key objects still held fail afterwards.
  // NOT_FOUND if absent.
  virtual Status Delete(std::string_view id) = 0;
};

// OK when `id` is 1-64 characters of [A-Za-z0-9._-]; INVALID_ARGUMENT else.
Status ValidateKeyId(std::string_view id);

}  // namespace agentroot::hsm

#endif  // AGENTROOT_HSM_KEY_MANAGER_H_
