// The one output formatter of the `agentroot` CLI.
//
// Every command produces the verifier's JSON answer and a renderer turns it
// into Tables. `--output table` (the default) prints them as aligned text
// columns, `--output csv` as RFC 4180 CSV (the first table only), `--output
// json` prints the JSON itself, pretty-printed.
//
// Thread safety: pure functions over values.
#ifndef AGENTROOT_PROVISIONING_OUTPUT_H_
#define AGENTROOT_PROVISIONING_OUTPUT_H_

#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/json.h"
#include "agentroot/common/status.h"

namespace agentroot::provisioning {

enum class OutputFormat { kTable, kJson, kCsv };

// "table" | "json" | "csv"; INVALID_ARGUMENT otherwise.
common::Result<OutputFormat> ParseOutputFormat(std::string_view text);

struct Table {
  std::string title;  // printed above the table in table mode; "" for none
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;  // each as long as headers
  // Table mode prints one "header: value" line per column instead (for a
  // single object); CSV is unaffected.
  bool vertical = false;
  // Printed in table mode when there are no rows ("no hosts").
  std::string empty_text;
};

// Aligned columns separated by two spaces, a header line in upper case, no
// trailing spaces; every line ends with '\n'.
std::string RenderTable(const Table& table);

// RFC 4180: a header record, then one record per row, CRLF line breaks; a
// field is quoted when it holds a comma, a double quote, CR or LF (quotes
// doubled inside).
std::string RenderCsv(const Table& table);
std::string CsvField(std::string_view field);

// What a command printed: the JSON and the tables rendered from it.
// Table mode: tables separated by a blank line, then `note` if any.
std::string RenderOutput(OutputFormat format, const common::Json& json, const std::vector<Table>& tables,
                         std::string_view note = "");

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_OUTPUT_H_
