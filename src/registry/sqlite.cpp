#include "registry/sqlite.hpp"

#include <fleetkey/core/error.hpp>

#include <sodium.h>
#include <sqlite3.h>

#include <chrono>
#include <string>
#include <sys/stat.h>
#include <thread>

namespace fleetkey::registry {

namespace {
constexpr int k_busy_timeout_ms = 10000;
constexpr int k_begin_attempts = 6;
} // namespace

void throw_sqlite(sqlite3* db, int rc, std::string_view what)
{
  const int primary = rc & 0xFF;
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (primary == SQLITE_NOTADB) {
    throw Error(Exit::registry, "{}: not a fleetkey registry (the file is not an SQLite database)", what);
  }
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    throw Error(Exit::failure, "{}: the registry stayed locked by another process for {} s", what,
                k_busy_timeout_ms / 1000);
  }
  if (primary == SQLITE_CONSTRAINT) {
    throw Error(Exit::conflict, "{}: {}", what, msg);
  }
  if (primary == SQLITE_CANTOPEN) {
    throw Error(Exit::registry, "{}: cannot open the registry: {}", what, msg);
  }
  throw Error(Exit::failure, "{}: {} (SQLite {})", what, msg, rc);
}

Stmt::Stmt(sqlite3* db, std::string_view sql)
{
  const int rc =
      sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &m_stmt, nullptr);
  if (rc != SQLITE_OK) {
    throw_sqlite(db, rc, "registry");
  }
}

Stmt::Stmt(Stmt&& other) noexcept
    : m_stmt(other.m_stmt)
{
  other.m_stmt = nullptr;
}

Stmt& Stmt::operator=(Stmt&& other) noexcept
{
  if (this != &other) {
    sqlite3_finalize(m_stmt);
    m_stmt = other.m_stmt;
    other.m_stmt = nullptr;
  }
  return *this;
}

Stmt::~Stmt()
{
  sqlite3_finalize(m_stmt);
}

Stmt& Stmt::bind(int index, std::string_view text)
{
  const int rc = sqlite3_bind_text(m_stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) {
    throw_sqlite(sqlite3_db_handle(m_stmt), rc, "registry");
  }
  return *this;
}

Stmt& Stmt::bind(int index, int64_t value)
{
  const int rc = sqlite3_bind_int64(m_stmt, index, value);
  if (rc != SQLITE_OK) {
    throw_sqlite(sqlite3_db_handle(m_stmt), rc, "registry");
  }
  return *this;
}

Stmt& Stmt::bind(int index, const std::optional<std::string>& text)
{
  return text ? bind(index, std::string_view(*text)) : bind_null(index);
}

Stmt& Stmt::bind_null(int index)
{
  sqlite3_bind_null(m_stmt, index);
  return *this;
}

bool Stmt::step()
{
  const int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  sqlite3* db = sqlite3_db_handle(m_stmt);
  sqlite3_reset(m_stmt);
  throw_sqlite(db, rc, "registry");
}

void Stmt::run()
{
  step();
  reset();
}

void Stmt::reset()
{
  sqlite3_reset(m_stmt);
  sqlite3_clear_bindings(m_stmt);
}

std::string Stmt::text(int column) const
{
  return std::string(text_view(column));
}

std::string_view Stmt::text_view(int column) const
{
  const auto* p = sqlite3_column_text(m_stmt, column);
  const int n = sqlite3_column_bytes(m_stmt, column);
  return p == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

std::optional<std::string> Stmt::optional_text(int column) const
{
  if (is_null(column)) {
    return std::nullopt;
  }
  return text(column);
}

int64_t Stmt::integer(int column) const
{
  return sqlite3_column_int64(m_stmt, column);
}

bool Stmt::is_null(int column) const
{
  return sqlite3_column_type(m_stmt, column) == SQLITE_NULL;
}

namespace {

// Process-wide settings, before SQLite's first use: no memory statistics (fleetkey reads none, and
// keeping them takes a global mutex on every allocation).
void configure_sqlite()
{
  static const bool k_done = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)k_done;
}

// The WAL policy. Every fleetkey command is a process of its own, so each is the first connection
// to the registry, and rebuilds the WAL index by reading and checksumming every valid frame of the
// WAL. By default SQLite's last connection checkpoints as it closes (three fsyncs) and deletes the
// WAL, which the next process creates again. Instead fleetkey:
// - keeps the WAL file (SQLITE_FCNTL_PERSIST_WAL). Once it has grown, a commit overwrites blocks
//   the file already has, and an fdatasync that leaves the size alone has no inode to write:
//   the floor of a `device add` fell by 160-270 µs (bench/README.md, session 7).
// - checkpoints at close once a commit has left k_checkpoint_frames or more frames in the WAL,
//   then restarts the WAL with an empty write (user_version set to its own value). The restart
//   writes a new salt, so the next process's scan ends at the first frame behind that write.
//   A `device add` writes two frames; the median was flat from 16 to 62 frames.
// - truncates the WAL to k_wal_limit_bytes when it restarts (journal_size_limit), so that a large
//   import leaves no large file behind; and checkpoints and restarts at close whenever the WAL is
//   larger than that, whatever made it so.
constexpr int k_checkpoint_frames = 32;
constexpr int k_wal_limit_bytes = 1 << 20;
// What SQLite's own WAL hook does, which fleetkey's replaces: checkpoint during a long process.
constexpr int k_autocheckpoint_frames = 1000;

int on_wal_commit(void* frames, sqlite3* db, const char* name, int count)
{
  *static_cast<int*>(frames) = count;
  if (count >= k_autocheckpoint_frames) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

// Best effort: the commands' own commits are done, so a failure here changes nothing they did.
void checkpoint_and_restart(sqlite3* db)
{
  int log = 0;
  int copied = 0;
  if (sqlite3_get_autocommit(db) == 0
      || sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied) != SQLITE_OK
      || copied != log) {
    return; // a reader still needs part of the WAL: a later command checkpoints
  }
  sqlite3_busy_timeout(db, 0); // another writer is at work: its own commit restarts the WAL
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return;
  }
  sqlite3_stmt* st = nullptr;
  int64_t version = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    version = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  const std::string restart = "PRAGMA user_version = " + std::to_string(version);
  if (version < 0 || sqlite3_exec(db, restart.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK
      || sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

// A WAL over the size limit was left by something other than this process's commits: an import
// rolled back after it had spilled pages, or a checkpoint a reader held up. Every process reads
// all of its valid frames, so the first command to see it cleans it up, read-only ones included.
bool wal_too_large(sqlite3* db)
{
  const char* file = sqlite3_db_filename(db, "main"); // "" for a temporary database, which has no WAL
  struct stat st
  {
  };
  return file != nullptr && *file != '\0' && ::stat(sqlite3_filename_wal(file), &st) == 0
         && st.st_size > k_wal_limit_bytes;
}

void close_db(sqlite3* db, const int* wal_frames)
{
  if (db == nullptr) {
    return;
  }
  if (sqlite3_get_autocommit(db) == 0) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); // a held transaction (Store::hold_commits) never committed
  }
  if ((wal_frames != nullptr && *wal_frames >= k_checkpoint_frames) || wal_too_large(db)) {
    checkpoint_and_restart(db);
  }
  sqlite3_close_v2(db);
}

} // namespace

Db::Db(const std::string& path, bool create)
    : m_path(path)
{
  configure_sqlite();
  const int flags =
      SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(path.c_str(), &m_db, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = m_db != nullptr ? sqlite3_errmsg(m_db) : sqlite3_errstr(rc);
    sqlite3_close(m_db);
    m_db = nullptr;
    throw Error(Exit::registry, "cannot open registry {}: {}", path, msg);
  }
  sqlite3_extended_result_codes(m_db, 1);
  sqlite3_busy_timeout(m_db, k_busy_timeout_ms);
  int persist = 1;
  sqlite3_file_control(m_db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  sqlite3_db_config(m_db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  sqlite3_wal_hook(m_db, on_wal_commit, m_wal_frames.get());
  const std::string limit = "PRAGMA journal_size_limit = " + std::to_string(k_wal_limit_bytes);
  sqlite3_exec(m_db, limit.c_str(), nullptr, nullptr, nullptr); // only a size limit: no error to report
}

Db::Db(Db&& other) noexcept
    : m_db(other.m_db)
    , m_path(std::move(other.m_path))
    , m_wal_frames(std::move(other.m_wal_frames))
{
  other.m_db = nullptr;
}

Db& Db::operator=(Db&& other) noexcept
{
  if (this != &other) {
    close_db(m_db, m_wal_frames.get());
    m_db = other.m_db;
    m_path = std::move(other.m_path);
    m_wal_frames.swap(other.m_wal_frames);
    other.m_db = nullptr;
  }
  return *this;
}

Db::~Db()
{
  close_db(m_db, m_wal_frames.get());
}

void Db::exec(std::string_view sql)
{
  char* err = nullptr;
  const std::string s(sql);
  const int rc = sqlite3_exec(m_db, s.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) {
    throw_sqlite(m_db, rc, "registry");
  }
}

int64_t Db::pragma_int(std::string_view name)
{
  Stmt st = prepare("PRAGMA " + std::string(name));
  return st.step() ? st.integer(0) : 0;
}

int64_t Db::changes() const
{
  return sqlite3_changes64(m_db);
}

bool Db::in_transaction() const noexcept
{
  return m_db != nullptr && sqlite3_get_autocommit(m_db) == 0;
}

void Db::begin_immediate()
{
  // busy_timeout already waits; the retries with jitter only matter when several writers keep
  // the lock for longer than that, such as stations importing large batches at once.
  for (int attempt = 1;; ++attempt) {
    const int rc = sqlite3_exec(m_db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      return;
    }
    const int primary = rc & 0xFF;
    if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) || attempt == k_begin_attempts) {
      throw_sqlite(m_db, rc, "registry");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + randombytes_uniform(200)));
  }
}

void Db::commit()
{
  const int rc = sqlite3_exec(m_db, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    throw_sqlite(m_db, rc, "registry");
  }
}

void Db::rollback() noexcept
{
  if (in_transaction()) {
    sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

} // namespace fleetkey::registry
