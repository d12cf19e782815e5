// The KeyManager conformance suite: the contract every key backend must pass
// (in the style of SPIRE's keymanagertest).
//
// A backend instantiates the suite in its own test file with a factory that
// opens a KeyManager over one persistent store. Each call of `open` must return
// a NEW manager instance over the SAME store (same directory, token, TPM and
// key blobs), so the suite can check that keys survive a reopen:
//
//   #include "agentroot/hsm/testing/key_manager_conformance.h"
//
//   namespace agentroot::hsm::testing {
//   KeyManagerFactory MyFactory() {
//     KeyManagerFactory f;
//     f.name = "Software";   // [A-Za-z0-9_]: becomes part of the test name
//     f.open = [] { return OpenMyBackendOverTheSameStore(); };
//     f.supports_pcr_binding = false;
//     return f;
//   }
//   INSTANTIATE_TEST_SUITE_P(Software, KeyManagerConformanceTest,
//                            ::testing::Values(MyFactory()), KeyManagerFactoryName);
//   }  // namespace agentroot::hsm::testing
//
// The store belongs to the suite: SetUp() deletes every key listed in it so
// each test starts empty. Never point a factory at a store holding keys you
// want to keep. Any per-process setup (a temp dir, a SoftHSM2 token, a swtpm)
// can be created lazily inside `open` or by a ::testing::Environment; under
// ctest every test runs in its own process.
//
// What the suite checks (one TEST_P each; names are stable):
//   - backend() names a known backend;
//   - Generate + Sign for ES256, RS256 and PS256: signatures verify with
//     OpenSSL (common::VerifySignature and a JWS round trip through the
//     common::Signer interface), a flipped bit and a different key of the same
//     type do not verify, ES256 signatures are 64 bytes raw r||s, RSA ones 256;
//   - public_jwk() is the key in native_public() (SubjectPublicKeyInfo DER
//     unless the factory supplies `native_public_to_jwk`);
//   - persist and reload: a new manager instance Gets the key, its public key
//     is unchanged, its policy too, and it signs for the old public key;
//   - List() is sorted, also after a reopen;
//   - Delete: Get then fails NOT_FOUND, a Key object still held fails to sign,
//     a second Delete is NOT_FOUND, and the key stays gone after a reopen;
//   - Generate with an existing id: ALREADY_EXISTS, the first key unchanged;
//   - bad ids ("", 65 characters, "../x", "a/b", ".", "..", "a b", non-ASCII,
//     an embedded NUL): INVALID_ARGUMENT from Generate, Get and Delete;
//   - Sign with an algorithm other than the key's policy: FAILED_PRECONDITION
//     (including RS256 on a PS256 key and the reverse);
//   - a digest that is not 32 bytes: INVALID_ARGUMENT;
//   - concurrency: 4 threads x 25 signs on one key, and 4 threads generating
//     distinct keys at once;
//   - a non-empty pcr_binding: UNIMPLEMENTED and no key left behind when
//     `supports_pcr_binding` is false (skipped otherwise: the TPM backend
//     tests PCR binding itself, it needs PCR extends).
//
// Thread safety: a fixture is used by one test at a time; the suite itself
// starts threads only inside the concurrency tests.
#ifndef AGENTROOT_HSM_TESTING_KEY_MANAGER_CONFORMANCE_H_
#define AGENTROOT_HSM_TESTING_KEY_MANAGER_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/jwk.h"
#include "agentroot/common/status.h"
#include "agentroot/hsm/key_manager.h"

namespace agentroot::hsm::testing {

struct KeyManagerFactory {
  // Test-name suffix: letters, digits and '_' only.
  std::string name;
  // Opens a new KeyManager over the same persistent store on every call.
  std::function<Result<std::unique_ptr<KeyManager>>()> open;
  // True only for backends that honour KeyPolicy::pcr_binding (the TPM).
  bool supports_pcr_binding = false;
  // Turns Key::native_public() into a JWK. Empty: native_public() is parsed as
  // SubjectPublicKeyInfo DER (d2i_PUBKEY). The TPM backend supplies a
  // TPM2B_PUBLIC parser here.
  std::function<Result<common::Jwk>(common::ByteView native_public)> native_public_to_jwk;
};

// For INSTANTIATE_TEST_SUITE_P's name generator argument.
std::string KeyManagerFactoryName(const ::testing::TestParamInfo<KeyManagerFactory>& info);

// Prints the factory's name in test output.
void PrintTo(const KeyManagerFactory& factory, std::ostream* os);

// Fixture of the suite. Backends may also derive from it (TEST_P on a
// subclass) to add backend-specific tests that reuse manager() and Reopen().
class KeyManagerConformanceTest : public ::testing::TestWithParam<KeyManagerFactory> {
 protected:
  // Opens the manager and deletes every key in the store (fatal on error).
  void SetUp() override;
  // Deletes the keys this test left behind (best effort) and closes.
  void TearDown() override;

  KeyManager& manager() { return *manager_; }

  // Destroys the current manager instance and opens a new one over the same
  // store; Key objects obtained earlier are kept by the caller.
  Result<KeyManager*> Reopen();

  // Opens an additional, independent manager over the same store.
  Result<std::unique_ptr<KeyManager>> OpenAnother() const { return GetParam().open(); }

 private:
  std::unique_ptr<KeyManager> manager_;
};

// Checks used by the suite, exported for backend-specific tests.
//
// OK when `signature` is a valid `alg` signature by `jwk` over `message`
// (signed as the SHA-256 digest of `message`).
Status VerifyWithOpenSsl(const common::Jwk& jwk, common::JwsAlgorithm alg,
                         common::ByteView message, common::ByteView signature);

// Signs SHA-256(`message`) with `key` and checks the result with OpenSSL,
// a bit-flipped copy (must fail) and the expected length.
Status SignAndVerify(const Key& key, common::ByteView message);

}  // namespace agentroot::hsm::testing

#endif  // AGENTROOT_HSM_TESTING_KEY_MANAGER_CONFORMANCE_H_
