// Revocations in the PostgreSQL registry, and what token verification reads from it (PgStore,
// pg_store.hpp).

#include "registry/pg_rows.hpp"
#include "registry/pg_store.hpp"

namespace fleetkey::registry::pg {

void PgStore::insert_revocation(std::string_view kind, std::optional<std::string> device,
                                std::optional<std::string> user, std::optional<std::string> token_id,
                                std::string_view reason, std::string_view when)
{
  m_conn.query("INSERT INTO revocations (id, kind, device, \"user\", token_id, reason, created)"
               " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM revocations), $1, $2, $3, $4, $5, $6)",
               {kind, opt(device), opt(user), opt(token_id), reason, when});
}

std::optional<TokenRevocation> PgStore::token_revocation(std::string_view token_id)
{
  const Result r = m_conn.query(
      "SELECT token_id, reason, created, token_exp FROM revocations WHERE kind = 'token' AND token_id = $1",
      {token_id});
  if (r.rows() == 0) {
    return std::nullopt;
  }
  TokenRevocation t{std::string(r.text(0, 0)), std::string(r.text(0, 1)), std::string(r.text(0, 2)), std::nullopt,
                    std::nullopt};
  if (!r.is_null(0, 3)) {
    t.token_exp = r.integer(0, 3);
  }
  return t;
}

void PgStore::insert_token_revocation(const TokenRevocation& r)
{
  const std::optional<std::string> exp = r.token_exp ? std::optional<std::string>(num(*r.token_exp)) : std::nullopt;
  m_conn.query("INSERT INTO revocations (id, kind, token_id, reason, created, token_exp, device)"
               " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM revocations), 'token', $1, $2, $3, $4, $5)",
               {r.token_id, r.reason, r.created, opt(exp), opt(r.device)});
}

void PgStore::for_each_revoked_token(const std::function<void(std::string_view token_id)>& fn)
{
  stream("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL", {},
         [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
}

void PgStore::for_each_grant_state(
    const std::function<void(std::string_view user, std::string_view device, std::string_view role, uint64_t epoch,
                             std::string_view status, std::string_view expires)>& fn)
{
  stream("SELECT \"user\", device, epoch, status, coalesce(expires, ''), role FROM grants", {},
         [&fn](const Result& r, int i) {
           fn(r.text(i, 0), r.text(i, 1), r.text(i, 5), static_cast<uint64_t>(r.integer(i, 2)), r.text(i, 3),
              r.text(i, 4));
         });
}

void PgStore::for_each_user_name(const std::function<void(std::string_view name)>& fn)
{
  stream("SELECT name FROM users", {}, [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
}

} // namespace fleetkey::registry::pg
