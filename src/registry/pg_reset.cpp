// PgStore::reset, for init --force (fleetkey-postgresql(7), REPLACING A REGISTRY): the registry is
// emptied in place rather than dropped and created again, so that the roles and grants an
// administrator set up on its tables stay. PostgreSQL's TRUNCATE and ALTER TABLE are transactional:
// the caller's transaction makes it all or nothing, together with the new master key and audit row
// that init writes in it.

#include "registry/pg_reset.hpp"

#include <fleetkey/core/error.hpp>

namespace fleetkey::registry::pg {

void reset_registry(Conn& conn)
{
  if (!conn.in_transaction()) {
    throw Error(Exit::failure, "internal error: the registry is reset only inside a write transaction");
  }
  // The audit trail's trigger refuses TRUNCATE, and master_keys' refuses it while devices has rows
  // (schema 6; its BEFORE trigger fires before devices is emptied by the same statement); the tables'
  // owner (who runs init) turns them off for this transaction only. Every table of the schema
  // (0001-0006) but the marker, fleetkey_registry, whose schema version stays; the state row goes back
  // to what schema 4 inserts.
  conn.exec("ALTER TABLE audit DISABLE TRIGGER audit_no_truncate;"
            " ALTER TABLE master_keys DISABLE TRIGGER master_keys_in_use_truncate;"
            " TRUNCATE audit, revocations, grants, users, devices, master_keys;"
            " ALTER TABLE audit ENABLE TRIGGER audit_no_truncate;"
            " ALTER TABLE master_keys ENABLE TRIGGER master_keys_in_use_truncate;"
            " DELETE FROM state;"
            " INSERT INTO state (id, counter, global_seq) VALUES (1, 1, 1)");
}

} // namespace fleetkey::registry::pg
