// Internal: one database connection behind a dialect-neutral interface, so
// the store logic (sql_store.cc) is written once for SQLite and PostgreSQL.
//
// SQL text uses PostgreSQL-style positional parameters `$1..$n`; the SQLite
// driver rewrites them to `?1..?n` when it prepares the statement. Values are
// always bound, never spliced into SQL text. Statements are prepared once per
// connection and cached by their text.
//
// Errors keep the backend's own code: "sqlite: <name> (extended code N): msg"
// or "postgresql: SQLSTATE xxxxx: primary message" (never DETAIL, which can
// echo row values). The Status code is mapped: unique violation ->
// ALREADY_EXISTS, foreign-key violation -> FAILED_PRECONDITION, check/not-null
// violation and bad input -> INVALID_ARGUMENT, busy/locked/connection loss ->
// UNAVAILABLE, serialization failure/deadlock -> ABORTED, corruption ->
// DATA_LOSS, anything else -> INTERNAL.
//
// Thread safety: a connection is used by one thread at a time (the store's
// pool hands it out exclusively).
#ifndef AGENTROOT_ATTESTATION_STORE_SQL_CONNECTION_H_
#define AGENTROOT_ATTESTATION_STORE_SQL_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::store::internal {

enum class Dialect { kSqlite, kPostgres };

// A bound parameter. Views must stay valid for the duration of the call.
using SqlParam = std::variant<std::nullptr_t, int64_t, std::string_view, common::ByteView>;

// One result row: each cell is NULL or its bytes (text as UTF-8, integers as
// decimal text, BLOB/BYTEA as raw bytes).
class SqlRow {
 public:
  explicit SqlRow(std::vector<std::optional<std::string>> cells) : cells_(std::move(cells)) {}

  bool IsNull(std::size_t col) const { return col >= cells_.size() || !cells_[col].has_value(); }
  // 0 for NULL or non-numeric text.
  int64_t Int(std::size_t col) const;
  // Empty for NULL.
  std::string Text(std::size_t col) const;
  common::Bytes Blob(std::size_t col) const;

 private:
  std::vector<std::optional<std::string>> cells_;
};

struct SqlResult {
  std::vector<SqlRow> rows;
  int64_t affected = 0;  // rows changed by INSERT/UPDATE/DELETE
};

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;

  virtual Dialect dialect() const = 0;

  // One statement with $1..$n parameters (prepared and cached).
  virtual common::Result<SqlResult> Exec(std::string_view sql,
                                         std::initializer_list<SqlParam> params) = 0;
  // Parameterless statements (DDL, several separated by ';').
  virtual common::Status ExecScript(std::string_view sql) = 0;

  // A write transaction. SQLite: BEGIN IMMEDIATE (takes the single writer
  // lock up front, so the transaction never fails to upgrade later).
  // PostgreSQL: BEGIN (READ COMMITTED).
  virtual common::Status BeginWrite() = 0;
  // Inside a write transaction: serializes audit appends across connections
  // and processes until commit/rollback. SQLite: no-op (BEGIN IMMEDIATE
  // already excludes every other writer). PostgreSQL: pg_advisory_xact_lock.
  virtual common::Status LockAuditChain() = 0;
  // Inside a write transaction: serializes schema migrations. SQLite: no-op.
  virtual common::Status LockMigrations() = 0;
  virtual common::Status Commit() = 0;
  virtual common::Status Rollback() = 0;

  // True once the connection is unusable (lost server); the pool drops it.
  virtual bool broken() const = 0;
};

// `path` is a file name; the file is created if missing. Sets WAL,
// synchronous=FULL, foreign_keys=ON, busy_timeout.
common::Result<std::unique_ptr<SqlConnection>> OpenSqliteConnection(const std::string& path);

// `conninfo` is a libpq connection URI or key=value string. Errors never echo
// it (it may hold a password).
common::Result<std::unique_ptr<SqlConnection>> OpenPostgresConnection(const std::string& conninfo);

}  // namespace agentroot::attestation::store::internal

#endif  // AGENTROOT_ATTESTATION_STORE_SQL_CONNECTION_H_
