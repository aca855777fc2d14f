#pragma once
// Streaming readers for CSV (RFC 4180) and JSON Lines input: one record at a time, from a file
// descriptor or a string, holding only a fixed-size buffer plus the current record. Knows nothing
// of fleetkey.
//
// Both accept a UTF-8 byte order mark at the very start, LF or CRLF line ends (a CR not followed
// by LF is an error), skip empty lines, and name the line a record starts on in every error
// ("line 7: unterminated quoted field"); a read error names the line being read.

#include <fleetkey/util/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetkey::util {

// Buffered reading from a file descriptor (not owned) or from memory.
class InputBuffer
{
public:
  explicit InputBuffer(int fd, size_t buffer_size = size_t{1} << 20);
  // Reads `length` bytes from `offset` with pread(), leaving the descriptor's offset alone, so
  // that several readers can share one file.
  InputBuffer(int fd, uint64_t offset, uint64_t length, size_t buffer_size);
  explicit InputBuffer(std::string_view data);

  // The next byte, or -1 at the end of input; a read error is kept in error().
  int get()
  {
    if (m_pos == m_end && !refill()) {
      return -1;
    }
    return static_cast<unsigned char>(m_data[m_pos++]);
  }
  int peek()
  {
    if (m_pos == m_end && !refill()) {
      return -1;
    }
    return static_cast<unsigned char>(m_data[m_pos]);
  }
  // Appends bytes up to (not including) the next byte in `stops` or the end of input, stopping
  // early once `out` is longer than `max`.
  void append_until(std::string& out, const bool (&stops)[256], size_t max);
  // Copies exactly `n` bytes; false if the input ends first.
  bool read(void* out, size_t n);
  const std::string& error() const { return m_error; }
  uint64_t bytes_read() const { return m_total; }

private:
  bool refill();

  int m_fd = -1;
  std::vector<char> m_buffer;
  const char* m_data = nullptr;
  size_t m_pos = 0;
  size_t m_end = 0;
  uint64_t m_total = 0;
  bool m_positional = false;
  uint64_t m_offset = 0;
  uint64_t m_remaining = 0;
  bool m_eof = false;
  std::string m_error;
};

// RFC 4180 with LF or CRLF line ends: fields separated by commas; a field in double quotes may
// hold commas, line breaks and doubled quotes (""). A quote inside an unquoted field, text after
// a closing quote, a stray CR and an unterminated quoted field are errors.
class CsvReader
{
public:
  static constexpr size_t k_max_record = size_t{1} << 20;

  explicit CsvReader(InputBuffer& input)
      : m_in(input)
  {
  }

  // Reads the next record into `fields` (views valid until the next call). true: a record;
  // false: the end of input. Empty lines are skipped.
  Result<bool> next(std::vector<std::string_view>& fields);
  // The line the last record started on, counting from 1.
  uint64_t line() const { return m_record_line; }
  // After next() failed: true if the input could not be read (an I/O error, not malformed input).
  bool unreadable() const { return m_unreadable; }

private:
  Result<bool> parse(std::vector<std::string_view>& fields);
  // Reads a record's fields into m_record and m_ends, through its line end; `quoted`: whether a
  // field was quoted.
  std::optional<Failure> record(bool& quoted);
  // Reads a quoted field (at its opening quote) into m_record, through its closing quote.
  std::optional<Failure> quoted_field();
  Failure error(uint64_t line, std::string_view what) const;
  // " on line N" when the current line is not the one the record started on.
  std::string on_line() const;

  InputBuffer& m_in;
  std::string m_record;
  std::vector<size_t> m_ends;
  uint64_t m_line = 1;
  uint64_t m_record_line = 0;
  bool m_started = false;
  bool m_unreadable = false;
};

// JSON Lines: one value per line. Returns each line without its line end; lines holding only
// spaces or tabs are skipped. The caller parses the JSON (and must refuse a NUL byte, which
// passes through).
class LineReader
{
public:
  static constexpr size_t k_max_line = size_t{1} << 20;

  explicit LineReader(InputBuffer& input)
      : m_in(input)
  {
  }

  Result<bool> next(std::string_view& line);
  // The line of the last line returned, counting from 1.
  uint64_t line() const { return m_record_line; }
  // After next() failed: true if the input could not be read (an I/O error, not malformed input).
  bool unreadable() const { return m_unreadable; }

private:
  Result<bool> parse(std::string_view& line);

  InputBuffer& m_in;
  std::string m_text;
  uint64_t m_line = 1; // the next line to read
  uint64_t m_record_line = 0;
  bool m_started = false;
  bool m_unreadable = false;
};

} // namespace fleetkey::util
