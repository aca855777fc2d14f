#include <fleetkey/util/csv.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unistd.h>

namespace fleetkey::util {

namespace {

constexpr std::string_view k_bom = "\xEF\xBB\xBF";

struct Stops
{
  bool unquoted[256] = {};
  bool quoted[256] = {};
  bool line[256] = {};
  constexpr Stops()
  {
    for (char c : {',', '\n', '\r', '"'}) {
      unquoted[static_cast<unsigned char>(c)] = true;
    }
    quoted[static_cast<unsigned char>('"')] = true;
    quoted[static_cast<unsigned char>('\n')] = true;
    line[static_cast<unsigned char>('\n')] = true;
    line[static_cast<unsigned char>('\r')] = true;
  }
};
constexpr Stops k_stops;

// Skips a byte order mark at the very start of input; false if the input starts with part of one.
bool skip_bom(InputBuffer& in)
{
  if (in.peek() != 0xEF) {
    return true;
  }
  for (char c : k_bom) {
    if (in.peek() != static_cast<unsigned char>(c)) {
      return false;
    }
    in.get();
  }
  return true;
}

} // namespace

InputBuffer::InputBuffer(int fd, size_t buffer_size)
    : m_fd(fd)
    , m_buffer(buffer_size)
{
  m_data = m_buffer.data();
}

InputBuffer::InputBuffer(int fd, uint64_t offset, uint64_t length, size_t buffer_size)
    : m_fd(fd)
    , m_buffer(buffer_size)
    , m_positional(true)
    , m_offset(offset)
    , m_remaining(length)
{
  m_data = m_buffer.data();
}

InputBuffer::InputBuffer(std::string_view data)
    : m_data(data.data())
    , m_end(data.size())
    , m_total(data.size())
    , m_eof(true)
{
}

bool InputBuffer::refill()
{
  if (m_eof) {
    return false;
  }
  for (;;) {
    const size_t want =
        m_positional ? static_cast<size_t>(std::min<uint64_t>(m_buffer.size(), m_remaining)) : m_buffer.size();
    if (want == 0) {
      m_eof = true;
      m_pos = m_end = 0;
      return false;
    }
    const ssize_t n = m_positional ? ::pread(m_fd, m_buffer.data(), want, static_cast<off_t>(m_offset))
                                   : ::read(m_fd, m_buffer.data(), want);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n < 0) {
        m_error = std::strerror(errno);
      }
      m_eof = true;
      m_pos = m_end = 0;
      return false;
    }
    m_pos = 0;
    m_end = static_cast<size_t>(n);
    m_total += static_cast<uint64_t>(n);
    m_offset += static_cast<uint64_t>(n);
    m_remaining -= m_positional ? static_cast<uint64_t>(n) : 0;
    return true;
  }
}

void InputBuffer::append_until(std::string& out, const bool (&stops)[256], size_t max)
{
  while (out.size() <= max) {
    if (m_pos == m_end && !refill()) {
      return;
    }
    size_t i = m_pos;
    while (i < m_end && !stops[static_cast<unsigned char>(m_data[i])]) {
      ++i;
    }
    out.append(m_data + m_pos, i - m_pos);
    m_pos = i;
    if (i < m_end) {
      return;
    }
  }
}

bool InputBuffer::read(void* out, size_t n)
{
  auto* dst = static_cast<char*>(out);
  while (n > 0) {
    if (m_pos == m_end && !refill()) {
      return false;
    }
    const size_t k = std::min(n, m_end - m_pos);
    std::memcpy(dst, m_data + m_pos, k);
    m_pos += k;
    dst += k;
    n -= k;
  }
  return true;
}

Failure CsvReader::error(uint64_t line, std::string_view what) const
{
  return fail(fmt::format("line {}: {}", line, what));
}

std::string CsvReader::on_line() const
{
  return m_line == m_record_line ? std::string() : fmt::format(" on line {}", m_line);
}

Result<bool> CsvReader::next(std::vector<std::string_view>& fields)
{
  auto r = parse(fields);
  // A read error ends the input early, which the parser may have taken for malformed input.
  m_unreadable = !m_in.error().empty();
  if (m_unreadable) {
    return fail(fmt::format("line {}: cannot read input: {}", m_line, m_in.error()));
  }
  return r;
}

std::optional<Failure> CsvReader::quoted_field()
{
  m_in.get();
  const uint64_t opened = m_line;
  for (;;) {
    m_in.append_until(m_record, k_stops.quoted, k_max_record);
    const int c = m_in.get();
    if (c < 0) {
      return error(m_record_line, fmt::format("unterminated quoted field (opened on line {})", opened));
    }
    if (c == '\n') {
      ++m_line;
      m_record.push_back('\n');
    } else if (m_in.peek() == '"') { // a doubled quote stands for one
      m_in.get();
      m_record.push_back('"');
    } else {
      break;
    }
    if (m_record.size() > k_max_record) {
      return error(m_record_line, "record is longer than 1 MiB");
    }
  }
  const int after = m_in.peek();
  if (after != ',' && after != '\n' && after != '\r' && after >= 0) {
    return error(m_record_line, fmt::format("unexpected text after a closing quote{} (a quote inside a field is "
                                            "written \"\")",
                                            on_line()));
  }
  return std::nullopt;
}

std::optional<Failure> CsvReader::record(bool& quoted)
{
  bool line_end = false;
  while (!line_end) {
    // One field per iteration; the loop ends at a line end or the end of input.
    if (m_in.peek() == '"') {
      quoted = true;
      if (auto failure = quoted_field()) {
        return failure;
      }
    } else {
      m_in.append_until(m_record, k_stops.unquoted, k_max_record);
      if (m_in.peek() == '"') {
        return error(m_record_line, fmt::format("quote inside an unquoted field{} (quote the whole field and double "
                                                "the quote)",
                                                on_line()));
      }
    }
    if (m_record.size() > k_max_record) {
      return error(m_record_line, "record is longer than 1 MiB");
    }
    m_ends.push_back(m_record.size());
    int c = m_in.get();
    if (c == '\r') {
      if (m_in.get() != '\n') {
        return error(m_record_line, fmt::format("carriage return{} not followed by a line feed", on_line()));
      }
      c = '\n';
    }
    if (c == '\n') {
      ++m_line;
      line_end = true;
    } else if (c < 0) {
      line_end = true;
    }
  }
  return std::nullopt;
}

Result<bool> CsvReader::parse(std::vector<std::string_view>& fields)
{
  if (!m_started) {
    m_started = true;
    if (!skip_bom(m_in)) {
      return error(1, "invalid UTF-8 at the start of the input");
    }
  }
  for (;;) {
    m_record.clear();
    m_ends.clear();
    m_record_line = m_line;
    if (m_in.peek() < 0) {
      return false;
    }
    bool quoted = false;
    if (auto failure = record(quoted)) {
      return *failure;
    }
    if (m_ends.size() == 1 && m_ends[0] == 0 && !quoted) {
      // An empty line; `""` alone is a record with one empty field.
      continue;
    }
    break;
  }
  fields.clear();
  size_t start = 0;
  for (size_t end : m_ends) {
    fields.emplace_back(m_record.data() + start, end - start);
    start = end;
  }
  return true;
}

Result<bool> LineReader::next(std::string_view& line)
{
  auto r = parse(line);
  m_unreadable = !m_in.error().empty();
  if (m_unreadable) {
    return fail(fmt::format("line {}: cannot read input: {}", m_line, m_in.error()));
  }
  return r;
}

Result<bool> LineReader::parse(std::string_view& line)
{
  if (!m_started) {
    m_started = true;
    if (!skip_bom(m_in)) {
      return fail("line 1: invalid UTF-8 at the start of the input");
    }
  }
  for (;;) {
    m_record_line = m_line;
    if (m_in.peek() < 0) {
      return false;
    }
    m_text.clear();
    m_in.append_until(m_text, k_stops.line, k_max_line);
    if (m_text.size() > k_max_line) {
      return fail(fmt::format("line {}: line is longer than 1 MiB", m_line));
    }
    if (m_in.get() == '\r' && m_in.get() != '\n') {
      return fail(fmt::format("line {}: carriage return not followed by a line feed", m_line));
    }
    ++m_line;
    if (m_text.find_first_not_of(" \t") == std::string::npos) {
      continue;
    }
    line = m_text;
    return true;
  }
}

} // namespace fleetkey::util
