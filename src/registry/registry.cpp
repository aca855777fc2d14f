#include "registry/migrations.hpp"

#include <fleetkey/registry/registry.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <cstdlib>
#include <pwd.h>
#include <unistd.h>

namespace fleetkey::registry {

namespace {

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

// $FLEETKEY_ACTOR, checked: it goes into every audit row, which `audit list` prints one a line.
std::optional<std::string_view> actor_from_environment()
{
  const char* env = std::getenv("FLEETKEY_ACTOR");
  if (env == nullptr || *env == '\0') {
    return std::nullopt;
  }
  const std::string_view actor(env);
  if (actor.size() > 128 || !util::is_printable_utf8(actor)) {
    throw Error(Exit::usage, "$FLEETKEY_ACTOR must be 1 to 128 bytes of printable UTF-8");
  }
  return actor;
}

} // namespace

int Registry::latest_schema_version()
{
  return migrations().empty() ? 0 : migrations().back().version;
}

Registry Registry::open(const std::string& path, OpenMode mode)
{
  actor_from_environment(); // a bad one fails the command here, before it has changed anything
  const bool existed = util::exists(path);
  if (!existed && mode == OpenMode::existing) {
    throw Error(Exit::registry, "no registry at {} (run fleetkey init, or pass --registry)", path);
  }
  Registry reg(Db(path, mode == OpenMode::create));
  Db& db = reg.m_db;
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
    reg.migrate(app_id != k_application_id);
  }
  return reg;
}

void Registry::migrate(bool fresh)
{
  Transaction tx(m_db);
  // Read again under the write lock: another process may have migrated in the meantime.
  const int64_t current = m_db.pragma_int("user_version");
  bool changed = false;
  for (const auto& m : migrations()) {
    if (m.version > current) {
      m_db.exec(m.sql);
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

#ifdef FLEETKEY_STATIC_GLIBC
// A static glibc can read /etc/passwd itself, but loads any other NSS source (systemd, LDAP, SSSD)
// with dlopen, and such a module can crash the program: libnss_systemd does, on a uid that is not
// in /etc/passwd. So the static build reads /etc/passwd only, as Go's os/user does without cgo.
std::optional<std::string> login_name(uid_t uid)
{
  return util::passwd_name("/etc/passwd", uid);
}
#else
std::optional<std::string> login_name(uid_t uid)
{
  const passwd* pw = ::getpwuid(uid);
  return pw != nullptr ? std::optional<std::string>(pw->pw_name) : std::nullopt;
}
#endif

} // namespace

std::string Registry::actor()
{
  if (const auto env = actor_from_environment()) {
    return std::string(*env);
  }
  const uid_t uid = ::geteuid();
  return login_name(uid).value_or("uid:" + std::to_string(uid));
}

void Registry::audit(std::string_view action, std::string_view subject, const nlohmann::json& details)
{
  Stmt st = m_db.prepare("INSERT INTO audit (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)");
  st.bind(1, util::format_time(util::unix_now())).bind(2, actor()).bind(3, action).bind(4, subject);
  // Details can quote bytes that are not UTF-8 (a file name); they become U+FFFD, as in --json output.
  st.bind(5, details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  st.run();
}

std::vector<AuditRecord> Registry::audit_events(int64_t limit)
{
  AuditFilter last;
  last.last = limit;
  std::vector<AuditRecord> out;
  for_each_audit(last, [&out](const AuditRecord& e) { out.push_back(e); });
  return out;
}

void Registry::for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn)
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

void Registry::insert_master_key(const MasterKeyRecord& r)
{
  Stmt st = m_db.prepare(
      "INSERT INTO master_keys (version, created, fingerprint, test_key, status, retired) VALUES (?, ?, ?, ?, ?, ?)");
  st.bind(1, int64_t{r.version}).bind(2, r.created).bind(3, r.fingerprint).bind(4, int64_t{r.test_key});
  st.bind(5, r.status).bind(6, r.retired);
  st.run();
}

std::vector<MasterKeyRecord> Registry::master_keys()
{
  Stmt st =
      m_db.prepare("SELECT version, created, fingerprint, test_key, status, retired FROM master_keys ORDER BY version");
  std::vector<MasterKeyRecord> out;
  while (st.step()) {
    out.push_back(read_master(st));
  }
  return out;
}

std::optional<MasterKeyRecord> Registry::master_key(uint32_t version)
{
  Stmt st = m_db.prepare(
      "SELECT version, created, fingerprint, test_key, status, retired FROM master_keys WHERE version = ?");
  st.bind(1, int64_t{version});
  if (!st.step()) {
    return std::nullopt;
  }
  return read_master(st);
}

void Registry::set_current_master_key(uint32_t version)
{
  m_db.prepare("UPDATE master_keys SET status = 'active' WHERE status = 'current'").run();
  Stmt st = m_db.prepare("UPDATE master_keys SET status = 'current' WHERE version = ?");
  st.bind(1, int64_t{version});
  st.run();
}

void Registry::retire_master_key(uint32_t version, std::string_view when)
{
  Stmt st = m_db.prepare("UPDATE master_keys SET status = 'retired', retired = ? WHERE version = ?");
  st.bind(1, when).bind(2, int64_t{version});
  st.run();
}

void Registry::insert_device(const DeviceRecord& r)
{
  Stmt st = m_db.prepare("INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, "
                         "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, r.id).bind(2, r.model).bind(3, r.labels.dump()).bind(4, int64_t{r.key_version});
  st.bind(5, r.fingerprint).bind(6, r.status).bind(7, r.pairing_counter).bind(8, r.created);
  st.run();
}

std::optional<DeviceRecord> Registry::device(std::string_view id)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM devices WHERE id = ?", k_device_columns));
  st.bind(1, id);
  if (!st.step()) {
    return std::nullopt;
  }
  return read_device(st);
}

void Registry::for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn)
{
  Stmt st =
      m_db.prepare(fmt::format("SELECT {} FROM devices WHERE ?1 = '' OR status = ?1 ORDER BY id", k_device_columns));
  st.bind(1, status);
  while (st.step()) {
    fn(read_device(st));
  }
}

void Registry::revoke_device(std::string_view id, std::string_view when, std::string_view reason)
{
  Stmt st = m_db.prepare(
      "UPDATE devices SET status = 'revoked', revoked = ?, revoke_reason = ? WHERE id = ? AND status = 'active'");
  st.bind(1, when).bind(2, reason).bind(3, id);
  st.run();
}

void Registry::insert_user(const UserRecord& r)
{
  Stmt st = m_db.prepare("INSERT INTO users (name, labels, created) VALUES (?, ?, ?)");
  st.bind(1, r.name).bind(2, r.labels.dump()).bind(3, r.created);
  st.run();
}

std::optional<UserRecord> Registry::user(std::string_view name)
{
  Stmt st = m_db.prepare("SELECT name, labels, created FROM users WHERE name = ?");
  st.bind(1, name);
  if (!st.step()) {
    return std::nullopt;
  }
  return UserRecord{st.text(0), nlohmann::json::parse(st.text_view(1)), st.text(2)};
}

void Registry::for_each_user(const std::function<void(const UserRecord&)>& fn)
{
  Stmt st = m_db.prepare("SELECT name, labels, created FROM users ORDER BY name");
  while (st.step()) {
    fn(UserRecord{st.text(0), nlohmann::json::parse(st.text_view(1)), st.text(2)});
  }
}

std::optional<GrantRecord> Registry::grant(std::string_view user, std::string_view device)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM grants WHERE user = ? AND device = ?", k_grant_columns));
  st.bind(1, user).bind(2, device);
  if (!st.step()) {
    return std::nullopt;
  }
  return read_grant(st);
}

std::vector<GrantRecord> Registry::grants_of_user(std::string_view user)
{
  Stmt st = m_db.prepare(fmt::format("SELECT {} FROM grants WHERE user = ? ORDER BY device", k_grant_columns));
  st.bind(1, user);
  std::vector<GrantRecord> out;
  while (st.step()) {
    out.push_back(read_grant(st));
  }
  return out;
}

void Registry::upsert_grant(const GrantRecord& r)
{
  Stmt st = m_db.prepare(
      "INSERT INTO grants (user, device, role, epoch, status, created, expires, revoked, revoke_reason) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (user, device) DO UPDATE SET role = ?3, epoch = ?4, "
      "status = ?5, created = ?6, expires = ?7, revoked = ?8, revoke_reason = ?9");
  st.bind(1, r.user).bind(2, r.device).bind(3, r.role).bind(4, static_cast<int64_t>(r.epoch)).bind(5, r.status);
  st.bind(6, r.created).bind(7, r.expires).bind(8, r.revoked).bind(9, r.revoke_reason);
  st.run();
}

void Registry::insert_revocation(std::string_view kind, std::optional<std::string> device,
                                 std::optional<std::string> user, std::optional<std::string> token_id,
                                 std::string_view reason, std::string_view when)
{
  Stmt st =
      m_db.prepare("INSERT INTO revocations (kind, device, user, token_id, reason, created) VALUES (?, ?, ?, ?, ?, ?)");
  st.bind(1, kind).bind(2, device).bind(3, user).bind(4, token_id).bind(5, reason).bind(6, when);
  st.run();
}

} // namespace fleetkey::registry
