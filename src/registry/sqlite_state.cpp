// State sequence numbers (fleetkey-state(5)) and the pairing counter, in SQLite: seq(D) =
// max(devices.state_seq, state.global_seq), both set from one counter that only goes up
// (schema/0004_device_state.sql).

#include "registry/sqlite_store.hpp"

#include <fleetkey/core/error.hpp>

namespace fleetkey::registry {

void SqliteStore::raise_counter()
{
  m_db.prepare("UPDATE state SET counter = counter + 1 WHERE id = 1").run();
  if (m_db.changes() != 1) {
    throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
  }
}

void SqliteStore::raise_device_state(std::string_view device)
{
  raise_counter();
  Stmt st = m_db.prepare("UPDATE devices SET state_seq = (SELECT counter FROM state WHERE id = 1) WHERE id = ?");
  st.bind(1, device);
  st.run();
}

void SqliteStore::raise_global_state()
{
  raise_counter();
  m_db.prepare("UPDATE state SET global_seq = counter WHERE id = 1").run();
}

uint64_t SqliteStore::device_state_seq(std::string_view device)
{
  Stmt st =
      m_db.prepare("SELECT max(d.state_seq, s.global_seq) FROM devices AS d, state AS s WHERE d.id = ? AND s.id = 1");
  st.bind(1, device);
  if (!st.step()) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device);
  }
  return static_cast<uint64_t>(st.integer(0));
}

void SqliteStore::for_each_live_revoked_token(std::string_view device, int64_t at,
                                              const std::function<void(std::string_view token_id)>& fn)
{
  Stmt st = m_db.prepare("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL"
                         " AND (device = ?1 OR device IS NULL) AND (token_exp IS NULL OR token_exp > ?2)");
  st.bind(1, device).bind(2, at);
  while (st.step()) {
    fn(st.text_view(0));
  }
}

int64_t SqliteStore::bump_pairing_counter(std::string_view device_id)
{
  Stmt up = m_db.prepare("UPDATE devices SET pairing_counter = pairing_counter + 1 WHERE id = ?");
  up.bind(1, device_id);
  up.run();
  if (m_db.changes() != 1) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
  }
  raise_device_state(device_id); // the lock learns the new counter (fleetkey-state(5))
  Stmt st = m_db.prepare("SELECT pairing_counter FROM devices WHERE id = ?");
  st.bind(1, device_id);
  if (!st.step()) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device_id);
  }
  return st.integer(0);
}

} // namespace fleetkey::registry
