#pragma once

#include <string_view>
#include <vector>

namespace fleetkey::registry {

struct Migration
{
  int version; // NNNN of schema/NNNN_name.sql
  std::string_view name;
  std::string_view sql;
};

// Every migration in schema/, in order; generated at build time by cmake/embed_schema.cmake.
const std::vector<Migration>& migrations();
// The same migrations in PostgreSQL's dialect (schema/postgresql/), with the same numbers.
const std::vector<Migration>& pg_migrations();

} // namespace fleetkey::registry
