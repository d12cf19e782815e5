#include "agentroot/common/status.h"

namespace agentroot::common {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string message)
    : code_(code), message_(code == StatusCode::kOk ? std::string() : std::move(message)) {}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const& {
  return Status(*this).WithContext(context);
}

Status Status::WithContext(std::string_view context) && {
  if (ok()) return std::move(*this);
  std::string message(context);
  message += ": ";
  message += message_;
  message_ = std::move(message);
  return std::move(*this);
}

#define AGENTROOT_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }

AGENTROOT_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
AGENTROOT_DEFINE_ERROR_(NotFoundError, kNotFound)
AGENTROOT_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
AGENTROOT_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
AGENTROOT_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)
AGENTROOT_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
AGENTROOT_DEFINE_ERROR_(UnavailableError, kUnavailable)
AGENTROOT_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
AGENTROOT_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
AGENTROOT_DEFINE_ERROR_(InternalError, kInternal)
AGENTROOT_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
AGENTROOT_DEFINE_ERROR_(DataLossError, kDataLoss)
AGENTROOT_DEFINE_ERROR_(AbortedError, kAborted)
AGENTROOT_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)

#undef AGENTROOT_DEFINE_ERROR_

}  // namespace agentroot::common
