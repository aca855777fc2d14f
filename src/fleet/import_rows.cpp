// Pass 1 of `device import`: rows of CSV (a header naming the columns) or JSON Lines (read
// through a SAX parser, so that a repeated member is refused), each checked as `device add`
// checks its arguments, with errors that name the line.
#include "import_rows.hpp"

#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <exception>
#include <unordered_set>

namespace fleetkey::fleet {

namespace {

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

} // namespace

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

RowParser::RowParser(util::InputBuffer& in, ImportFormat format, Source src)
    : m_format(format)
    , m_src(std::move(src))
    , m_csv(in)
    , m_lines(in)
    , m_json(std::make_unique<JsonRowReader>(m_src))
{
}

RowParser::~RowParser() = default;

bool RowParser::next_csv(Row& row)
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

void RowParser::read_header()
{
  m_header_done = true;
  auto r = m_csv.next(m_fields);
  if (!r) {
    throw Error(m_csv.unreadable() ? Exit::failure : Exit::usage, "{}: {}", m_src.name, r.error());
  }
  if (!*r) {
    throw Error(Exit::usage, "{}: no header line (a CSV import starts with a header naming an id column)", m_src.name);
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

bool RowParser::next_jsonl(Row& row)
{
  std::string_view text;
  auto r = m_lines.next(text);
  if (!r) {
    throw Error(m_lines.unreadable() ? Exit::failure : Exit::usage, "{}: {}", m_src.name, r.error());
  }
  if (!*r) {
    return false;
  }
  m_json->read(text, m_lines.line(), row);
  return true;
}

} // namespace fleetkey::fleet
