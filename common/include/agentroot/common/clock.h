// Clock: the source of "now" for every freshness and expiry decision, so tests
// can move time explicitly instead of sleeping.
//
// Thread safety: SystemClock and FakeClock are safe from any thread.
#ifndef AGENTROOT_COMMON_CLOCK_H_
#define AGENTROOT_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace agentroot::common {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;

  // Seconds since the Unix epoch (JOSE NumericDate), truncated.
  int64_t NowUnixSeconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(Now().time_since_epoch()).count();
  }

  // The process-wide wall clock.
  static const Clock& System();
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t unix_seconds) : seconds_(unix_seconds) {}
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds_.load()));
  }
  void SetUnixSeconds(int64_t unix_seconds) { seconds_.store(unix_seconds); }
  void Advance(std::chrono::seconds delta) { seconds_.fetch_add(delta.count()); }

 private:
  std::atomic<int64_t> seconds_;
};

}  // namespace agentroot::common

#endif  // AGENTROOT_COMMON_CLOCK_H_
