// Revocations in the SQLite registry, and what token verification reads from it.

#include "registry/sqlite_store.hpp"

namespace fleetkey::registry {

void SqliteStore::insert_revocation(std::string_view kind, std::optional<std::string> device,
                                    std::optional<std::string> user, std::optional<std::string> token_id,
                                    std::string_view reason, std::string_view when)
{
  Stmt st =
      m_db.prepare("INSERT INTO revocations (kind, device, user, token_id, reason, created) VALUES (?, ?, ?, ?, ?, ?)");
  st.bind(1, kind).bind(2, device).bind(3, user).bind(4, token_id).bind(5, reason).bind(6, when);
  st.run();
}

std::optional<TokenRevocation> SqliteStore::token_revocation(std::string_view token_id)
{
  Stmt st = m_db.prepare(
      "SELECT token_id, reason, created, token_exp FROM revocations WHERE kind = 'token' AND token_id = ?");
  st.bind(1, token_id);
  if (!st.step()) {
    return std::nullopt;
  }
  TokenRevocation r{st.text(0), st.text(1), st.text(2), std::nullopt, std::nullopt};
  if (!st.is_null(3)) {
    r.token_exp = st.integer(3);
  }
  return r;
}

void SqliteStore::insert_token_revocation(const TokenRevocation& r)
{
  Stmt st = m_db.prepare(
      "INSERT INTO revocations (kind, token_id, reason, created, token_exp, device) VALUES ('token', ?, ?, ?, ?, ?)");
  st.bind(1, r.token_id).bind(2, r.reason).bind(3, r.created);
  if (r.token_exp) {
    st.bind(4, *r.token_exp);
  } else {
    st.bind_null(4);
  }
  st.bind(5, r.device);
  st.run();
}

void SqliteStore::for_each_revoked_token(const std::function<void(std::string_view token_id)>& fn)
{
  Stmt st = m_db.prepare("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL");
  while (st.step()) {
    fn(st.text_view(0));
  }
}

void SqliteStore::for_each_grant_state(
    const std::function<void(std::string_view user, std::string_view device, std::string_view role, uint64_t epoch,
                             std::string_view status, std::string_view expires)>& fn)
{
  Stmt st = m_db.prepare("SELECT user, device, epoch, status, coalesce(expires, ''), role FROM grants");
  while (st.step()) {
    const std::string user = st.text(0);
    const std::string device = st.text(1);
    const std::string status = st.text(3);
    const std::string role = st.text(5);
    fn(user, device, role, static_cast<uint64_t>(st.integer(2)), status, st.text_view(4));
  }
}

void SqliteStore::for_each_user_name(const std::function<void(std::string_view name)>& fn)
{
  Stmt st = m_db.prepare("SELECT name FROM users");
  while (st.step()) {
    fn(st.text_view(0));
  }
}

} // namespace fleetkey::registry
