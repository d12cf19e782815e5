// SQLite driver for SqlConnection.
#include <sqlite3.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "sql_connection.h"

namespace agentroot::attestation::store::internal {
namespace {

using common::Result;
using common::Status;
using common::StatusCode;

constexpr int kBusyTimeoutMs = 10000;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

StatusCode MapSqliteCode(int extended) {
  switch (extended) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return StatusCode::kAlreadyExists;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return StatusCode::kFailedPrecondition;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      return StatusCode::kInvalidArgument;
    case SQLITE_CONSTRAINT_TRIGGER:
      return StatusCode::kPermissionDenied;
    default:
      break;
  }
  switch (extended & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
      return StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StatusCode::kDataLoss;
    case SQLITE_CONSTRAINT:
      return StatusCode::kInvalidArgument;
    default:
      return StatusCode::kInternal;
  }
}

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  std::string message = "sqlite: ";
  message += what;
  message += ": ";
  message += sqlite3_errstr(extended);
  message += " (extended code " + std::to_string(extended) + ")";
  if (db != nullptr) {
    message += ": ";
    message += sqlite3_errmsg(db);
  }
  return Status(MapSqliteCode(extended), std::move(message));
}

class SqliteConnection final : public SqlConnection {
 public:
  explicit SqliteConnection(DbPtr db) : db_(std::move(db)) {}

  Dialect dialect() const override { return Dialect::kSqlite; }

  Result<SqlResult> Exec(std::string_view sql, std::initializer_list<SqlParam> params) override {
    AR_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    // Clears bindings and resets on every exit path.
    struct Resetter {
      sqlite3_stmt* stmt;
      ~Resetter() {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      }
    } resetter{stmt};

    int index = 1;
    for (const SqlParam& param : params) {
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::nullptr_t>(param)) {
        rc = sqlite3_bind_null(stmt, index);
      } else if (const int64_t* i = std::get_if<int64_t>(&param)) {
        rc = sqlite3_bind_int64(stmt, index, *i);
      } else if (const std::string_view* s = std::get_if<std::string_view>(&param)) {
        rc = sqlite3_bind_text64(stmt, index, s->data() != nullptr ? s->data() : "", s->size(),
                                 SQLITE_TRANSIENT, SQLITE_UTF8);
      } else {
        const common::ByteView b = std::get<common::ByteView>(param);
        static const uint8_t kEmpty = 0;
        rc = sqlite3_bind_blob64(stmt, index, b.empty() ? &kEmpty : b.data(), b.size(),
                                 SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return SqliteError(db_.get(), rc, "bind");
      ++index;
    }

    SqlResult result;
    const int columns = sqlite3_column_count(stmt);
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(db_.get(), rc, "step");
      std::vector<std::optional<std::string>> cells;
      cells.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            cells.emplace_back(std::nullopt);
            break;
          case SQLITE_INTEGER:
            cells.emplace_back(std::to_string(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_BLOB: {
            const void* data = sqlite3_column_blob(stmt, c);
            const int size = sqlite3_column_bytes(stmt, c);
            cells.emplace_back(std::string(static_cast<const char*>(data), size));
            break;
          }
          default: {
            const unsigned char* text = sqlite3_column_text(stmt, c);
            const int size = sqlite3_column_bytes(stmt, c);
            cells.emplace_back(std::string(reinterpret_cast<const char*>(text), size));
            break;
          }
        }
      }
      result.rows.emplace_back(std::move(cells));
    }
    if (!sqlite3_stmt_readonly(stmt)) result.affected = sqlite3_changes64(db_.get());
    return result;
  }

  Status ExecScript(std::string_view sql) override {
    const std::string text(sql);
    const int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_.get(), rc, "exec");
    return Status();
  }

  Status BeginWrite() override { return ExecScript("BEGIN IMMEDIATE"); }
  Status LockAuditChain() override { return Status(); }
  Status LockMigrations() override { return Status(); }
  Status Commit() override { return ExecScript("COMMIT"); }
  Status Rollback() override {
    if (sqlite3_get_autocommit(db_.get())) return Status();  // nothing open
    return ExecScript("ROLLBACK");
  }
  bool broken() const override { return false; }
  sqlite3* handle() const { return db_.get(); }

 private:
  Result<sqlite3_stmt*> Prepare(std::string_view sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second.get();
    // $n -> ?n: the SQL text is ours and uses '$' only for parameters.
    std::string text(sql);
    for (char& ch : text) {
      if (ch == '$') ch = '?';
    }
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), text.c_str(), static_cast<int>(text.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_.get(), rc, "prepare");
    StmtPtr stmt(raw);
    sqlite3_stmt* result = stmt.get();
    statements_.emplace(std::string(sql), std::move(stmt));
    return result;
  }

  // Declared first: destroyed after the statements.
  DbPtr db_;
  std::map<std::string, StmtPtr, std::less<>> statements_;
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> OpenSqliteConnection(const std::string& path) {
  if (sqlite3_threadsafe() == 0) {
    return common::FailedPreconditionError("sqlite: library built without thread support");
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return SqliteError(db.get(), rc, "open " + path);
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  auto conn = std::make_unique<SqliteConnection>(std::move(db));
  // journal_mode=WAL is persistent in the file; the others are per connection.
  // Switching a fresh file to WAL needs an exclusive lock, and SQLite answers
  // SQLITE_BUSY there without calling the busy handler when another
  // connection is opening the same file: retry for the busy timeout.
  common::Result<SqlResult> switched = conn->Exec("PRAGMA journal_mode=WAL", {});
  for (int waited_ms = 0; !switched.ok() && waited_ms < kBusyTimeoutMs; waited_ms += 10) {
    const int code = sqlite3_errcode(conn->handle());
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    switched = conn->Exec("PRAGMA journal_mode=WAL", {});
  }
  AR_ASSIGN_OR_RETURN(SqlResult mode, std::move(switched));
  if (mode.rows.empty() || mode.rows[0].Text(0) != "wal") {
    return common::FailedPreconditionError("sqlite: could not enable WAL on " + path);
  }
  AR_RETURN_IF_ERROR(conn->ExecScript("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
  AR_ASSIGN_OR_RETURN(SqlResult fk, conn->Exec("PRAGMA foreign_keys", {}));
  if (fk.rows.empty() || fk.rows[0].Int(0) != 1) {
    return common::FailedPreconditionError("sqlite: foreign keys unavailable");
  }
  return std::unique_ptr<SqlConnection>(std::move(conn));
}

}  // namespace agentroot::attestation::store::internal
