#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/registry/import.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/csv.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
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
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace fleetkey::fleet {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t k_batch_rows = 2048;
constexpr size_t k_batches_in_flight = 4;
constexpr uint64_t k_progress_rows = 1 << 16; // validation reports progress this often
// A keys-out line: JSON punctuation and names (~60 bytes), the id escaped (at most 2 x 128),
// base64 of the key (44), the version (10) and the fingerprint (32).
constexpr size_t k_max_key_line = 448;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool ends_with(std::string_view s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Quotes and escapes as nlohmann::json::dump() does for printable text, so that imported labels
// are stored byte for byte as `device add` stores them.
void append_json_string(std::string& out, std::string_view s)
{
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  out.push_back('"');
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
    src.fail(e.code(), line, e.what());
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

// Reads and validates rows of either format.
class RowParser
{
public:
  RowParser(util::InputBuffer& in, ImportFormat format, Source src)
    : m_format(format), m_src(std::move(src)), m_csv(in), m_lines(in)
  {
  }

  bool next(Row& row)
  {
    return m_format == ImportFormat::csv ? next_csv(row) : next_jsonl(row);
  }

private:
  bool next_csv(Row& row)
  {
    if (!m_header_done) {
      read_header();
    }
    auto r = m_csv.next(m_fields);
    if (!r) {
      throw Error(Exit::usage, "{}: {}", m_src.name, r.error());
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
      append_json_string(m_labels, key);
      m_labels.push_back(':');
      append_json_string(m_labels, value);
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
      throw Error(Exit::usage, "{}: {}", m_src.name, r.error());
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
      throw Error(Exit::usage, "{}: {}", m_src.name, r.error());
    }
    if (!*r) {
      return false;
    }
    const uint64_t line = m_lines.line();
    m_json = nlohmann::json::parse(text, nullptr, false);
    if (m_json.is_discarded()) {
      m_src.fail(Exit::usage, line, "invalid JSON");
    }
    if (!m_json.is_object()) {
      m_src.fail(Exit::usage, line, "expected a JSON object with an \"id\"");
    }
    row.line = line;
    row.model.reset();
    row.labels = {};
    bool have_id = false;
    for (const auto& [key, value] : m_json.items()) {
      if (key == "id") {
        if (!value.is_string()) {
          m_src.fail(Exit::usage, line, "\"id\" must be a string");
        }
        row.id = value.get_ref<const std::string&>();
        check_name(m_src, line, row.id, "device id");
        have_id = true;
      } else if (key == "model") {
        if (value.is_string()) {
          row.model = value.get_ref<const std::string&>();
          check_name(m_src, line, *row.model, "model");
        } else if (!value.is_null()) {
          m_src.fail(Exit::usage, line, "\"model\" must be a string or null");
        }
      } else if (key == "labels") {
        if (!value.is_object()) {
          m_src.fail(Exit::usage, line, "\"labels\" must be an object of strings");
        }
        for (const auto& [k, v] : value.items()) {
          check_label_key(m_src, line, k);
          if (!v.is_string()) {
            m_src.fail(Exit::usage, line, fmt::format("label \"{}\" must be a string", k));
          }
          check_label_value(m_src, line, k, v.get_ref<const std::string&>());
        }
        m_labels = value.empty() ? std::string() : value.dump();
        row.labels = m_labels;
      } else {
        m_src.fail(Exit::usage, line, fmt::format("unknown key \"{}\" (expected id, model, labels)", key));
      }
    }
    if (!have_id) {
      m_src.fail(Exit::usage, line, "missing \"id\"");
    }
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
  nlohmann::json m_json;
};

// Parsed rows, spilled to an unlinked temporary file between the passes so that memory stays
// flat whatever the input size (and stdin need not be read twice). The file vanishes with the
// process, even on SIGKILL.
class Spill
{
public:
  Spill()
  {
    const char* env = std::getenv("TMPDIR");
    const std::string dir = env != nullptr && *env != '\0' ? env : "/tmp";
    m_fd = util::Fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!m_fd.valid()) {
      std::string tmpl = dir + "/fleetkey-import.XXXXXX";
      m_fd = util::Fd(::mkostemp(tmpl.data(), O_CLOEXEC));
      if (m_fd.valid()) {
        ::unlink(tmpl.c_str());
      }
    }
    if (!m_fd.valid()) {
      throw Error(Exit::failure, "cannot create a temporary file in {}: {}", dir, std::strerror(errno));
    }
    m_out.reserve(k_buffer);
  }

  void write(const Row& row)
  {
    put(row.line);
    put(static_cast<uint16_t>(row.id.size()));
    m_out.append(row.id);
    put(static_cast<uint16_t>(row.model ? row.model->size() + 1 : 0));
    if (row.model) {
      m_out.append(*row.model);
    }
    put(static_cast<uint32_t>(row.labels.size()));
    m_out.append(row.labels);
    if (m_out.size() >= k_buffer) {
      drain();
    }
  }

  // Calls fn(id, line) for every row written so far; writing may continue afterwards.
  template<typename Fn>
  void scan(Fn&& fn)
  {
    drain();
    if (::lseek(m_fd.get(), 0, SEEK_SET) != 0) {
      throw Error(Exit::failure, "cannot read the temporary file back: {}", std::strerror(errno));
    }
    // Reading to the end leaves the offset where the next write goes.
    util::InputBuffer in(m_fd.get());
    std::string arena;
    Offsets o;
    while (read(in, arena, o)) {
      fn(std::string_view(arena.data() + o.id, o.id_len), o.line);
      arena.clear();
    }
  }

  // Ends writing; reading starts at the first row.
  util::InputBuffer& rewind()
  {
    drain();
    if (::lseek(m_fd.get(), 0, SEEK_SET) != 0) {
      throw Error(Exit::failure, "cannot read the temporary file back: {}", std::strerror(errno));
    }
    m_in = std::make_unique<util::InputBuffer>(m_fd.get());
    return *m_in;
  }

  // Reads one row written by write(); `arena` receives the strings, `row`'s views are set by
  // the caller from the returned offsets.
  struct Offsets
  {
    uint64_t line = 0;
    size_t id = 0, id_len = 0;
    size_t model = 0, model_len = 0;
    bool has_model = false;
    size_t labels = 0, labels_len = 0;
  };
  static bool read(util::InputBuffer& in, std::string& arena, Offsets& o)
  {
    if (!in.read(&o.line, sizeof o.line)) {
      return false;
    }
    uint16_t id_len = 0;
    uint16_t model_len = 0;
    uint32_t labels_len = 0;
    const auto take = [&](size_t n, size_t& at) {
      at = arena.size();
      arena.resize(at + n);
      return in.read(arena.data() + at, n);
    };
    bool ok = in.read(&id_len, sizeof id_len) && take(id_len, o.id) && in.read(&model_len, sizeof model_len);
    o.id_len = id_len;
    o.has_model = model_len > 0;
    o.model_len = o.has_model ? model_len - 1u : 0;
    ok = ok && take(o.model_len, o.model) && in.read(&labels_len, sizeof labels_len);
    o.labels_len = labels_len;
    ok = ok && take(o.labels_len, o.labels);
    if (!ok) {
      throw Error(Exit::failure, "the temporary file of the import is truncated");
    }
    return true;
  }

private:
  static constexpr size_t k_buffer = size_t{1} << 20;

  template<typename T>
  void put(T v)
  {
    m_out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }

  void drain()
  {
    size_t done = 0;
    while (done < m_out.size()) {
      const ssize_t n = ::write(m_fd.get(), m_out.data() + done, m_out.size() - done);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw Error(Exit::failure, "cannot write the temporary file of the import: {}", std::strerror(errno));
      }
      done += static_cast<size_t>(n);
    }
    m_out.clear();
  }

  util::Fd m_fd;
  std::string m_out;
  std::unique_ptr<util::InputBuffer> m_in;
};

// A set of 64-bit id hashes in open addressing: 8 bytes a slot, at most half full, so a million
// ids take 16 MiB. Equal hashes are only suspects; verify_duplicates() compares the ids.
class IdHashSet
{
public:
  IdHashSet() : m_slots(size_t{1} << 16, 0) { randombytes_buf(m_key, sizeof m_key); }

  uint64_t hash(std::string_view id) const
  {
    uint64_t h = 0;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&h), reinterpret_cast<const unsigned char*>(id.data()),
                     id.size(), m_key);
    return h == 0 ? 1 : h; // 0 marks an empty slot
  }

  // False if the hash was already present.
  bool insert(uint64_t h)
  {
    if ((m_count + 1) * 2 > m_slots.size()) {
      grow();
    }
    const size_t mask = m_slots.size() - 1;
    for (size_t i = static_cast<size_t>(h) & mask;; i = (i + 1) & mask) {
      if (m_slots[i] == h) {
        return false;
      }
      if (m_slots[i] == 0) {
        m_slots[i] = h;
        ++m_count;
        return true;
      }
    }
  }

  void release() { std::vector<uint64_t>().swap(m_slots); }

private:
  void grow()
  {
    std::vector<uint64_t> old(m_slots.size() * 2, 0);
    old.swap(m_slots);
    m_count = 0;
    for (uint64_t h : old) {
      if (h != 0) {
        insert(h);
      }
    }
  }

  std::vector<uint64_t> m_slots;
  size_t m_count = 0;
  unsigned char m_key[crypto_shorthash_KEYBYTES];
};

// Pass 1: reads, validates and spills every row. Returns the number of rows.
uint64_t validate_input(util::InputBuffer& in, ImportFormat format, const Source& src, Spill& spill,
                        uint64_t input_size, const ProgressFn& progress)
{
  RowParser parser(in, format, src);
  IdHashSet ids;
  std::unordered_set<uint64_t> suspects;
  const auto add_hash = [&](std::string_view id) {
    const uint64_t h = ids.hash(id);
    if (!ids.insert(h)) {
      suspects.insert(h);
    }
  };
  // Factory files usually come sorted: while every id is greater than the one before, a repeat
  // can only be the previous id, and the hash set is not needed.
  bool sorted = true;
  std::string prev;
  uint64_t prev_line = 0;
  const auto start = Clock::now();
  uint64_t rows = 0;
  Row row;
  while (parser.next(row)) {
    if (sorted) {
      const int order = rows == 0 ? 1 : row.id.compare(prev);
      if (order == 0) {
        src.fail(Exit::usage, row.line, fmt::format("duplicate id \"{}\" (first on line {})", row.id, prev_line));
      }
      if (order > 0) {
        prev.assign(row.id);
        prev_line = row.line;
      } else {
        sorted = false;
        spill.scan([&](std::string_view id, uint64_t) { add_hash(id); });
      }
    }
    if (!sorted) {
      add_hash(row.id);
    }
    spill.write(row);
    if (++rows % k_progress_rows == 0 && progress) {
      progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
    }
  }
  if (progress) {
    progress({ImportProgress::Phase::validating, in.bytes_read(), input_size, since(start)});
  }
  if (suspects.empty()) {
    return rows;
  }
  // Some hashes repeat: compare the ids behind them, and report the earliest repeated line.
  std::unordered_map<std::string, uint64_t> first_line;
  std::optional<std::pair<uint64_t, std::string>> dup;
  uint64_t dup_first = 0;
  spill.scan([&](std::string_view id, uint64_t line) {
    if (suspects.count(ids.hash(id)) != 0) {
      auto [it, fresh] = first_line.emplace(std::string(id), line);
      if (!fresh && !dup) {
        dup.emplace(line, std::string(id));
        dup_first = it->second;
      }
    }
  });
  if (dup) {
    src.fail(Exit::usage, dup->first, fmt::format("duplicate id \"{}\" (first on line {})", dup->second, dup_first));
  }
  return rows;
}

// Rows read back from the spill with their derived keys, handed from the worker to the inserter.
struct Batch
{
  std::string arena;
  std::vector<Spill::Offsets> offsets;
  std::string fingerprints; // 32 hex digits a row
  crypto::Secret keys{k_batch_rows * crypto::k_key_len};
  crypto::Secret text{k_batch_rows * k_max_key_line}; // --keys-out lines
  std::vector<size_t> line_ends;
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
    : m_spill(spill), m_key(mk.key), m_version(mk.version), m_keys_out(keys_out), m_direct(direct)
  {
    for (size_t i = 0; i < k_batches_in_flight; ++i) {
      m_free.push_back(std::make_unique<Batch>());
    }
    m_thread = std::thread([this] { run(); });
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
    m_thread.join();
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
    Spill::Offsets o;
    while (b.offsets.size() < k_batch_rows && Spill::read(m_spill, b.arena, o)) {
      b.offsets.push_back(o);
    }
    b.last = b.offsets.size() < k_batch_rows;
    b.fingerprints.resize(b.size() * 32);
    size_t at = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      const std::span<uint8_t, crypto::k_key_len> key(b.keys.data() + i * crypto::k_key_len, crypto::k_key_len);
      deriver.device_key(b.id(i), key);
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
  const crypto::Secret& m_key;
  uint32_t m_version;
  KeysOut m_keys_out;
  std::optional<Direct> m_direct;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::unique_ptr<Batch>> m_ready;
  std::vector<std::unique_ptr<Batch>> m_free;
  std::exception_ptr m_error;
  bool m_cancel = false;
  std::thread m_thread;
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
  throw Error(Exit::usage, "cannot tell the format of {} from its name (.csv, .jsonl, .ndjson): use --format",
              source);
}

ImportSummary import_devices(Fleet& fleet, const ImportOptions& options, const ProgressFn& progress)
{
  const auto start = Clock::now();
  const ImportFormat format = import_format_for(options.source, options.format);
  const bool from_stdin = options.source == "-";
  const Source src{from_stdin ? std::string("stdin") : options.source};

  KeysOut keys_out = KeysOut::none;
  if (options.keys_out) {
    keys_out = ends_with(*options.keys_out, ".csv") ? KeysOut::csv : KeysOut::jsonl;
    if (util::exists(*options.keys_out)) {
      throw Error(Exit::conflict, "--keys-out {} already exists (keys files are never overwritten)", *options.keys_out);
    }
  }

  // Open everything that can fail for reasons other than the input first: the registry, the
  // key (which may ask for a passphrase) and the keys file.
  auto& reg = fleet.registry();
  const crypto::MasterKey& mk = fleet.keyring().current();

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
    struct stat st {};
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
  Spill spill;
  uint64_t rows = 0;
  {
    util::InputBuffer in(fd);
    rows = validate_input(in, format, src, spill, input_size, progress);
  }
  file.close();
  const double validated_at = since(start);

  ImportSummary summary;
  summary.rows = rows;
  summary.key_version = mk.version;
  summary.keys_out = options.keys_out;

  // Pass 2: one transaction. BEGIN IMMEDIATE waits for other stations' imports to finish.
  registry::BulkSession session(reg);
  registry::Transaction tx(reg.db());
  registry::DeviceBulkInsert insert(reg, mk.version, util::format_time(util::unix_now()));
  const bool probe = !insert.registry_was_empty();
  crypto_hash_sha256_state digest;
  crypto_hash_sha256_init(&digest);
  const auto import_start = Clock::now();
  {
    std::optional<Deriver::Direct> direct;
    if (!probe) {
      direct = Deriver::Direct{&digest, out ? &*out : nullptr};
    }
    Deriver deriver(spill.rewind(), mk, keys_out, direct);
    std::vector<bool> skipped;
    for (bool last = false; !last;) {
      auto b = deriver.pop();
      last = b->last;
      skipped.assign(b->size(), false);
      for (size_t i = 0; i < b->size(); ++i) {
        const auto& o = b->offsets[i];
        const std::string_view id = b->id(i);
        if (probe && insert.exists(id)) {
          if (options.skip_existing == SkipExisting::no) {
            src.fail(Exit::conflict, o.line,
                     fmt::format("device \"{}\" is already registered (use --skip-existing to skip it)", id));
          }
          skipped[i] = true;
          ++summary.skipped;
          continue;
        }
        registry::BulkDevice d;
        d.id = id;
        if (o.has_model) {
          d.model = std::string_view(b->arena.data() + o.model, o.model_len);
        }
        d.labels = o.labels_len == 0 ? std::string_view("{}") : std::string_view(b->arena.data() + o.labels, o.labels_len);
        d.fingerprint = std::string_view(b->fingerprints.data() + i * 32, 32);
        insert.add(d);
        if (probe) {
          hash_id(digest, id);
        }
      }
      insert.flush();
      if (out && probe) {
        // Runs of imported rows' lines, in input order.
        const auto* text = reinterpret_cast<const char*>(b->text.data());
        size_t begin = 0;
        for (size_t i = 0; i < b->size(); ++i) {
          if (skipped[i]) {
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
