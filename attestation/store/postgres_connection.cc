// PostgreSQL (libpq) driver for SqlConnection.
#include <libpq-fe.h>

#include <charconv>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sql_connection.h"

namespace agentroot::attestation::store::internal {
namespace {

using common::Result;
using common::Status;
using common::StatusCode;

// pg_advisory_xact_lock keys; arbitrary but fixed ("ar" + purpose).
constexpr std::string_view kLockAuditSql = "SELECT pg_advisory_xact_lock(7097000001)";
constexpr std::string_view kLockMigrationsSql = "SELECT pg_advisory_xact_lock(7097000002)";

constexpr Oid kByteaOid = 17;

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;

struct ResultClearer {
  void operator()(PGresult* res) const { PQclear(res); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

StatusCode MapSqlState(std::string_view state) {
  if (state == "23505") return StatusCode::kAlreadyExists;
  if (state == "23503") return StatusCode::kFailedPrecondition;
  if (state.starts_with("23") || state.starts_with("22")) return StatusCode::kInvalidArgument;
  if (state == "40001" || state == "40P01") return StatusCode::kAborted;
  if (state.starts_with("08") || state.starts_with("53") || state.starts_with("57") ||
      state.starts_with("58")) {
    return StatusCode::kUnavailable;
  }
  if (state == "P0001") return StatusCode::kPermissionDenied;  // RAISE in our triggers
  if (state.starts_with("XX")) return StatusCode::kDataLoss;
  return StatusCode::kInternal;
}

std::string FirstLine(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// From a failed PGresult: SQLSTATE and the primary message only (DETAIL may
// carry row values).
Status ResultError(PGconn* conn, const PGresult* res, std::string_view what) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message = "postgresql: ";
  message += what;
  message += ": ";
  if (state != nullptr) {
    message += "SQLSTATE ";
    message += state;
    message += ": ";
    message += FirstLine(primary);
    return Status(MapSqlState(state), std::move(message));
  }
  // No SQLSTATE: a client-side failure (connection lost).
  message += FirstLine(PQerrorMessage(conn));
  return Status(PQstatus(conn) == CONNECTION_BAD ? StatusCode::kUnavailable : StatusCode::kInternal,
                std::move(message));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytea_output = hex: "\x0a1b...".
std::string DecodeByteaHex(const char* text, int length) {
  std::string out;
  if (length < 2 || text[0] != '\\' || text[1] != 'x') return out;
  out.reserve((length - 2) / 2);
  for (int i = 2; i + 1 < length; i += 2) {
    const int hi = HexValue(text[i]);
    const int lo = HexValue(text[i + 1]);
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

void IgnoreNotice(void* /*arg*/, const char* /*message*/) {}

class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(ConnPtr conn) : conn_(std::move(conn)) {}

  Dialect dialect() const override { return Dialect::kPostgres; }

  Result<SqlResult> Exec(std::string_view sql, std::initializer_list<SqlParam> params) override {
    AR_ASSIGN_OR_RETURN(const std::string* name, Prepare(sql, static_cast<int>(params.size())));
    const std::size_t n = params.size();
    std::vector<std::string> storage(n);
    std::vector<const char*> values(n, nullptr);
    std::vector<int> lengths(n, 0);
    std::vector<int> formats(n, 0);
    static const char kEmpty = 0;
    std::size_t i = 0;
    for (const SqlParam& param : params) {
      if (std::holds_alternative<std::nullptr_t>(param)) {
        values[i] = nullptr;
      } else if (const int64_t* v = std::get_if<int64_t>(&param)) {
        storage[i] = std::to_string(*v);
        values[i] = storage[i].c_str();
      } else if (const std::string_view* s = std::get_if<std::string_view>(&param)) {
        if (s->find('\0') != std::string_view::npos) {
          return common::InvalidArgumentError("postgresql: text parameter contains NUL");
        }
        storage[i] = std::string(*s);
        values[i] = storage[i].c_str();
      } else {
        const common::ByteView b = std::get<common::ByteView>(param);
        // A null pointer would mean SQL NULL: point empty values at a byte.
        values[i] = b.empty() ? &kEmpty : reinterpret_cast<const char*>(b.data());
        lengths[i] = static_cast<int>(b.size());
        formats[i] = 1;
      }
      ++i;
    }
    ResultPtr res(PQexecPrepared(conn_.get(), name->c_str(), static_cast<int>(n), values.data(),
                                 lengths.data(), formats.data(), /*resultFormat=*/0));
    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      return ResultError(conn_.get(), res.get(), "exec");
    }
    SqlResult result;
    const int rows = PQntuples(res.get());
    const int cols = PQnfields(res.get());
    result.rows.reserve(rows);
    for (int r = 0; r < rows; ++r) {
      std::vector<std::optional<std::string>> cells;
      cells.reserve(cols);
      for (int c = 0; c < cols; ++c) {
        if (PQgetisnull(res.get(), r, c)) {
          cells.emplace_back(std::nullopt);
        } else if (PQftype(res.get(), c) == kByteaOid) {
          cells.emplace_back(DecodeByteaHex(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c)));
        } else {
          cells.emplace_back(std::string(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c)));
        }
      }
      result.rows.emplace_back(std::move(cells));
    }
    const char* tuples = PQcmdTuples(res.get());
    if (tuples != nullptr && *tuples != '\0') {
      std::string_view t(tuples);
      std::from_chars(t.data(), t.data() + t.size(), result.affected);
    }
    return result;
  }

  Status ExecScript(std::string_view sql) override {
    const std::string text(sql);
    ResultPtr res(PQexec(conn_.get(), text.c_str()));
    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      return ResultError(conn_.get(), res.get(), "exec");
    }
    return Status();
  }

  Status BeginWrite() override { return ExecScript("BEGIN"); }
  Status LockAuditChain() override { return ExecScript(kLockAuditSql); }
  Status LockMigrations() override { return ExecScript(kLockMigrationsSql); }
  Status Commit() override { return ExecScript("COMMIT"); }
  Status Rollback() override {
    if (PQtransactionStatus(conn_.get()) == PQTRANS_IDLE) return Status();
    return ExecScript("ROLLBACK");
  }
  bool broken() const override { return PQstatus(conn_.get()) == CONNECTION_BAD; }

 private:
  Result<const std::string*> Prepare(std::string_view sql, int n_params) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return &it->second;
    std::string name = "ar_" + std::to_string(statements_.size());
    const std::string text(sql);
    ResultPtr res(PQprepare(conn_.get(), name.c_str(), text.c_str(), n_params, nullptr));
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return ResultError(conn_.get(), res.get(), "prepare");
    }
    auto [inserted, ok] = statements_.emplace(text, std::move(name));
    (void)ok;
    return &inserted->second;
  }

  ConnPtr conn_;
  std::map<std::string, std::string, std::less<>> statements_;
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> OpenPostgresConnection(const std::string& conninfo) {
  ConnPtr conn(PQconnectdb(conninfo.c_str()));
  if (!conn) return common::ResourceExhaustedError("postgresql: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    // libpq's message names host and port, never the password.
    return common::UnavailableError("postgresql: connect: " + FirstLine(PQerrorMessage(conn.get())));
  }
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  auto pg = std::make_unique<PostgresConnection>(std::move(conn));
  AR_RETURN_IF_ERROR(pg->ExecScript(
      "SET bytea_output = 'hex'; SET client_min_messages = warning; "
      "SET synchronous_commit = on; SET TIME ZONE 'UTC'"));
  return std::unique_ptr<SqlConnection>(std::move(pg));
}

}  // namespace agentroot::attestation::store::internal
