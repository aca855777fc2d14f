#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/csv.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fleetkey::fleet {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t k_batch_rows = 2048;
constexpr size_t k_batches_in_flight = 4;
constexpr uint64_t k_progress_rows = 1 << 16; // validation reports progress this often
// A keys-out line: JSON punctuation and names (~60 bytes), the id escaped (at most 2 x 128),
// base64 of the key (44), the version (10) and the fingerprint (32).
constexpr size_t k_max_key_line = 448;

double since(Clock::time_point t)
{
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool ends_with(std::string_view s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Where errors point: "devices.csv: line 7: ...".
struct Source
{
  std::string name;

  [[noreturn]] void fail(Exit code, uint64_t line, std::string_view why) const
  {
    throw Error(code, "{}: line {}: {}", name, line, why);
  }
};

void check_label_key(const Source& src, uint64_t line, std::string_view key)
{
  const bool ok = !key.empty() && key.size() <= 64
                  && key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
                         == std::string_view::npos;
  if (!ok) {
    src.fail(Exit::usage, line, fmt::format("label key \"{}\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -", key));
  }
}

void check_label_value(const Source& src, uint64_t line, std::string_view key, std::string_view value)
{
  if (value.size() > 256 || !util::is_printable_utf8(value)) {
    src.fail(Exit::usage, line, fmt::format("label \"{}\" value must be at most 256 bytes of printable UTF-8", key));
  }
}

void check_name(const Source& src, uint64_t line, std::string_view value, std::string_view what)
{
  try {
    validate_name(value, what);
  } catch (const Error& e) {
    src.fail(e.code(), line, e.message());
  }
}

// One parsed row; the views are valid until the next row is read.
struct Row
{
  uint64_t line = 0;
  std::string_view id;
  std::optional<std::string_view> model;
  std::string_view labels; // JSON object text; empty means {}
};

// Reads one JSON Lines row through nlohmann's SAX interface, building no DOM: a DOM would keep
// the last of two equal member names, where a repeated member must be refused. The first problem
// in reading order (a repeated label key, found once the labels are sorted, last) is thrown only
// after the whole line has parsed, so that invalid JSON is reported as such wherever it is.
class JsonRowReader
{
public:
  using json = nlohmann::json;

  explicit JsonRowReader(const Source& src)
      : m_src(src)
  {
  }

  // Parses `text` (line `line`) into `row`, whose views stay valid until the next call.
  void read(std::string_view text, uint64_t line, Row& row)
  {
    m_line = line;
    m_problem = nullptr;
    m_depth = 0;
    m_top_object = false;
    m_in_labels = false;
    m_member = Member::other;
    m_seen = 0;
    m_model.reset();
    m_label_count = 0;
    // nlohmann's lexer takes a NUL byte outside a string for the end of input.
    if (text.find('\0') != std::string_view::npos) {
      m_src.fail(Exit::usage, line, "invalid JSON (a NUL byte)");
    }
    // nlohmann skips a byte order mark at the start of what it parses: only the input's first line may.
    if (text.starts_with("\xEF\xBB\xBF")) {
      m_src.fail(Exit::usage, line, "a byte order mark is allowed only at the start of the input");
    }
    if (!json::sax_parse(text.begin(), text.end(), this)) {
      m_src.fail(Exit::usage, line, "invalid JSON");
    }
    if (m_problem) {
      std::rethrow_exception(m_problem);
    }
    if ((m_seen & bit(Member::id)) == 0) {
      m_src.fail(Exit::usage, line, "missing \"id\"");
    }
    row.line = line;
    row.id = m_id;
    row.model.reset();
    if (m_model) {
      row.model = *m_model;
    }
    row.labels = labels();
  }

  // nlohmann's SAX interface. Every event returns true: only a syntax error stops the parser.
  bool null() { return value(Kind::null, nullptr); }
  bool boolean(bool /*value*/) { return value(Kind::other, nullptr); }
  bool number_integer(json::number_integer_t /*value*/) { return value(Kind::other, nullptr); }
  bool number_unsigned(json::number_unsigned_t /*value*/) { return value(Kind::other, nullptr); }
  bool number_float(json::number_float_t /*value*/, const json::string_t& /*text*/)
  {
    return value(Kind::other, nullptr);
  }
  bool string(json::string_t& s) { return value(Kind::string, &s); }
  bool binary(json::binary_t& /*value*/) { return value(Kind::other, nullptr); }
  bool start_object(size_t /*size*/)
  {
    value(Kind::object, nullptr);
    ++m_depth;
    return true;
  }
  bool end_object()
  {
    if (--m_depth == 1) {
      m_in_labels = false;
    }
    return true;
  }
  bool start_array(size_t /*size*/)
  {
    value(Kind::other, nullptr);
    ++m_depth;
    return true;
  }
  bool end_array()
  {
    --m_depth;
    return true;
  }
  bool key(json::string_t& k)
  {
    if (m_depth == 1 && m_top_object) {
      member(k);
    } else if (m_depth == 2 && m_in_labels) {
      label_key(k);
    }
    return true;
  }
  bool parse_error(size_t /*position*/, const std::string& /*token*/, const nlohmann::detail::exception& /*error*/)
  {
    return false;
  }

private:
  enum class Kind { null, string, object, other };
  enum class Member { id, model, labels, other };

  static unsigned bit(Member m) { return 1u << static_cast<unsigned>(m); }

  // Keeps the first problem of the line.
  template<typename Check>
  void check(Check&& f)
  {
    if (m_problem) {
      return;
    }
    try {
      f();
    } catch (const Error&) {
      m_problem = std::current_exception();
    }
  }
  void problem(const std::string& why)
  {
    check([&] { m_src.fail(Exit::usage, m_line, why); });
  }

  void member(const std::string& name)
  {
    m_member = name == "id"       ? Member::id
               : name == "model"  ? Member::model
               : name == "labels" ? Member::labels
                                  : Member::other;
    if (m_member == Member::other) {
      problem(fmt::format("unknown key \"{}\" (expected id, model, labels)", name));
    } else if ((m_seen & bit(m_member)) != 0) {
      problem(fmt::format("member \"{}\" appears twice", name));
    }
    m_seen |= bit(m_member);
  }

  void label_key(const std::string& key)
  {
    check([&] { check_label_key(m_src, m_line, key); });
    if (m_label_count == m_labels_read.size()) {
      m_labels_read.emplace_back();
    }
    m_labels_read[m_label_count++].first = key;
  }

  bool value(Kind kind, const std::string* s)
  {
    if (m_depth == 0) {
      m_top_object = kind == Kind::object;
      if (!m_top_object) {
        problem("expected a JSON object with an \"id\"");
      }
    } else if (m_depth == 1 && m_top_object) {
      member_value(kind, s);
    } else if (m_depth == 2 && m_in_labels) {
      auto& label = m_labels_read[m_label_count - 1]; // (key, value)
      if (kind != Kind::string) {
        problem(fmt::format("label \"{}\" must be a string", label.first));
      } else {
        check([&] { check_label_value(m_src, m_line, label.first, *s); });
        label.second = *s;
      }
    }
    return true;
  }

  void member_value(Kind kind, const std::string* s)
  {
    switch (m_member) {
    case Member::id:
      if (kind != Kind::string) {
        problem("\"id\" must be a string");
      } else {
        check([&] { check_name(m_src, m_line, *s, "device id"); });
        m_id = *s;
      }
      break;
    case Member::model:
      if (kind == Kind::string) {
        check([&] { check_name(m_src, m_line, *s, "model"); });
        m_model = *s;
      } else if (kind != Kind::null) {
        problem("\"model\" must be a string or null");
      }
      break;
    case Member::labels:
      if (kind != Kind::object) {
        problem("\"labels\" must be an object of strings");
      }
      m_in_labels = kind == Kind::object;
      break;
    case Member::other:
      break;
    }
  }

  // The labels as a compact JSON object with sorted keys, as `device add` stores them; empty for {}.
  std::string_view labels()
  {
    m_labels.clear();
    if (m_label_count == 0) {
      return m_labels;
    }
    const auto begin = m_labels_read.begin();
    const auto end = begin + static_cast<std::ptrdiff_t>(m_label_count);
    std::sort(begin, end, [](const auto& a, const auto& b) { return a.first < b.first; });
    const auto twice = std::adjacent_find(begin, end, [](const auto& a, const auto& b) { return a.first == b.first; });
    if (twice != end) {
      m_src.fail(Exit::usage, m_line, fmt::format("label \"{}\" appears twice", twice->first));
    }
    for (auto it = begin; it != end; ++it) {
      m_labels += it == begin ? "{" : ",";
      // Printable text (checked): escaped exactly as nlohmann::json::dump() does.
      util::append_json_string(m_labels, it->first);
      m_labels.push_back(':');
      util::append_json_string(m_labels, it->second);
    }
    m_labels.push_back('}');
    return m_labels;
  }

  const Source& m_src;
  uint64_t m_line = 0;
  std::exception_ptr m_problem;
  int m_depth = 0;
  bool m_top_object = false;
  bool m_in_labels = false;
  Member m_member = Member::other;
  unsigned m_seen = 0;
  std::string m_id;
  std::optional<std::string> m_model;
  std::vector<std::pair<std::string, std::string>> m_labels_read; // reused: the first m_label_count
  size_t m_label_count = 0;
  std::string m_labels;
};

// Reads and validates rows of either format.
class RowParser
{
public:
  RowParser(util::InputBuffer& in, ImportFormat format, Source src)
      : m_format(format)
      , m_src(std::move(src))
      , m_csv(in)
      , m_lines(in)
  {
  }

  bool next(Row& row) { return m_format == ImportFormat::csv ? next_csv(row) : next_jsonl(row); }

private:
  bool next_csv(Row& row)
  {
    if (!m_header_done) {
      read_header();
    }
    auto r = m_csv.next(m_fields);
    if (!r) {
      throw Error(m_csv.unreadable() ? Exit::failure : Exit::usage, "{}: {}", m_src.name, r.error());
    }
    if (!*r) {
      return false;
    }
    const uint64_t line = m_csv.line();
    if (m_fields.size() != m_columns) {
      m_src.fail(Exit::usage, line, fmt::format("{} fields, but the header has {}", m_fields.size(), m_columns));
    }
    row.line = line;
    row.id = m_fields[m_id_col];
    check_name(m_src, line, row.id, "device id");
    row.model.reset();
    if (m_model_col >= 0 && !m_fields[static_cast<size_t>(m_model_col)].empty()) {
      row.model = m_fields[static_cast<size_t>(m_model_col)];
      check_name(m_src, line, *row.model, "model");
    }
    m_labels.clear();
    for (const auto& [key, col] : m_label_cols) {
      const std::string_view value = m_fields[col];
      if (value.empty()) {
        continue;
      }
      check_label_value(m_src, line, key, value);
      m_labels += m_labels.empty() ? "{" : ",";
      // For printable text (checked above) this escapes exactly as nlohmann::json::dump() does, so
      // imported labels are stored byte for byte as `device add` stores them.
      util::append_json_string(m_labels, key);
      m_labels.push_back(':');
      util::append_json_string(m_labels, value);
    }
    if (!m_labels.empty()) {
      m_labels.push_back('}');
    }
    row.labels = m_labels;
    return true;
  }

  void read_header()
  {
    m_header_done = true;
    auto r = m_csv.next(m_fields);
    if (!r) {
      throw Error(m_csv.unreadable() ? Exit::failure : Exit::usage, "{}: {}", m_src.name, r.error());
    }
    if (!*r) {
      throw Error(Exit::usage, "{}: no header line (a CSV import starts with a header naming an id column)",
                  m_src.name);
    }
    const uint64_t line = m_csv.line();
    m_columns = m_fields.size();
    std::unordered_set<std::string_view> seen;
    bool have_id = false;
    for (size_t i = 0; i < m_fields.size(); ++i) {
      const std::string_view name = m_fields[i];
      if (!seen.insert(name).second) {
        m_src.fail(Exit::usage, line, fmt::format("column \"{}\" appears twice in the header", name));
      }
      if (name == "id") {
        m_id_col = i;
        have_id = true;
      } else if (name == "model") {
        m_model_col = static_cast<int>(i);
      } else {
        check_label_key(m_src, line, name);
        m_label_cols.emplace_back(std::string(name), i);
      }
    }
    if (!have_id) {
      m_src.fail(Exit::usage, line, "the header has no \"id\" column");
    }
    // Stored labels are JSON objects with sorted keys, as nlohmann::json writes them.
    std::sort(m_label_cols.begin(), m_label_cols.end());
  }

  bool next_jsonl(Row& row)
  {
    std::string_view text;
    auto r = m_lines.next(text);
    if (!r) {
      throw Error(m_lines.unreadable() ? Exit::failure : Exit::usage, "{}: {}", m_src.name, r.error());
    }
    if (!*r) {
      return false;
    }
    m_json.read(text, m_lines.line(), row);
    return true;
  }

  ImportFormat m_format;
  Source m_src;
  util::CsvReader m_csv;
  util::LineReader m_lines;
  std::vector<std::string_view> m_fields;
  bool m_header_done = false;
  size_t m_columns = 0;
  size_t m_id_col = 0;
  int m_model_col = -1;
  std::vector<std::pair<std::string, size_t>> m_label_cols;
  std::string m_labels;
  JsonRowReader m_json{m_src};
};

// An unlinked temporary file in $TMPDIR: it vanishes with the process, even on SIGKILL.
util::Fd temp_file()
{
  const char* env = std::getenv("TMPDIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : "/tmp";
  util::Fd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    std::string tmpl = dir + "/fleetkey-import.XXXXXX";
    fd = util::Fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (fd.valid()) {
      ::unlink(tmpl.c_str());
    }
  }
  if (!fd.valid()) {
    throw Error(Exit::failure, "cannot create a temporary file in {}: {}", dir, std::strerror(errno));
  }
  return fd;
}

void write_all(int fd, std::string_view data)
{
  if (!util::write_fully(fd, data)) {
    throw Error(Exit::failure, "cannot write the temporary file of the import: {}", std::strerror(errno));
  }
}

// Where one spilled row's strings are, in an arena the reader fills.
struct Offsets
{
  uint64_t line = 0;
  size_t id = 0, id_len = 0;
  size_t model = 0, model_len = 0;
  bool has_model = false;
  size_t labels = 0, labels_len = 0;
};

// A spilled row: u64 line, u16 id length, id, u16 model length + 1 (0: no model), model,
// u32 labels length (0: {}), labels; integers in host order. The record is appended to `arena`.
bool read_record(util::InputBuffer& in, std::string& arena, Offsets& o)
{
  const auto take = [&](size_t n) {
    const size_t at = arena.size();
    arena.resize(at + n);
    if (!in.read(arena.data() + at, n)) {
      throw Error(Exit::failure, "the temporary file of the import is truncated");
    }
    return at;
  };
  uint64_t line = 0;
  if (!in.read(&line, sizeof line)) {
    return false;
  }
  arena.append(reinterpret_cast<const char*>(&line), sizeof line);
  o.line = line;
  // take() may move the arena: read each length only after it returns.
  uint16_t id_len = 0;
  size_t at = take(sizeof id_len);
  std::memcpy(&id_len, arena.data() + at, sizeof id_len);
  o.id_len = id_len;
  o.id = take(id_len);
  uint16_t model_len = 0;
  at = take(sizeof model_len);
  std::memcpy(&model_len, arena.data() + at, sizeof model_len);
  o.has_model = model_len > 0;
  o.model_len = o.has_model ? model_len - 1u : 0;
  o.model = take(o.model_len);
  uint32_t labels_len = 0;
  at = take(sizeof labels_len);
  std::memcpy(&labels_len, arena.data() + at, sizeof labels_len);
  o.labels_len = labels_len;
  o.labels = take(o.labels_len);
  return true;
}

// Parsed rows between the passes, so that memory stays flat whatever the input size and stdin
// need not be read twice. The rows come back in ascending byte order of id, the order SQLite's
// WITHOUT ROWID table inserts fastest (random order would touch the whole tree once the table
// outgrows the page cache): sorted input is written through as it comes; otherwise rows are
// sorted in runs of ImportOptions::sort_run_bytes and the runs merged into a second file. In sorted order a
// repeated id is always next to its first occurrence, so duplicates need no hash set.
class Spill
{
public:
  Spill(Source src, size_t run_bytes)
      : m_src(std::move(src))
      , m_fd(temp_file())
      , m_run_bytes(run_bytes)
  {
  }

  void write(const Row& row)
  {
    if (m_sorted && m_dup_line != 0) {
      // A repeat in sorted input is the earliest there can be: finish() reports it once the rest
      // of the input has been checked for malformed rows, and nothing more need be spilled.
      ++m_rows;
      return;
    }
    if (m_sorted) {
      const int order = m_rows == 0 ? 1 : row.id.compare(m_prev);
      if (order == 0) {
        duplicate(row.id, m_prev_line, row.line);
        ++m_rows;
        return;
      }
      if (order < 0) {
        m_sorted = false;
      } else {
        m_prev.assign(row.id);
        m_prev_line = row.line;
      }
    }
    ++m_rows;
    const auto offset = static_cast<uint32_t>(m_run.size());
    put(row.line);
    put(static_cast<uint16_t>(row.id.size()));
    m_run.append(row.id);
    put(static_cast<uint16_t>(row.model ? row.model->size() + 1 : 0));
    if (row.model) {
      m_run.append(*row.model);
    }
    put(static_cast<uint32_t>(row.labels.size()));
    m_run.append(row.labels);
    m_index.push_back({offset, static_cast<uint32_t>(m_run.size() - offset)});
    // While the input is sorted, everything written so far is one run: flush it often.
    if (m_run.size() >= (m_sorted ? std::min(m_run_bytes, k_write_bytes) : m_run_bytes)) {
      flush_run();
    }
  }

  // Ends writing, merges the runs (throwing for the earliest repeated id) and returns the reader
  // of the rows in id order.
  util::InputBuffer& finish()
  {
    if (m_sorted && m_dup_line != 0) {
      report_duplicate();
    }
    flush_run();
    std::string().swap(m_run);
    std::vector<Entry>().swap(m_index);
    if (!m_sorted) {
      merge();
    }
    const int fd = m_sorted ? m_fd.get() : m_merged.get();
    if (::lseek(fd, 0, SEEK_SET) != 0) {
      throw Error(Exit::failure, "cannot read the temporary file back: {}", std::strerror(errno));
    }
    m_reader = std::make_unique<util::InputBuffer>(fd);
    return *m_reader;
  }

  uint64_t rows() const { return m_rows; }

private:
  static constexpr size_t k_write_bytes = size_t{1} << 20;

  struct Entry
  {
    uint32_t offset;
    uint32_t size;
  };

  template<typename T>
  void put(T v)
  {
    m_run.append(reinterpret_cast<const char*>(&v), sizeof v);
  }

  std::string_view id_of(const Entry& e) const
  {
    uint16_t n = 0;
    std::memcpy(&n, m_run.data() + e.offset + 8, sizeof n);
    return {m_run.data() + e.offset + 10, n};
  }

  // Keeps the repeat with the earliest second line, the one a reader of the input meets first.
  void duplicate(std::string_view id, uint64_t first, uint64_t second)
  {
    if (m_dup_line == 0 || second < m_dup_line) {
      m_dup_line = second;
      m_dup_first = first;
      m_dup_id.assign(id);
    }
  }

  void flush_run()
  {
    if (m_index.empty()) {
      return;
    }
    if (!m_sorted) {
      // Equal ids keep input order (offsets grow with lines), so the merge sees them in order.
      std::sort(m_index.begin(), m_index.end(), [this](const Entry& a, const Entry& b) {
        const int c = id_of(a).compare(id_of(b));
        return c != 0 ? c < 0 : a.offset < b.offset;
      });
    }
    if (m_sorted) {
      write_all(m_fd.get(), m_run);
    } else {
      std::string out;
      for (const Entry& e : m_index) {
        out.append(m_run.data() + e.offset, e.size);
        if (out.size() >= k_write_bytes) {
          write_all(m_fd.get(), out);
          out.clear();
        }
      }
      write_all(m_fd.get(), out);
    }
    // Sorted so far: the rows continue the previous run.
    if (m_sorted && !m_runs.empty()) {
      m_runs.back().second += m_run.size();
    } else {
      m_runs.push_back({m_size, m_run.size()});
    }
    m_size += m_run.size();
    m_run.clear();
    m_index.clear();
  }

  struct RunReader
  {
    std::unique_ptr<util::InputBuffer> in;
    std::string record;
    Offsets o;
    size_t run = 0;
    std::string_view id() const { return {record.data() + o.id, o.id_len}; }
    bool next()
    {
      record.clear();
      return read_record(*in, record, o);
    }
  };

  void merge()
  {
    m_merged = temp_file();
    std::vector<RunReader> readers(m_runs.size());
    for (size_t i = 0; i < m_runs.size(); ++i) {
      readers[i].in =
          std::make_unique<util::InputBuffer>(m_fd.get(), m_runs[i].first, m_runs[i].second, size_t{1} << 18);
      readers[i].run = i;
    }
    // A min-heap of run heads by (id, run): runs hold earlier lines first.
    const auto later = [](const RunReader* a, const RunReader* b) {
      const int c = a->id().compare(b->id());
      return c != 0 ? c > 0 : a->run > b->run;
    };
    std::vector<RunReader*> heap;
    for (auto& r : readers) {
      if (r.next()) {
        heap.push_back(&r);
      }
    }
    std::make_heap(heap.begin(), heap.end(), later);
    std::string out;
    std::string last_id;
    uint64_t last_line = 0;
    bool any = false;
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      RunReader* r = heap.back();
      if (any && r->id() == last_id) {
        duplicate(last_id, last_line, r->o.line);
      } else {
        last_id.assign(r->id());
        last_line = r->o.line;
        any = true;
      }
      out.append(r->record);
      if (out.size() >= (size_t{1} << 20)) {
        write_all(m_merged.get(), out);
        out.clear();
      }
      if (r->next()) {
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
    write_all(m_merged.get(), out);
    if (m_dup_line != 0) {
      report_duplicate();
    }
  }

  [[noreturn]] void report_duplicate() const
  {
    m_src.fail(Exit::usage, m_dup_line, fmt::format("duplicate id \"{}\" (first on line {})", m_dup_id, m_dup_first));
  }

  Source m_src;
  util::Fd m_fd;
  util::Fd m_merged;
  size_t m_run_bytes;
  std::string m_run;
  std::vector<Entry> m_index;
  std::vector<std::pair<uint64_t, uint64_t>> m_runs; // offset and size in m_fd
  uint64_t m_size = 0;
  uint64_t m_rows = 0;
  bool m_sorted = true;
  std::string m_prev;
  uint64_t m_prev_line = 0;
  uint64_t m_dup_line = 0;
  uint64_t m_dup_first = 0;
  std::string m_dup_id;
  std::unique_ptr<util::InputBuffer> m_reader;
};

// Pass 1: reads, validates and spills every row; returns the reader of the rows in id order.
util::InputBuffer& validate_input(util::InputBuffer& in, ImportFormat format, const Source& src, Spill& spill,
                                  uint64_t input_size, const ProgressFn& progress)
{
  RowParser parser(in, format, src);
  const auto start = Clock::now();
  Row row;
  while (parser.next(row)) {
    spill.write(row);
    if (spill.rows() % k_progress_rows == 0 && progress) {
      progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
    }
  }
  if (progress) {
    progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
  }
  return spill.finish();
}

// Rows read back from the spill with their derived keys, handed from the worker to the inserter.
struct Batch
{
  std::string arena;
  std::vector<Offsets> offsets;
  std::string fingerprints; // 32 hex digits a row
  crypto::Secret keys{k_batch_rows * crypto::k_key_len};
  crypto::Secret text{k_batch_rows * k_max_key_line}; // --keys-out lines
  std::vector<size_t> line_ends;
  std::vector<std::string_view> ids; // into arena, for MasterDeriver::device_keys
  bool last = false;

  size_t size() const { return offsets.size(); }
  std::string_view id(size_t i) const { return {arena.data() + offsets[i].id, offsets[i].id_len}; }
};

void append_key_line(Batch& b, size_t i, size_t& at, bool csv, uint32_t key_version)
{
  char* out = reinterpret_cast<char*>(b.text.data());
  const auto put = [&](std::string_view s) {
    std::memcpy(out + at, s.data(), s.size());
    at += s.size();
  };
  const std::string_view id = b.id(i);
  char b64[sodium_base64_ENCODED_LEN(crypto::k_key_len, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, b.keys.data() + i * crypto::k_key_len, crypto::k_key_len,
                    sodium_base64_VARIANT_ORIGINAL);
  char version[16];
  const auto vlen = fmt::format_to_n(version, sizeof version, "{}", key_version).size;
  const std::string_view fp(b.fingerprints.data() + i * 32, 32);
  if (csv) {
    // Ids are printable: only a comma or a quote makes the field need quoting.
    if (id.find_first_of(",\"") == std::string_view::npos) {
      put(id);
    } else {
      put("\"");
      for (char c : id) {
        put(c == '"' ? std::string_view("\"\"") : std::string_view(&c, 1));
      }
      put("\"");
    }
    put(",");
    put(b64);
    put(",");
    put({version, vlen});
    put(",");
    put(fp);
    put("\n");
  } else {
    put("{\"id\":\"");
    for (char c : id) {
      if (c == '"' || c == '\\') {
        put("\\");
      }
      put(std::string_view(&c, 1));
    }
    put("\",\"key\":\"");
    put(b64);
    put("\",\"key_version\":");
    put({version, vlen});
    put(",\"fingerprint\":\"");
    put(fp);
    put("\"}\n");
  }
  sodium_memzero(b64, sizeof b64);
}

enum class KeysOut { none, jsonl, csv };

// The audit digest: SHA-256 over each imported id followed by a line feed.
void hash_id(crypto_hash_sha256_state& digest, std::string_view id)
{
  crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>(id.data()), id.size());
  crypto_hash_sha256_update(&digest, reinterpret_cast<const uint8_t*>("\n"), 1);
}

// Pass 2's producer: reads the spill in batches and derives K_dev and its fingerprint for each
// row on its own thread, at most k_batches_in_flight batches ahead of the inserter.
class Deriver
{
public:
  // Without ids to skip (the registry held no device), every row is imported and the worker
  // also feeds the digest and the keys file, leaving the inserting thread only SQLite's work.
  struct Direct
  {
    crypto_hash_sha256_state* digest = nullptr;
    util::AtomicFile* out = nullptr;
  };

  Deriver(util::InputBuffer& spill, const crypto::MasterKey& mk, KeysOut keys_out, std::optional<Direct> direct)
      : m_spill(spill)
      , m_key(mk)
      , m_version(mk.version)
      , m_keys_out(keys_out)
      , m_direct(direct)
  {
    for (size_t i = 0; i < k_batches_in_flight; ++i) {
      m_free.push_back(std::make_unique<Batch>());
    }
    m_worker.enqueue([this] { run(); });
  }

  Deriver(const Deriver&) = delete;
  Deriver& operator=(const Deriver&) = delete;

  ~Deriver()
  {
    {
      std::lock_guard lock(m_mutex);
      m_cancel = true;
    }
    m_cv.notify_all();
    m_worker.shut_down();
  }

  // The next batch in input order; rethrows the worker's error.
  std::unique_ptr<Batch> pop()
  {
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [this] { return !m_ready.empty() || m_error; });
    if (m_ready.empty()) {
      std::rethrow_exception(m_error);
    }
    auto b = std::move(m_ready.front());
    m_ready.pop_front();
    return b;
  }

  void recycle(std::unique_ptr<Batch> b)
  {
    {
      std::lock_guard lock(m_mutex);
      m_free.push_back(std::move(b));
    }
    m_cv.notify_all();
  }

private:
  void run()
  {
    try {
      const crypto::MasterDeriver deriver(m_key);
      for (bool last = false; !last;) {
        std::unique_ptr<Batch> b;
        {
          std::unique_lock lock(m_mutex);
          m_cv.wait(lock, [this] { return !m_free.empty() || m_cancel; });
          if (m_cancel) {
            return;
          }
          b = std::move(m_free.back());
          m_free.pop_back();
        }
        fill(*b, deriver);
        if (m_direct) {
          for (size_t i = 0; i < b->size(); ++i) {
            hash_id(*m_direct->digest, b->id(i));
          }
          if (m_direct->out != nullptr && b->size() > 0) {
            m_direct->out->write(std::string_view(reinterpret_cast<const char*>(b->text.data()), b->line_ends.back()));
          }
        }
        last = b->last;
        {
          std::lock_guard lock(m_mutex);
          m_ready.push_back(std::move(b));
        }
        m_cv.notify_all();
      }
    } catch (...) {
      {
        std::lock_guard lock(m_mutex);
        m_error = std::current_exception();
      }
      m_cv.notify_all();
    }
  }

  void fill(Batch& b, const crypto::MasterDeriver& deriver)
  {
    b.arena.clear();
    b.offsets.clear();
    b.line_ends.clear();
    Offsets o;
    while (b.offsets.size() < k_batch_rows && read_record(m_spill, b.arena, o)) {
      b.offsets.push_back(o);
    }
    b.last = b.offsets.size() < k_batch_rows;
    b.fingerprints.resize(b.size() * 32);
    // The whole batch in one call: one request when the agent holds the key.
    b.ids.clear();
    for (size_t i = 0; i < b.size(); ++i) {
      b.ids.push_back(b.id(i));
    }
    deriver.device_keys(b.ids, std::span(b.keys.data(), b.size() * crypto::k_key_len));
    size_t at = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      const std::span<uint8_t, crypto::k_key_len> key(b.keys.data() + i * crypto::k_key_len, crypto::k_key_len);
      uint8_t fp[16];
      crypto::fingerprint(key, fp);
      char hex[33];
      sodium_bin2hex(hex, sizeof hex, fp, sizeof fp);
      std::memcpy(b.fingerprints.data() + i * 32, hex, 32);
      if (m_keys_out != KeysOut::none) {
        append_key_line(b, i, at, m_keys_out == KeysOut::csv, m_version);
        b.line_ends.push_back(at);
      }
    }
  }

  util::InputBuffer& m_spill;
  const crypto::MasterKey& m_key;
  uint32_t m_version;
  KeysOut m_keys_out;
  std::optional<Direct> m_direct;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::unique_ptr<Batch>> m_ready;
  std::vector<std::unique_ptr<Batch>> m_free;
  std::exception_ptr m_error;
  bool m_cancel = false;
  util::ThreadPool m_worker{1}; // last: starts after, and is joined before, the members above go
};

} // namespace

ImportFormat parse_import_format(std::string_view name)
{
  if (name == "csv") {
    return ImportFormat::csv;
  }
  if (name == "jsonl" || name == "ndjson") {
    return ImportFormat::jsonl;
  }
  throw Error(Exit::usage, "unknown import format \"{}\" (csv or jsonl)", name);
}

ImportFormat import_format_for(std::string_view source, const std::optional<ImportFormat>& format)
{
  if (format) {
    return *format;
  }
  if (source == "-") {
    throw Error(Exit::usage, "reading stdin needs --format csv or --format jsonl");
  }
  if (ends_with(source, ".csv")) {
    return ImportFormat::csv;
  }
  if (ends_with(source, ".jsonl") || ends_with(source, ".ndjson")) {
    return ImportFormat::jsonl;
  }
  throw Error(Exit::usage, "cannot tell the format of {} from its name (.csv, .jsonl, .ndjson): use --format", source);
}

void read_import_rows(std::string_view text, ImportFormat format, const ImportRowFn& fn)
{
  util::InputBuffer in(text);
  RowParser parser(in, format, Source{"input"});
  Row row;
  while (parser.next(row)) {
    fn(row.line, row.id, row.model, row.labels.empty() ? std::string_view("{}") : row.labels);
  }
}

ImportSummary import_devices(Fleet& fleet, const ImportOptions& options, const ProgressFn& progress)
{
  const auto start = Clock::now();
  const ImportFormat format = import_format_for(options.source, options.format);
  const bool from_stdin = options.source == "-";
  const Source src{from_stdin ? std::string("stdin") : options.source};

  KeysOut keys_out = KeysOut::none;
  if (options.keys_out) {
    if (*options.keys_out == "-" || options.keys_out->empty()) {
      throw Error(Exit::usage, "--keys-out needs a file name: keys are written to a new file created 0600");
    }
    keys_out = ends_with(*options.keys_out, ".csv") ? KeysOut::csv : KeysOut::jsonl;
    if (util::exists(*options.keys_out)) {
      throw Error(Exit::conflict, "--keys-out {} already exists (keys files are never overwritten)", *options.keys_out)
          .with_reason("file_exists");
    }
  }

  // Open everything that can fail for reasons other than the input first: the registry, the
  // key (which may ask for a passphrase) and the keys file.
  auto& reg = fleet.registry();
  fleet.keyring();

  util::Fd file;
  int fd = STDIN_FILENO;
  uint64_t input_size = 0;
  if (!from_stdin) {
    file = util::Fd(::open(options.source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.valid()) {
      throw Error(errno == ENOENT ? Exit::not_found : Exit::failure, "cannot read {}: {}", options.source,
                  std::strerror(errno));
    }
    fd = file.get();
    struct stat st
    {
    };
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      input_size = static_cast<uint64_t>(st.st_size);
    }
  }
  std::optional<util::AtomicFile> out;
  if (options.keys_out) {
    out.emplace(*options.keys_out, util::Overwrite::no);
    if (keys_out == KeysOut::csv) {
      out->write(std::string_view("id,key,key_version,fingerprint\n"));
    }
  }

  // Pass 1: everything is validated before the registry is touched.
  Spill spill(src, std::max<size_t>(options.sort_run_bytes, 4096));
  util::InputBuffer* sorted = nullptr;
  {
    util::InputBuffer in(fd);
    sorted = &validate_input(in, format, src, spill, input_size, progress);
  }
  const uint64_t rows = spill.rows();
  file.close();
  const double validated_at = since(start);

  ImportSummary summary;
  summary.rows = rows;
  summary.keys_out = options.keys_out;

  // Pass 2: one transaction. BEGIN IMMEDIATE waits for other stations' imports to finish.
  registry::Transaction tx(reg);
  // Inside the transaction: a rotate or retire that finished meanwhile is seen, not refused.
  const crypto::MasterKey& mk = fleet.current_master_key();
  summary.key_version = mk.version;
  const auto inserter = reg.bulk_insert(mk.version, util::format_time(util::unix_now()));
  registry::DeviceBulkInsert& insert = *inserter;
  const bool probe = !insert.registry_was_empty();
  crypto_hash_sha256_state digest;
  crypto_hash_sha256_init(&digest);
  const auto import_start = Clock::now();
  {
    std::optional<Deriver::Direct> direct;
    if (!probe) {
      direct = Deriver::Direct{&digest, out ? &*out : nullptr};
    }
    Deriver deriver(*sorted, mk, keys_out, direct);
    // Rows whose key line stays out of the keys file: skipped devices whose registered key is not the
    // one derived here (another master version) or that are revoked. A skipped active device under this
    // version keeps its line, so that a re-run after a kill between commit and keys file completes it.
    std::vector<bool> no_key;
    for (bool last = false; !last;) {
      auto b = deriver.pop();
      last = b->last;
      no_key.assign(b->size(), false);
      for (size_t i = 0; i < b->size(); ++i) {
        const auto& o = b->offsets[i];
        const std::string_view id = b->id(i);
        const std::string_view fingerprint(b->fingerprints.data() + i * 32, 32);
        if (const auto existing = probe ? insert.registered(id) : std::nullopt) {
          if (options.skip_existing == SkipExisting::no) {
            src.fail(Exit::conflict, o.line,
                     fmt::format("device \"{}\" is already registered (use --skip-existing to skip it)", id));
          }
          no_key[i] = !existing->active || existing->fingerprint != fingerprint;
          ++summary.skipped;
          continue;
        }
        registry::BulkDevice d;
        d.id = id;
        if (o.has_model) {
          d.model = std::string_view(b->arena.data() + o.model, o.model_len);
        }
        d.labels =
            o.labels_len == 0 ? std::string_view("{}") : std::string_view(b->arena.data() + o.labels, o.labels_len);
        d.fingerprint = fingerprint;
        insert.add(d);
        if (probe) {
          hash_id(digest, id);
        }
      }
      insert.flush();
      if (out && probe) {
        // Runs of kept rows' lines, in input order.
        const auto* text = reinterpret_cast<const char*>(b->text.data());
        size_t begin = 0;
        for (size_t i = 0; i < b->size(); ++i) {
          if (no_key[i]) {
            const size_t line_begin = i == 0 ? 0 : b->line_ends[i - 1];
            out->write(std::string_view(text + begin, line_begin - begin));
            begin = b->line_ends[i];
          }
        }
        const size_t end = b->size() == 0 ? 0 : b->line_ends.back();
        out->write(std::string_view(text + begin, end - begin));
      }
      deriver.recycle(std::move(b));
      if (progress) {
        progress({ImportProgress::Phase::importing, insert.inserted() + summary.skipped, rows, since(import_start)});
      }
    }
  }
  insert.finish();
  const double inserted_at = since(start);
  summary.imported = insert.inserted();
  uint8_t hash[32];
  crypto_hash_sha256_final(&digest, hash);
  summary.ids_sha256 = util::to_hex(hash);
  if (summary.imported > 0) {
    reg.audit("device.import", src.name,
              {{"count", summary.imported},
               {"skipped", summary.skipped},
               {"key_version", mk.version},
               {"ids_sha256", summary.ids_sha256},
               {"format", format == ImportFormat::csv ? "csv" : "jsonl"}});
  }
  tx.commit();
  // The keys file appears only once the registry holds every device it names.
  if (out) {
    out->commit();
  }
  summary.seconds = since(start);
  summary.validate_seconds = validated_at;
  summary.insert_seconds = inserted_at - validated_at;
  summary.commit_seconds = summary.seconds - inserted_at;
  return summary;
}

} // namespace fleetkey::fleet
