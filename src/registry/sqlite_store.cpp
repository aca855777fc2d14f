// SqliteStore (sqlite_store.hpp): opening and migrations, master keys, devices, users and grants.
// The audit trail is in sqlite_audit.cpp, revocations and token queries in sqlite_tokens.cpp,
// counters in sqlite_state.cpp, the bulk import in sqlite_bulk.cpp.

#include "registry/sqlite_store.hpp"

#include "registry/migrations.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::registry {

namespace {

// The migration whose rows are linked by code after its SQL runs (schema/0005_audit_chain.sql).
constexpr int k_audit_chain_schema = 5;

DeviceRecord read_device(const Stmt& st)
{
  DeviceRecord r;
  r.id = st.text(0);
  r.model = st.optional_text(1);
  r.labels = nlohmann::json::parse(st.text_view(2));
  r.key_version = static_cast<uint32_t>(st.integer(3));
  r.fingerprint = st.text(4);
  r.status = st.text(5);
  r.pairing_counter = st.integer(6);
  r.created = st.text(7);
  r.revoked = st.optional_text(8);
  r.revoke_reason = st.optional_text(9);
  return r;
}

constexpr std::string_view k_device_columns =
    "id, model, labels, key_version, fingerprint, status, pairing_counter, created, revoked, revoke_reason";

GrantRecord read_grant(const Stmt& st)
{
  GrantRecord r;
  r.user = st.text(0);
  r.device = st.text(1);
  r.role = st.text(2);
  r.epoch = static_cast<uint64_t>(st.integer(3));
  r.status = st.text(4);
  r.created = st.text(5);
  r.expires = st.optional_text(6);
  r.revoked = st.optional_text(7);
  r.revoke_reason = st.optional_text(8);
  return r;
}

constexpr std::string_view k_grant_columns =
    "user, device, role, epoch, status, created, expires, revoked, revoke_reason";

MasterKeyRecord read_master(const Stmt& st)
{
  MasterKeyRecord r;
  r.version = static_cast<uint32_t>(st.integer(0));
  r.created = st.text(1);
  r.fingerprint = st.text(2);
  r.test_key = st.integer(3) != 0;
  r.status = st.text(4);
  r.retired = st.optional_text(5);
  return r;
}

} // namespace

std::unique_ptr<SqliteStore> SqliteStore::open(const std::string& path, OpenMode mode)
{
  const bool existed = util::exists(path);
  if (!existed && mode == OpenMode::existing) {
    throw Error(Exit::registry, "no registry at {} (run fleetkey init, or pass --registry)", path);
  }
  std::unique_ptr<SqliteStore> reg(new SqliteStore(Db(path, mode == OpenMode::create)));
  Db& db = reg->m_db;
  const int64_t app_id = db.pragma_int("application_id");
  const int64_t version = db.pragma_int("user_version");
  if (app_id != k_application_id) {
    const bool empty = app_id == 0 && version == 0 && db.pragma_int("page_count") == 0;
    if (!empty || mode != OpenMode::create) {
      throw Error(Exit::registry, "{} is not a fleetkey registry", path);
    }
  }
  if (version > latest_schema_version()) {
    throw Error(Exit::registry,
                "registry {} has schema version {}, newer than this fleetkey supports ({}): upgrade fleetkey", path,
                version, latest_schema_version());
  }
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA journal_mode = WAL");
  // FULL: every commit is on disk before fleetkey reports it, so a revocation or registration
  // survives a power loss. One fsync of the WAL per command; the checkpoint waits (sqlite.cpp).
  db.exec("PRAGMA synchronous = FULL");
  if (version < latest_schema_version()) {
    // Only then take the write lock: read-only commands must not queue behind a running import.
    reg->migrate(app_id != k_application_id);
  }
  return reg;
}

void SqliteStore::migrate(bool fresh)
{
  Transaction tx(*this);
  // Read again under the write lock: another process may have migrated in the meantime.
  const int64_t current = m_db.pragma_int("user_version");
  bool changed = false;
  for (const auto& m : migrations()) {
    if (m.version > current) {
      m_db.exec(m.sql);
      if (m.version == k_audit_chain_schema) {
        link_audit_rows();
      }
      changed = true;
    }
  }
  if (changed) {
    if (fresh) {
      m_db.exec("PRAGMA application_id = " + std::to_string(k_application_id));
    }
    m_db.exec("PRAGMA user_version = " + std::to_string(latest_schema_version()));
    tx.commit();
  }
}

void SqliteStore::checkpoint()
{
  m_db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

void SqliteStore::insert_master_key(const MasterKeyRecord& r)
{
  Stmt st = m_db.prepare(
      "INSERT INTO master_keys (version, created, fingerprint, test_key, status, retired) VALUES (?, ?, ?, ?, ?, ?)");
  st.bind(1, int64_t{r.version}).bind(2, r.created).bind(3, r.fingerprint).bind(4, int64_t{r.test_key});
  st.bind(5, r.status).bind(6, r.retired);
  st.run();
}

std::vector<MasterKeyRecord> SqliteStore::master_keys()
{
  Stmt st =
      m_db.prepare("SELECT version, created, fingerprint, test_key, status, retired FROM master_keys ORDER BY version");
  std::vector<MasterKeyRecord> out;
  while (st.step()) {
    out.push_back(read_master(st));
  }
  return out;
}

std::optional<MasterKeyRecord> SqliteStore::master_key(uint32_t version)
{
  Stmt st = m_db.prepare(
      "SELECT version, created, fingerprint, test_key, status, retired FROM master_keys WHERE version = ?");
  st.bind(1, int64_t{version});
  if (!st.step()) {
    return std::nullopt;
  }
  return read_master(st);
}

void SqliteStore::set_current_master_key(uint32_t version)
{
  m_db.prepare("UPDATE master_keys SET status = 'active' WHERE status = 'current'").run();
  Stmt st = m_db.prepare("UPDATE master_keys SET status = 'current' WHERE version = ?");
  st.bind(1, int64_t{version});
  st.run();
}

void SqliteStore::retire_master_key(uint32_t version, std::string_view when)
{
  Stmt st = m_db.prepare("UPDATE master_keys SET status = 'retired', retired = ? WHERE version = ?");
  st.bind(1, when).bind(2, int64_t{version});
  st.run();
}

void SqliteStore::insert_device(const DeviceRecord& r)
{
  Stmt st = m_db.prepare("INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, "
                         "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, r.id).bind(2, r.model).bind(3, r.labels.dump()).bind(4, int64_t{r.key_version});
  st.bind(5, r.fingerprint).bind(6, r.status).bind(7, r.pairing_counter).bind(8, r.created);
  st.run();
}

std::optional<DeviceRecord> SqliteStore::device(std::string_view id)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM devices WHERE id = ?", k_device_columns));
  st.bind(1, id);
  if (!st.step()) {
    return std::nullopt;
  }
  return read_device(st);
}

void SqliteStore::for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn)
{
  Stmt st =
      m_db.prepare(fmt::format("SELECT {} FROM devices WHERE ?1 = '' OR status = ?1 ORDER BY id", k_device_columns));
  st.bind(1, status);
  while (st.step()) {
    fn(read_device(st));
  }
}

void SqliteStore::revoke_device(std::string_view id, std::string_view when, std::string_view reason)
{
  Stmt st = m_db.prepare(
      "UPDATE devices SET status = 'revoked', revoked = ?, revoke_reason = ? WHERE id = ? AND status = 'active'");
  st.bind(1, when).bind(2, reason).bind(3, id);
  st.run();
}

void SqliteStore::insert_user(const UserRecord& r)
{
  Stmt st = m_db.prepare("INSERT INTO users (name, labels, created) VALUES (?, ?, ?)");
  st.bind(1, r.name).bind(2, r.labels.dump()).bind(3, r.created);
  st.run();
}

std::optional<UserRecord> SqliteStore::user(std::string_view name)
{
  Stmt st = m_db.prepare("SELECT name, labels, created FROM users WHERE name = ?");
  st.bind(1, name);
  if (!st.step()) {
    return std::nullopt;
  }
  return UserRecord{st.text(0), nlohmann::json::parse(st.text_view(1)), st.text(2)};
}

void SqliteStore::for_each_user(const std::function<void(const UserRecord&)>& fn)
{
  Stmt st = m_db.prepare("SELECT name, labels, created FROM users ORDER BY name");
  while (st.step()) {
    fn(UserRecord{st.text(0), nlohmann::json::parse(st.text_view(1)), st.text(2)});
  }
}

std::optional<GrantRecord> SqliteStore::grant(std::string_view user, std::string_view device)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM grants WHERE user = ? AND device = ?", k_grant_columns));
  st.bind(1, user).bind(2, device);
  if (!st.step()) {
    return std::nullopt;
  }
  return read_grant(st);
}

std::vector<GrantRecord> SqliteStore::grants_of_user(std::string_view user)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM grants WHERE user = ? ORDER BY device", k_grant_columns));
  st.bind(1, user);
  std::vector<GrantRecord> out;
  while (st.step()) {
    out.push_back(read_grant(st));
  }
  return out;
}

std::vector<GrantRecord> SqliteStore::grants_of_device(std::string_view device)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM grants WHERE device = ? ORDER BY user", k_grant_columns));
  st.bind(1, device);
  std::vector<GrantRecord> out;
  while (st.step()) {
    out.push_back(read_grant(st));
  }
  return out;
}

void SqliteStore::upsert_grant(const GrantRecord& r)
{
  Stmt st = m_db.prepare(
      "INSERT INTO grants (user, device, role, epoch, status, created, expires, revoked, revoke_reason) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (user, device) DO UPDATE SET role = ?3, epoch = ?4, "
      "status = ?5, created = ?6, expires = ?7, revoked = ?8, revoke_reason = ?9");
  st.bind(1, r.user).bind(2, r.device).bind(3, r.role).bind(4, static_cast<int64_t>(r.epoch)).bind(5, r.status);
  st.bind(6, r.created).bind(7, r.expires).bind(8, r.revoked).bind(9, r.revoke_reason);
  st.run();
}

} // namespace fleetkey::registry
