#include "agentroot/provisioning/output.h"

#include <algorithm>
#include <cctype>

namespace agentroot::provisioning {
namespace {

// Display width: UTF-8 continuation bytes take no column.
std::size_t Width(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

void AppendLine(std::string& out, const std::vector<std::string>& cells, const std::vector<std::size_t>& widths) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size()) line.append(widths[i] - Width(cells[i]) + 2, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out += line;
  out += '\n';
}

}  // namespace

common::Result<OutputFormat> ParseOutputFormat(std::string_view text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  if (text == "csv") return OutputFormat::kCsv;
  return common::InvalidArgumentError("output must be table, json or csv, not '" + std::string(text) + "'");
}

std::string RenderTable(const Table& table) {
  std::string out;
  if (!table.title.empty()) out += table.title + "\n";
  if (table.rows.empty()) {
    if (!table.empty_text.empty()) out += table.empty_text + "\n";
    return out;
  }
  if (table.vertical) {
    std::size_t key_width = 0;
    for (const auto& h : table.headers) key_width = std::max(key_width, Width(h));
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
      if (r > 0) out += "\n";
      for (std::size_t i = 0; i < table.headers.size(); ++i) {
        std::string line = table.headers[i] + ":";
        line.append(key_width - Width(table.headers[i]) + 1, ' ');
        line += i < table.rows[r].size() ? table.rows[r][i] : "";
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
      }
    }
    return out;
  }
  std::vector<std::string> headers;
  for (const auto& h : table.headers) headers.push_back(Upper(h));
  std::vector<std::size_t> widths(headers.size(), 0);
  for (std::size_t i = 0; i < headers.size(); ++i) widths[i] = Width(headers[i]);
  for (const auto& row : table.rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  AppendLine(out, headers, widths);
  for (const auto& row : table.rows) {
    std::vector<std::string> cells = row;
    cells.resize(headers.size());
    AppendLine(out, cells, widths);
  }
  return out;
}

std::string CsvField(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string RenderCsv(const Table& table) {
  std::string out;
  auto record = [&](const std::vector<std::string>& cells, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (i > 0) out += ',';
      if (i < cells.size()) out += CsvField(cells[i]);
    }
    out += "\r\n";
  };
  record(table.headers, table.headers.size());
  for (const auto& row : table.rows) record(row, table.headers.size());
  return out;
}

std::string RenderOutput(OutputFormat format, const common::Json& json, const std::vector<Table>& tables,
                         std::string_view note) {
  switch (format) {
    case OutputFormat::kJson:
      return json.dump(2, ' ', false, common::Json::error_handler_t::replace) + "\n";
    case OutputFormat::kCsv:
      return tables.empty() ? std::string() : RenderCsv(tables.front());
    case OutputFormat::kTable:
      break;
  }
  std::string out;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    if (i > 0) out += "\n";
    out += RenderTable(tables[i]);
  }
  if (!note.empty()) {
    if (!out.empty()) out += "\n";
    out += std::string(note);
    if (out.back() != '\n') out += '\n';
  }
  return out;
}

}  // namespace agentroot::provisioning
