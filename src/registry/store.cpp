// The backend-independent parts of registry::Store (store.hpp): which backend a location names,
// transactions over the virtual begin/commit/rollback, the audit actor, and the audit chain's hash.

#include "registry/backends.hpp"
#include "registry/migrations.hpp"
#include "registry/sqlite_store.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/utf8.hpp>

#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <pwd.h>
#include <unistd.h>

namespace fleetkey::registry {

namespace {

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

void put_field(crypto_hash_sha256_state& st, std::string_view x)
{
  const auto n = static_cast<uint32_t>(x.size());
  const uint8_t len[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                          static_cast<uint8_t>(n)};
  crypto_hash_sha256_update(&st, len, sizeof len);
  crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(x.data()), x.size());
}

} // namespace

bool Store::is_postgresql(std::string_view location)
{
  return location.starts_with("postgresql://") || location.starts_with("postgres://")
         || location.starts_with("service=");
}

std::unique_ptr<Store> Store::open(const std::string& location, OpenMode mode)
{
  actor_from_environment(); // a bad one fails the command here, before it has changed anything
  if (is_postgresql(location)) {
    return open_postgresql(location, mode);
  }
  return SqliteStore::open(location, mode);
}

int Store::latest_schema_version()
{
  return migrations().empty() ? 0 : migrations().back().version;
}

std::string Store::actor()
{
  if (const auto env = actor_from_environment()) {
    return std::string(*env);
  }
  const uid_t uid = ::geteuid();
  return login_name(uid).value_or("uid:" + std::to_string(uid));
}

void Store::commit_held()
{
  m_hold = false;
  if (in_transaction()) {
    commit();
  }
}

Transaction::Transaction(Store& store)
    : m_store(store)
{
  if (store.holding() && store.in_transaction()) {
    return; // joins the held transaction (Store::hold_commits)
  }
  store.begin_write();
}

Transaction::~Transaction()
{
  if (!m_done) {
    m_store.rollback();
  }
}

void Transaction::commit()
{
  if (m_store.holding()) {
    m_done = true; // committed by Store::commit_held, or rolled back with the Store
    return;
  }
  m_store.commit();
  m_done = true;
}

ReadSnapshot::ReadSnapshot(Store& store)
    : m_store(store)
{
  m_store.begin_read();
}

ReadSnapshot::~ReadSnapshot()
{
  try {
    m_store.commit(); // nothing was written: this only ends the read
  } catch (...) {
  }
}

void Store::reset()
{
  throw Error(Exit::failure, "internal error: the {} registry {} is replaced as a file, not reset", backend(),
              location());
}

std::string audit_text(std::string_view s)
{
  if (util::is_valid_utf8(s)) {
    return std::string(s);
  }
  // nlohmann-json's replacement, which the details get: the same rule for every text in a row.
  const std::string quoted =
      nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(quoted).get<std::string>();
}

std::optional<AuditHash> audit_hash_from_hex(std::string_view hex)
{
  AuditHash out{};
  const auto bytes = util::from_hex(hex);
  if (!bytes || bytes->size() != out.size() || util::to_hex(*bytes) != hex) {
    return std::nullopt; // the wrong length, or not in lower case
  }
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

AuditHash audit_link(const AuditHash& prev, int64_t seq, const AuditChainRow& row)
{
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(k_audit_domain.data()), k_audit_domain.size());
  crypto_hash_sha256_update(&st, prev.data(), prev.size());
  uint8_t be[8];
  for (int i = 0; i < 8; ++i) {
    be[i] = static_cast<uint8_t>(static_cast<uint64_t>(seq) >> (56 - 8 * i));
  }
  crypto_hash_sha256_update(&st, be, sizeof be);
  put_field(st, row.at);
  put_field(st, row.actor);
  put_field(st, row.action);
  put_field(st, row.subject);
  put_field(st, row.details);
  AuditHash out{};
  crypto_hash_sha256_final(&st, out.data());
  return out;
}

std::vector<AuditRecord> Store::audit_events(int64_t limit)
{
  AuditFilter last;
  last.last = limit;
  std::vector<AuditRecord> out;
  for_each_audit(last, [&out](const AuditRecord& e) { out.push_back(e); });
  return out;
}

void require_current_master_key(Store& store, uint32_t key_version)
{
  const auto mk = store.master_key(key_version);
  if (!mk || mk->status != "current") {
    throw Error(Exit::key, "master key version {} is not the registry's current version (rotated meanwhile?)",
                key_version);
  }
}

} // namespace fleetkey::registry
