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

namespace {

AuditChainRow read_chain_row(const Stmt& st)
{
  AuditChainRow r;
  r.id = st.integer(0);
  if (!st.is_null(1)) {
    r.seq = st.integer(1);
  }
  r.hash = st.optional_text(2);
  r.at = st.text(3);
  r.actor = st.text(4);
  r.action = st.text(5);
  r.subject = st.text(6);
  r.details = st.text(7);
  return r;
}

} // namespace

AuditHead SqliteStore::audit_head()
{
  Stmt st = m_db.prepare("SELECT seq, hash, at FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
  if (!st.step()) {
    return {0, util::to_hex(AuditHash{}), ""};
  }
  return {st.integer(0), st.optional_text(1).value_or(""), st.text(2)};
}

void SqliteStore::audit(std::string_view action, std::string_view subject, const nlohmann::json& details)
{
  std::optional<Transaction> own;
  if (!in_transaction()) {
    own.emplace(*this);
  }
  // The head is read under the write lock that this change already holds, so no other writer
  // can link to it too.
  const AuditHead head = audit_head();
  const auto prev = audit_hash_from_hex(head.hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash: run fleetkey audit verify",
                head.seq);
  }
  AuditChainRow row;
  row.at = util::format_time(util::unix_now());
  row.actor = actor();
  row.action = action;
  row.subject = audit_text(subject); // the same rule on both backends: bad bytes become U+FFFD
  // Details can quote bytes that are not UTF-8 (a file name); they become U+FFFD, as in --json output.
  row.details = details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const int64_t seq = head.seq + 1;
  const std::string hash = util::to_hex(audit_link(*prev, seq, row));
  Stmt st =
      m_db.prepare("INSERT INTO audit (at, actor, action, subject, details, seq, hash) VALUES (?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, row.at).bind(2, row.actor).bind(3, row.action).bind(4, row.subject).bind(5, row.details);
  st.bind(6, seq).bind(7, hash);
  st.run();
  if (own) {
    own->commit();
  }
}

void SqliteStore::link_audit_rows()
{
  const AuditHead head = audit_head();
  auto prev = audit_hash_from_hex(head.hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash", head.seq);
  }
  int64_t seq = head.seq;
  Stmt rows = m_db.prepare("SELECT id, seq, hash, at, actor, action, subject, details FROM audit"
                           " WHERE hash IS NULL ORDER BY id");
  Stmt set = m_db.prepare("UPDATE audit SET seq = ?, hash = ? WHERE id = ?");
  while (rows.step()) {
    const AuditChainRow row = read_chain_row(rows);
    *prev = audit_link(*prev, ++seq, row);
    set.bind(1, seq).bind(2, util::to_hex(*prev)).bind(3, row.id);
    set.run();
  }
}

void SqliteStore::for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn)
{
  Stmt st = m_db.prepare("SELECT id, seq, hash, at, actor, action, subject, details FROM audit"
                         " ORDER BY seq IS NOT NULL, seq, id");
  while (st.step()) {
    fn(read_chain_row(st));
  }
}

std::vector<AuditRecord> SqliteStore::audit_events(int64_t limit)
{
  AuditFilter last;
  last.last = limit;
  std::vector<AuditRecord> out;
  for_each_audit(last, [&out](const AuditRecord& e) { out.push_back(e); });
  return out;
}

void SqliteStore::for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn)
{
  const std::string matching = "SELECT id, at, actor, action, subject, details FROM audit"
                               " WHERE (?1 IS NULL OR action = ?1"
                               "  OR (substr(?1, -1) = '.' AND substr(action, 1, length(?1)) = ?1))"
                               " AND (?2 IS NULL OR subject = ?2 OR json_extract(details, '$.device') = ?2"
                               "  OR json_extract(details, '$.aud') = ?2 OR json_extract(details, '$.token_id') = ?2)"
                               " AND (?3 IS NULL OR at >= ?3)";
  // All matches: one scan in id order, each row handed on as it is read. The last N: the newest N
  // (a backward scan), then sorted again, N rows only.
  Stmt st = m_db.prepare(f.last < 0 ? matching + " ORDER BY id"
                                    : "SELECT * FROM (" + matching + " ORDER BY id DESC LIMIT ?4) ORDER BY id");
  st.bind(1, f.action).bind(2, f.subject).bind(3, f.since);
  if (f.last >= 0) {
    st.bind(4, f.last);
  }
  while (st.step()) {
    fn({st.integer(0), st.text(1), st.text(2), st.text(3), st.text(4), nlohmann::json::parse(st.text_view(5))});
  }
}

int64_t SqliteStore::last_audit_id()
{
  Stmt st = m_db.prepare("SELECT max(id) FROM audit");
  return st.step() && !st.is_null(0) ? st.integer(0) : 0;
}

std::optional<std::string> SqliteStore::audit_action(int64_t id)
{
  Stmt st = m_db.prepare("SELECT action FROM audit WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) {
    return std::nullopt;
  }
  return st.text(0);
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

void SqliteStore::insert_revocation(std::string_view kind, std::optional<std::string> device,
                                    std::optional<std::string> user, std::optional<std::string> token_id,
                                    std::string_view reason, std::string_view when)
{
  Stmt st =
      m_db.prepare("INSERT INTO revocations (kind, device, user, token_id, reason, created) VALUES (?, ?, ?, ?, ?, ?)");
  st.bind(1, kind).bind(2, device).bind(3, user).bind(4, token_id).bind(5, reason).bind(6, when);
  st.run();
}

} // namespace fleetkey::registry
