// SecretBytes: key material and other secrets held in process memory.
//
// The buffer lives in memory that is wiped (OPENSSL_cleanse) whenever it is
// released: on destruction, on growth, on Clear(). The type is move-only
// (copies are explicit, through Clone()), has no stream or format operator,
// and equality is constant-time. Reading the bytes needs an explicit call to
// Reveal(), which keeps uses of secret contents greppable.
//
// Thread safety: like std::vector; concurrent const access is safe.
#ifndef AGENTROOT_COMMON_SECRET_BYTES_H_
#define AGENTROOT_COMMON_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "agentroot/common/bytes.h"

namespace agentroot::common {

// std::allocator that wipes memory before handing it back.
template <typename T>
struct ZeroizingAllocator {
  using value_type = T;
  ZeroizingAllocator() noexcept = default;
  template <typename U>
  ZeroizingAllocator(const ZeroizingAllocator<U>&) noexcept {}  // NOLINT
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept;
  template <typename U>
  bool operator==(const ZeroizingAllocator<U>&) const noexcept { return true; }
};

// Wipes `size` bytes at `data` in a way the compiler may not elide.
void SecureWipe(void* data, std::size_t size) noexcept;

template <typename T>
void ZeroizingAllocator<T>::deallocate(T* p, std::size_t n) noexcept {
  SecureWipe(p, n * sizeof(T));
  std::allocator<T>().deallocate(p, n);
}

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(ByteView data) : data_(data.begin(), data.end()) {}
  explicit SecretBytes(std::size_t size) : data_(size, 0) {}

  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // An explicit copy.
  SecretBytes Clone() const { return SecretBytes(Reveal()); }

  std::size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

  // Access to the secret contents.
  ByteView Reveal() const { return ByteView(data_.data(), data_.size()); }
  // Writable access, for filling a secret in place (random bytes, KDF output).
  uint8_t* MutableData() { return data_.data(); }

  // Wipes and empties.
  void Clear() {
    SecureWipe(data_.data(), data_.size());
    data_.clear();
  }

  // Constant-time for equal lengths.
  bool Equals(const SecretBytes& other) const {
    return ConstantTimeEquals(Reveal(), other.Reveal());
  }
  bool Equals(ByteView other) const { return ConstantTimeEquals(Reveal(), other); }

 private:
  std::vector<uint8_t, ZeroizingAllocator<uint8_t>> data_;
};

// No operator==: equality must be spelled Equals() so reviewers see it is
// constant-time; no operator<<: secrets are never printed.

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_SECRET_BYTES_H_
