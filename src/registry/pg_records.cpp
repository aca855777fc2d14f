// Devices, users and grants in the PostgreSQL registry (PgStore, pg_store.hpp).

#include "registry/pg_rows.hpp"
#include "registry/pg_store.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace fleetkey::registry::pg {

// ---- Devices ----

void PgStore::insert_device(const DeviceRecord& r)
{
  const std::string labels = r.labels.dump();
  m_conn.query(
      "INSERT INTO devices (id, model, labels, key_version, fingerprint, status, pairing_counter, created)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
      {r.id, opt(r.model), labels, num(r.key_version), r.fingerprint, r.status, num(r.pairing_counter), r.created});
}

std::optional<DeviceRecord> PgStore::device(std::string_view id)
{
  const Result r = m_conn.query(fmt::format("SELECT {} FROM devices WHERE id = $1", k_device_columns), {id});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  return read_device(r, 0);
}

void PgStore::for_each_device(std::string_view status, const std::function<void(const DeviceRecord&)>& fn)
{
  stream(fmt::format("SELECT {} FROM devices WHERE $1 = '' OR status = $1 ORDER BY id", k_device_columns), {status},
         [&fn](const Result& r, int i) { fn(read_device(r, i)); });
}

void PgStore::revoke_device(std::string_view id, std::string_view when, std::string_view reason)
{
  m_conn.query("UPDATE devices SET status = 'revoked', revoked = $1, revoke_reason = $2"
               " WHERE id = $3 AND status = 'active'",
               {when, reason, id});
}

// ---- Users and grants ----

void PgStore::insert_user(const UserRecord& r)
{
  const std::string labels = r.labels.dump();
  m_conn.query("INSERT INTO users (name, labels, created) VALUES ($1, $2, $3)", {r.name, labels, r.created});
}

std::optional<UserRecord> PgStore::user(std::string_view name)
{
  const Result r = m_conn.query("SELECT name, labels, created FROM users WHERE name = $1", {name});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  return UserRecord{std::string(r.text(0, 0)), nlohmann::json::parse(r.text(0, 1)), std::string(r.text(0, 2))};
}

void PgStore::for_each_user(const std::function<void(const UserRecord&)>& fn)
{
  stream("SELECT name, labels, created FROM users ORDER BY name", {}, [&fn](const Result& r, int i) {
    fn(UserRecord{std::string(r.text(i, 0)), nlohmann::json::parse(r.text(i, 1)), std::string(r.text(i, 2))});
  });
}

std::optional<GrantRecord> PgStore::grant(std::string_view user, std::string_view device)
{
  const Result r = m_conn.query(
      fmt::format("SELECT {} FROM grants WHERE \"user\" = $1 AND device = $2", k_grant_columns), {user, device});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  return read_grant(r, 0);
}

std::vector<GrantRecord> PgStore::grants_of_user(std::string_view user)
{
  return grants(fmt::format("SELECT {} FROM grants WHERE \"user\" = $1 ORDER BY device", k_grant_columns), user);
}

std::vector<GrantRecord> PgStore::grants_of_device(std::string_view device)
{
  return grants(fmt::format("SELECT {} FROM grants WHERE device = $1 ORDER BY \"user\"", k_grant_columns), device);
}

void PgStore::upsert_grant(const GrantRecord& r)
{
  m_conn.query("INSERT INTO grants (\"user\", device, role, epoch, status, created, expires, revoked, revoke_reason)"
               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (\"user\", device) DO UPDATE SET role = $3,"
               " epoch = $4, status = $5, created = $6, expires = $7, revoked = $8, revoke_reason = $9",
               {r.user, r.device, r.role, num(static_cast<int64_t>(r.epoch)), r.status, r.created, opt(r.expires),
                opt(r.revoked), opt(r.revoke_reason)});
}

std::vector<GrantRecord> PgStore::grants(const std::string& sql, std::string_view key)
{
  const Result r = m_conn.query(sql, {key});
  std::vector<GrantRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(read_grant(r, i));
  }
  return out;
}

} // namespace fleetkey::registry::pg
