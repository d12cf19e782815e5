// Status and Result<T>: the error model of every agentroot library API.
//
// A Status is OK or carries a code from a small, stable set plus a message
// that keeps the original cause (an OpenSSL error queue, a TSS2_RC with its
// decoded text, a CK_RV) instead of collapsing it into "internal". Result<T>
// holds either a value or a non-OK Status, shaped like std::expected.
//
// Library APIs never throw; exceptions are caught at process edges (HTTP
// handlers, main). Both types are [[nodiscard]]: ignoring an error is a
// compile error under -Werror.
//
// Thread safety: values; safe to copy between threads, not to mutate
// concurrently.
#ifndef AGENTROOT_COMMON_STATUS_H_
#define AGENTROOT_COMMON_STATUS_H_

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace agentroot::common {

// Stable, extend-only list. Values are persisted in audit records and mapped
// to HTTP statuses at the edge, so never renumber.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,     // malformed input: parse failures, bad encodings
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,    // authenticated but not allowed
  kUnauthenticated = 5,     // signature / proof / credential did not verify
  kFailedPrecondition = 6,  // state does not allow the operation
  kUnavailable = 7,         // a dependency (TPM, database, peer) is unreachable
  kDeadlineExceeded = 8,
  kResourceExhausted = 9,
  kInternal = 10,           // a bug or an unexpected library failure
  kUnimplemented = 11,
  kDataLoss = 12,
  kAborted = 13,
  kOutOfRange = 14,
};

// Returns a short stable name such as "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // OK.
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: message" or "OK".
  std::string ToString() const;

  // Prefixes the message with context ("loading AK: <original>"), keeping the
  // code. No-op on OK.
  Status WithContext(std::string_view context) const&;
  Status WithContext(std::string_view context) &&;

  // Explicitly discards a status the caller has decided not to act on.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Convenience constructors, one per code used in practice.
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status UnauthenticatedError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnavailableError(std::string message);
Status DeadlineExceededError(std::string message);
Status ResourceExhaustedError(std::string message);
Status InternalError(std::string message);
Status UnimplementedError(std::string message);
Status DataLossError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, Status>,
                "Result<Status> is meaningless; return Status");

 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit by design.
  Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}
  // A Result built from a Status must not be OK; an OK status here is a bug
  // and becomes an INTERNAL error rather than an empty value.
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(Status status)
      : data_(std::in_place_index<1>,
              status.ok() ? InternalError("Result constructed from OK status")
                          : std::move(status)) {}

  template <typename U>
    requires(std::is_constructible_v<T, U &&> &&
             !std::is_same_v<std::remove_cvref_t<U>, T> &&
             !std::is_same_v<std::remove_cvref_t<U>, Status> &&
             !std::is_same_v<std::remove_cvref_t<U>, Result>)
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(U&& value) : data_(std::in_place_index<0>, T(std::forward<U>(value))) {}

  bool ok() const { return data_.index() == 0; }

  // The status: OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<1>(data_); }

  // Precondition: ok(). Violating it is a programming error; std::get then
  // throws std::bad_variant_access rather than reading garbage.
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace agentroot::common

#define AGENTROOT_STATUS_CONCAT_INNER_(a, b) a##b
#define AGENTROOT_STATUS_CONCAT_(a, b) AGENTROOT_STATUS_CONCAT_INNER_(a, b)

// Evaluates an expression yielding Status; returns it from the enclosing
// function when not OK.
#define AR_RETURN_IF_ERROR(expr) AR_RETURN_IF_ERROR_N_(__COUNTER__, expr)
#define AR_RETURN_IF_ERROR_N_(n, expr) \
  AR_RETURN_IF_ERROR_IMPL_(AGENTROOT_STATUS_CONCAT_(ar_status_, n), expr)
#define AR_RETURN_IF_ERROR_IMPL_(tmp, expr)           \
  do {                                               \
    ::agentroot::common::Status tmp = (expr);        \
    if (!tmp.ok()) return tmp;                       \
  } while (false)

// AR_ASSIGN_OR_RETURN(auto x, ExprReturningResult());
// Declares/assigns lhs from the value, or returns the error.
// Expands to several statements: never the body of an unbraced if/else.
// The temporary's name comes from __COUNTER__, expanded once, so a call that
// spans several lines still names one variable.
#define AR_ASSIGN_OR_RETURN(lhs, expr) AR_ASSIGN_OR_RETURN_N_(__COUNTER__, lhs, expr)
#define AR_ASSIGN_OR_RETURN_N_(n, lhs, expr) \
  AR_ASSIGN_OR_RETURN_IMPL_(AGENTROOT_STATUS_CONCAT_(ar_result_, n), lhs, expr)
#define AR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // AGENTROOT_COMMON_STATUS_H_
