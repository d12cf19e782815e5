#include "sql_connection.h"

#include <charconv>

namespace agentroot::attestation::store::internal {

int64_t SqlRow::Int(std::size_t col) const {
  if (IsNull(col)) return 0;
  const std::string& s = *cells_[col];
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size()) return 0;
  return value;
}

std::string SqlRow::Text(std::size_t col) const { return IsNull(col) ? std::string() : *cells_[col]; }

common::Bytes SqlRow::Blob(std::size_t col) const {
  if (IsNull(col)) return {};
  const std::string& s = *cells_[col];
  return common::Bytes(s.begin(), s.end());
}

}  // namespace agentroot::attestation::store::internal
