// Internal: versioned schema migrations, one numbered SQL script per version
// and backend (the dialects differ in BLOB vs BYTEA, INTEGER vs BIGINT and
// trigger syntax; the tables, columns and constraints are the same).
//
// Thread safety: Migrate serializes itself across connections and processes
// (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock).
#ifndef AGENTROOT_ATTESTATION_STORE_MIGRATIONS_H_
#define AGENTROOT_ATTESTATION_STORE_MIGRATIONS_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "agentroot/common/status.h"
#include "sql_connection.h"

namespace agentroot::attestation::store::internal {

struct Migration {
  int version;
  std::string_view description;
  std::string_view sql;  // parameterless statements separated by ';'
};

std::span<const Migration> Migrations(Dialect dialect);
int LatestVersion();

// Applies every migration above the database's version up to `target`
// (default: the latest) in one transaction, recording each in
// schema_migrations. FAILED_PRECONDITION when the database is newer than the
// latest version this build knows.
common::Status Migrate(SqlConnection& conn, int64_t now, int target = -1);

// The database's version (0 for an empty database).
common::Result<int> CurrentVersion(SqlConnection& conn);

}  // namespace agentroot::attestation::store::internal

#endif  // AGENTROOT_ATTESTATION_STORE_MIGRATIONS_H_
