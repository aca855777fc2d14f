// State sequence numbers (fleetkey-state(5)) and the pairing counter in the PostgreSQL registry
// (PgStore, pg_store.hpp): values handed out inside the write transaction (UPDATE ... RETURNING),
// so that two stations never get the same one.

#include "registry/pg_rows.hpp"
#include "registry/pg_store.hpp"

#include <fleetkey/core/error.hpp>

#include <fmt/format.h>

namespace fleetkey::registry::pg {

int64_t PgStore::raise_counter(std::string_view also)
{
  const Result r =
      m_conn.query(fmt::format("UPDATE state SET counter = counter + 1{} WHERE id = 1 RETURNING counter", also));
  if (r.rows() != 1) {
    throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
  }
  return r.integer(0, 0);
}

int64_t PgStore::bump_pairing_counter(std::string_view device_id)
{
  const Result r = m_conn.query(
      "UPDATE devices SET pairing_counter = pairing_counter + 1 WHERE id = $1 RETURNING pairing_counter", {device_id});
  if (r.rows() != 1) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
  }
  raise_device_state(device_id); // the lock learns the new counter (fleetkey-state(5))
  return r.integer(0, 0);
}

void PgStore::raise_device_state(std::string_view device)
{
  const int64_t counter = raise_counter("");
  m_conn.query("UPDATE devices SET state_seq = $2 WHERE id = $1", {device, num(counter)});
}

void PgStore::raise_global_state()
{
  raise_counter(", global_seq = counter + 1");
}

uint64_t PgStore::device_state_seq(std::string_view device)
{
  const Result r = m_conn.query("SELECT greatest(d.state_seq, s.global_seq) FROM devices AS d, state AS s"
                                " WHERE d.id = $1 AND s.id = 1",
                                {device});
  if (r.rows() == 0) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device);
  }
  return static_cast<uint64_t>(r.integer(0, 0));
}

void PgStore::for_each_live_revoked_token(std::string_view device, int64_t at,
                                          const std::function<void(std::string_view token_id)>& fn)
{
  stream("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL"
         " AND (device = $1 OR device IS NULL) AND (token_exp IS NULL OR token_exp > $2::bigint)",
         {device, num(at)}, [&fn](const Result& r, int i) { fn(r.text(i, 0)); });
}

} // namespace fleetkey::registry::pg
