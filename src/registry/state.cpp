#include <fleetkey/registry/state.hpp>
#include <fleetkey/util/error.hpp>

namespace fleetkey::registry {

namespace {

void raise_counter(Registry& reg)
{
  reg.db().prepare("UPDATE state SET counter = counter + 1 WHERE id = 1").run();
  if (reg.db().changes() != 1) {
    throw Error(Exit::registry, "registry has no state counter (schema 4 not applied?)");
  }
}

} // namespace

ReadSnapshot::ReadSnapshot(Db& db)
    : m_db(db)
{
  m_db.exec("BEGIN DEFERRED");
}

ReadSnapshot::~ReadSnapshot()
{
  try {
    m_db.exec("COMMIT"); // nothing was written: this only ends the read
  } catch (...) {
  }
}

void raise_device_state(Registry& reg, std::string_view device)
{
  raise_counter(reg);
  Stmt st = reg.db().prepare("UPDATE devices SET state_seq = (SELECT counter FROM state WHERE id = 1) WHERE id = ?");
  st.bind(1, device);
  st.run();
}

void raise_global_state(Registry& reg)
{
  raise_counter(reg);
  reg.db().prepare("UPDATE state SET global_seq = counter WHERE id = 1").run();
}

uint64_t device_state_seq(Registry& reg, std::string_view device)
{
  Stmt st = reg.db().prepare(
      "SELECT max(d.state_seq, s.global_seq) FROM devices AS d, state AS s WHERE d.id = ? AND s.id = 1");
  st.bind(1, device);
  if (!st.step()) {
    throw Error(Exit::not_found, "device \"{}\" is not registered", device);
  }
  return static_cast<uint64_t>(st.integer(0));
}

void for_each_live_revoked_token(Registry& reg, std::string_view device, int64_t at,
                                 const std::function<void(std::string_view token_id)>& fn)
{
  Stmt st = reg.db().prepare("SELECT token_id FROM revocations WHERE kind = 'token' AND token_id IS NOT NULL"
                             " AND (device = ?1 OR device IS NULL) AND (token_exp IS NULL OR token_exp > ?2)");
  st.bind(1, device).bind(2, at);
  while (st.step()) {
    fn(st.text_view(0));
  }
}

} // namespace fleetkey::registry
