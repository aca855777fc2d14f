// The spill of `device import`: rows written in sorted runs to an unlinked temporary file, the
// runs merged into a second one, repeated ids found on the way.
#include "import_spill.hpp"

#include <fleetkey/core/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

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

} // namespace

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

Spill::Spill(Source src, size_t run_bytes)
    : m_src(std::move(src))
    , m_fd(temp_file())
    , m_run_bytes(run_bytes)
{
}

void Spill::write(const Row& row)
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

util::InputBuffer& Spill::finish()
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

std::string_view Spill::id_of(const Entry& e) const
{
  uint16_t n = 0;
  std::memcpy(&n, m_run.data() + e.offset + 8, sizeof n);
  return {m_run.data() + e.offset + 10, n};
}

void Spill::duplicate(std::string_view id, uint64_t first, uint64_t second)
{
  if (m_dup_line == 0 || second < m_dup_line) {
    m_dup_line = second;
    m_dup_first = first;
    m_dup_id.assign(id);
  }
}

void Spill::flush_run()
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

void Spill::merge()
{
  m_merged = temp_file();
  std::vector<RunReader> readers(m_runs.size());
  for (size_t i = 0; i < m_runs.size(); ++i) {
    readers[i].in = std::make_unique<util::InputBuffer>(m_fd.get(), m_runs[i].first, m_runs[i].second, size_t{1} << 18);
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

[[noreturn]] void Spill::report_duplicate() const
{
  m_src.fail(Exit::usage, m_dup_line, fmt::format("duplicate id \"{}\" (first on line {})", m_dup_id, m_dup_first));
}

} // namespace fleetkey::fleet
