// The streaming CSV (RFC 4180) and JSON Lines readers: quoting, line ends, BOM, empty lines,
// line numbers in errors, and records that straddle buffer refills.
#include <fleetkey/util/csv.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

using namespace fleetkey;

namespace {

struct Parsed
{
  std::vector<std::pair<uint64_t, std::vector<std::string>>> records;
  std::string error;
};

Parsed parse_csv(util::InputBuffer& in)
{
  util::CsvReader reader(in);
  Parsed p;
  std::vector<std::string_view> fields;
  for (;;) {
    auto r = reader.next(fields);
    if (!r) {
      p.error = r.error();
      return p;
    }
    if (!*r) {
      return p;
    }
    p.records.emplace_back(reader.line(), std::vector<std::string>(fields.begin(), fields.end()));
  }
}

Parsed parse_csv(std::string_view text)
{
  util::InputBuffer in(text);
  return parse_csv(in);
}

// Feeds `text` through a pipe with a tiny buffer, so that every token crosses a refill.
Parsed parse_csv_piped(const std::string& text, size_t buffer_size)
{
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  util::InputBuffer in(fds[0], buffer_size);
  auto p = parse_csv(in);
  ::close(fds[0]);
  return p;
}

using Records = std::vector<std::pair<uint64_t, std::vector<std::string>>>;

struct Lines
{
  std::vector<std::pair<uint64_t, std::string>> lines;
  std::string error;
};

Lines read_lines(std::string_view text)
{
  util::InputBuffer in(text);
  util::LineReader reader(in);
  Lines got;
  std::string_view line;
  for (;;) {
    auto r = reader.next(line);
    if (!r) {
      got.error = r.error();
      return got;
    }
    if (!*r) {
      return got;
    }
    got.lines.emplace_back(reader.line(), std::string(line));
  }
}

} // namespace

TEST_CASE("csv: plain records, LF and CRLF, last line without a line end")
{
  const auto p = parse_csv("id,model\r\nSN-1,m\nSN-2,\r\nSN-3,x");
  CHECK(p.error.empty());
  CHECK(p.records == Records{{1, {"id", "model"}}, {2, {"SN-1", "m"}}, {3, {"SN-2", ""}}, {4, {"SN-3", "x"}}});
}

TEST_CASE("csv: quoted fields hold commas, doubled quotes and line breaks")
{
  const auto p = parse_csv("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\r\nlines\",\"\"\nlast,one\n");
  CHECK(p.error.empty());
  CHECK(p.records
        == Records{{1, {"a", "b"}}, {2, {"x, y", "say \"hi\""}}, {3, {"two\r\nlines", ""}}, {5, {"last", "one"}}});
}

TEST_CASE("csv: a BOM at the start is skipped; empty lines are skipped; \"\" alone is a record")
{
  const auto p = parse_csv("\xEF\xBB\xBFid\n\n\r\nSN-1\n\"\"\n\n");
  CHECK(p.error.empty());
  CHECK(p.records == Records{{1, {"id"}}, {4, {"SN-1"}}, {5, {""}}});
  CHECK(parse_csv("").records.empty());
  CHECK(parse_csv("\xEF\xBB\xBF").records.empty());
  CHECK(parse_csv("\xEF\xBB").error == "line 1: invalid UTF-8 at the start of the input");
}

TEST_CASE("csv: empty fields at either end")
{
  CHECK(parse_csv(",\n").records == Records{{1, {"", ""}}});
  CHECK(parse_csv("a,,b,\n").records == Records{{1, {"a", "", "b", ""}}});
}

TEST_CASE("csv: errors name the line")
{
  CHECK(parse_csv("id\nSN-1\n\"open\nmore\n").error == "line 3: unterminated quoted field (opened on line 3)");
  CHECK(parse_csv("id\na\"b\n").error
        == "line 2: quote inside an unquoted field (quote the whole field and double the quote)");
  CHECK(parse_csv("id\n\"a\"b\n").error
        == "line 2: unexpected text after a closing quote (a quote inside a field is written \"\")");
  CHECK(parse_csv("id\na\rb\n").error == "line 2: carriage return not followed by a line feed");
  CHECK(parse_csv("id\na\r").error == "line 2: carriage return not followed by a line feed");
  // After a record that spans lines, numbering continues from the physical line.
  CHECK(parse_csv("id\n\"a\nb\"\n\"c\"d\n").error.rfind("line 4: ", 0) == 0);
}

TEST_CASE("csv: an error in a record spanning lines names the line the record starts on, and where")
{
  CHECK(parse_csv("id,site\nA,\"x\ny\"z\n").error
        == "line 2: unexpected text after a closing quote on line 3 (a quote inside a field is written \"\")");
  CHECK(parse_csv("id,site\n\"A\n\nB\",x\"y\n").error
        == "line 2: quote inside an unquoted field on line 4 (quote the whole field and double the quote)");
  CHECK(parse_csv("id,site\nA,\"x\ny\"\rz\n").error == "line 2: carriage return on line 3 not followed by a line feed");
  CHECK(parse_csv("id,site\nA,\"x\ny\"\r").error == "line 2: carriage return on line 3 not followed by a line feed");
}

TEST_CASE("csv: a record longer than the limit is refused without holding it all")
{
  std::string big = "id\n" + std::string(util::CsvReader::k_max_record + 10, 'x') + "\n";
  CHECK(parse_csv(big).error == "line 2: record is longer than 1 MiB");
  std::string quoted = "id\n\"" + std::string(util::CsvReader::k_max_record + 10, 'x') + "\"\n";
  CHECK(parse_csv(quoted).error == "line 2: record is longer than 1 MiB");
}

TEST_CASE("csv: records straddling buffer refills read the same as from memory")
{
  const std::string text = "\xEF\xBB\xBFid,note\r\nSN-1,\"a, \"\"b\"\"\"\r\n\r\n\"SN\n-2\",plain\nSN-3,\"\"\n";
  const auto expected = parse_csv(text);
  REQUIRE(expected.error.empty());
  for (size_t size : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{7}, size_t{64}}) {
    CAPTURE(size);
    const auto p = parse_csv_piped(text, size);
    CHECK(p.error.empty());
    CHECK(p.records == expected.records);
  }
}

TEST_CASE("json lines: lines without their ends; blank lines skipped; BOM")
{
  util::InputBuffer in(std::string_view("\xEF\xBB\xBF{\"id\":\"a\"}\r\n\n  \t\n{\"id\":\"b\"}"));
  util::LineReader reader(in);
  std::string_view line;
  std::vector<std::pair<uint64_t, std::string>> got;
  for (;;) {
    auto r = reader.next(line);
    REQUIRE(r.ok());
    if (!*r) {
      break;
    }
    got.emplace_back(reader.line(), std::string(line));
  }
  CHECK(got == std::vector<std::pair<uint64_t, std::string>>{{1, "{\"id\":\"a\"}"}, {4, "{\"id\":\"b\"}"}});
}

TEST_CASE("json lines: a CR not followed by LF is an error, as in CSV")
{
  CHECK(read_lines("{\"id\":\r\"A\"}\n{\"id\":\"B\"}\n").error
        == "line 1: carriage return not followed by a line feed");
  CHECK(read_lines("{}\n{}\r\r\n").error == "line 2: carriage return not followed by a line feed");
  CHECK(read_lines("{}\n\n{}\r").error == "line 3: carriage return not followed by a line feed");
  CHECK(read_lines(" \r \n{}\n").error == "line 1: carriage return not followed by a line feed");
  const auto ok = read_lines("{}\r\n\r\n\t\r\n[]\r\n");
  CHECK(ok.error.empty());
  CHECK(ok.lines == std::vector<std::pair<uint64_t, std::string>>{{1, "{}"}, {4, "[]"}});
}

TEST_CASE("readers: a read error is told apart from malformed input")
{
  // read() on a directory fails with EISDIR.
  const int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  {
    util::InputBuffer in(fd);
    util::CsvReader reader(in);
    std::vector<std::string_view> fields;
    const auto r = reader.next(fields);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "line 1: cannot read input: Is a directory");
    CHECK(reader.unreadable());
  }
  {
    util::InputBuffer in(fd);
    util::LineReader reader(in);
    std::string_view line;
    const auto r = reader.next(line);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "line 1: cannot read input: Is a directory");
    CHECK(reader.unreadable());
  }
  ::close(fd);
  util::InputBuffer csv_in(std::string_view("id\n\"open\n"));
  util::CsvReader csv(csv_in);
  std::vector<std::string_view> fields;
  CHECK(csv.next(fields).ok());
  CHECK_FALSE(csv.next(fields).ok());
  CHECK_FALSE(csv.unreadable());
  util::InputBuffer lines_in(std::string_view("{}\r{}\n"));
  util::LineReader lines(lines_in);
  std::string_view line;
  CHECK_FALSE(lines.next(line).ok());
  CHECK_FALSE(lines.unreadable());
}

TEST_CASE("json lines: an overlong line is refused")
{
  const std::string text = "{}\n" + std::string(util::LineReader::k_max_line + 1, ' ') + "x\n";
  util::InputBuffer in(text);
  util::LineReader reader(in);
  std::string_view line;
  CHECK(reader.next(line).ok());
  const auto r = reader.next(line);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "line 2: line is longer than 1 MiB");
}

TEST_CASE("input buffer: read() copies across refills and reports a short input")
{
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], "abcdefghij", 10) == 10);
  ::close(fds[1]);
  util::InputBuffer in(fds[0], 3);
  char out[8] = {};
  CHECK(in.read(out, 7));
  CHECK(std::string(out, 7) == "abcdefg");
  CHECK_FALSE(in.read(out, 4));
  ::close(fds[0]);
}
