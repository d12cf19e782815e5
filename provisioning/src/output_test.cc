#include "agentroot/provisioning/output.h"

#include <gtest/gtest.h>

namespace agentroot::provisioning {
namespace {

TEST(Csv, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\rhere"), "\"cr\rhere\"");
}

TEST(Csv, HeaderThenRowsWithCrlf) {
  Table t{"ignored", {"id", "scopes"}, {{"bot", "a,b"}, {"x", ""}}, false, ""};
  EXPECT_EQ(RenderCsv(t), "id,scopes\r\nbot,\"a,b\"\r\nx,\r\n");
}

TEST(TableLayout, AlignedColumnsNoTrailingSpaces) {
  Table t{"", {"name", "status"}, {{"invoice-bot", "active"}, {"x", ""}}, false, ""};
  EXPECT_EQ(RenderTable(t),
            "NAME         STATUS\n"
            "invoice-bot  active\n"
            "x\n");
}

TEST(TableLayout, CountsUtf8Characters) {
  Table t{"", {"a", "b"}, {{"0123456789abcdef…", "x"}, {"y", "z"}}, false, ""};
  EXPECT_EQ(RenderTable(t),
            "A                  B\n"
            "0123456789abcdef…  x\n"
            "y                  z\n");
}

TEST(TableLayout, VerticalTitleAndEmpty) {
  Table v{"Agent", {"id", "status"}, {{"spiffe://d/agent/x", "active"}}, true, ""};
  EXPECT_EQ(RenderTable(v), "Agent\nid:     spiffe://d/agent/x\nstatus: active\n");
  Table empty{"", {"id"}, {}, false, "no hosts"};
  EXPECT_EQ(RenderTable(empty), "no hosts\n");
}

TEST(RenderOutput, OneFormatterForAll) {
  common::Json json = {{"id", "x"}};
  Table first{"", {"id"}, {{"x"}}, false, ""};
  Table second{"More", {"k"}, {{"v"}}, false, ""};
  EXPECT_EQ(RenderOutput(OutputFormat::kJson, json, {first}), "{\n  \"id\": \"x\"\n}\n");
  EXPECT_EQ(RenderOutput(OutputFormat::kCsv, json, {first, second}), "id\r\nx\r\n");
  EXPECT_EQ(RenderOutput(OutputFormat::kTable, json, {first, second}), "ID\nx\n\nMore\nK\nv\n");
  EXPECT_FALSE(ParseOutputFormat("yaml").ok());
  EXPECT_EQ(ParseOutputFormat("csv").value(), OutputFormat::kCsv);
}

}  // namespace
}  // namespace agentroot::provisioning
