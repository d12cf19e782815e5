// The audit log's record format and its offline verification.
//
// Every audit record is hash-chained to its predecessor:
//
//   body  = canonical JSON of {seq, ts, actor, action, subject, decision,
//           reasons, details, prev_hash}          (no "hash" member)
//   hash  = SHA-256(prev_hash || body)            (prev_hash as 32 raw bytes)
//
// where seq starts at 1 and increases by exactly one, the first record's
// prev_hash is 32 zero bytes, and "canonical JSON" is the JSON text with
// object members sorted by name (byte order of their UTF-8), no whitespace,
// non-ASCII characters unescaped, integers in decimal. prev_hash and hash are
// lower-case hex in JSON. An exported line is the canonical JSON of the body
// plus the "hash" member (still sorted), one record per line.
//
// The chain detects a changed, removed, reordered or inserted record anywhere
// before the last one; whoever can rewrite the whole log from some record on
// can recompute the hashes after it, so an auditor keeps the head
// (seq, hash) of each verified export and checks the next export continues
// from it (AuditAnchor).
//
// Audit records name tokens by jti and keys by thumbprint. AppendAudit
// refuses details or reasons that carry a whole JWT or a private JWK.
//
// Thread safety: pure functions.
#ifndef AGENTROOT_ATTESTATION_STORE_AUDIT_CHAIN_H_
#define AGENTROOT_ATTESTATION_STORE_AUDIT_CHAIN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/bytes.h"
#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::attestation::store {

inline constexpr std::size_t kAuditHashSize = 32;

enum class AuditDecision { kAllow, kDeny, kInfo };
std::string_view AuditDecisionName(AuditDecision decision);  // "allow" | "deny" | "info"
common::Result<AuditDecision> ParseAuditDecision(std::string_view name);

// What the caller supplies; the store adds seq, ts and the hashes.
struct AuditRecord {
  std::string actor;    // operator id, agent id, "verifier", ...; non-empty
  std::string action;   // "token.issue", "host.approve", ...; non-empty
  std::string subject;  // what the action is about (agent id, host id, jti)
  AuditDecision decision = AuditDecision::kInfo;
  std::vector<std::string> reasons;
  common::Json details = common::Json::object();  // a JSON object (null = {})
};

// A stored record.
struct AuditEntry {
  int64_t seq = 0;
  int64_t ts = 0;  // Unix seconds from the store's clock at append
  AuditRecord record;
  common::Bytes prev_hash;  // 32 bytes
  common::Bytes hash;       // 32 bytes
};

// The record just before a range of the chain: {0, 32 zero bytes} is the
// genesis (the range starts at seq 1).
struct AuditAnchor {
  int64_t seq = 0;
  common::Bytes hash = common::Bytes(kAuditHashSize, 0);
};

// INVALID_ARGUMENT when the record is unfit for the log: empty actor or
// action, details not an object, non-finite numbers, nesting deeper than 16,
// more than 64 KiB of details, invalid UTF-8, or what looks like a whole JWT
// or a private JWK.
common::Status ValidateAuditRecord(const AuditRecord& record);

// The canonical body (see above) of `entry`, without "hash". Fails as
// ValidateAuditRecord does.
common::Result<std::string> CanonicalAuditBody(const AuditEntry& entry);

// SHA-256(prev_hash || body).
common::Bytes ComputeAuditHash(common::ByteView prev_hash, std::string_view body);

// One exported line (no trailing newline).
common::Result<std::string> AuditEntryToJsonLine(const AuditEntry& entry);
// Parses one exported line and checks its own hash (not its link).
common::Result<AuditEntry> ParseAuditJsonLine(std::string_view line);

struct AuditChainReport {
  // OK, or DATA_LOSS naming the first bad record.
  common::Status status;
  // Records that verified before the first bad one (all of them when OK).
  int64_t records_verified = 0;
  // When not OK: the 1-based line number of the first bad record, and the
  // seq written in it (-1 if the line could not be parsed).
  std::size_t first_bad_line = 0;
  int64_t first_bad_seq = -1;
  // The last good record: keep it to check the next export continues it.
  AuditAnchor head;
};

// Verifies exported JSON lines (one record per line, a final newline
// optional) offline: each line parses strictly, its hash matches its body,
// its seq is the previous seq + 1 and its prev_hash the previous hash,
// starting from `anchor` (default: the genesis). An empty export verifies.
AuditChainReport VerifyAuditChain(std::string_view jsonl, const AuditAnchor& anchor = {});

}  // namespace agentroot::attestation::store

#endif  // AGENTROOT_ATTESTATION_STORE_AUDIT_CHAIN_H_
