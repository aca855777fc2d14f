#pragma once
// init --force on a PostgreSQL registry (pg_reset.cpp): PgStore::reset.

#include "registry/pg_conn.hpp"

namespace fleetkey::registry::pg {

// Inside the caller's write transaction (the advisory lock held): every row of every fleetkey table
// goes, the audit trail's too, and the state counter starts again at 1.
void reset_registry(Conn& conn);

} // namespace fleetkey::registry::pg
