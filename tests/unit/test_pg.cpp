// The PostgreSQL backend's parts that need no server: its migrations, and the refusal of a password
// in a location (the rest runs against a server in tests/cli, cli.pg.*).
#include "registry/migrations.hpp"
#include "registry/pg_conn.hpp"

#include <doctest/doctest.h>

using namespace fleetkey::registry;

TEST_CASE("pg: the PostgreSQL dialect has every schema version, with the same numbers")
{
  REQUIRE(pg_migrations().size() == migrations().size());
  for (size_t i = 0; i < migrations().size(); ++i) {
    CHECK(pg_migrations()[i].version == migrations()[i].version);
    CHECK(pg_migrations()[i].name == migrations()[i].name);
  }
}

TEST_CASE("pg: a location that carries a password is found, in a URI or a connection string")
{
  CHECK(pg::has_password("postgresql://fleet:secret@db.example/fleet"));
  CHECK(pg::has_password("postgres://fleet:secret@db.example:5433/fleet?sslmode=verify-full"));
  CHECK(pg::has_password("postgresql:///fleet?host=/run/postgresql&password=secret"));
  CHECK(pg::has_password("host=db.example dbname=fleet password=secret"));
  CHECK_FALSE(pg::has_password("postgresql://fleet@db.example/fleet?sslmode=verify-full"));
  CHECK_FALSE(pg::has_password("postgresql:///fleet?host=/run/postgresql"));
  CHECK_FALSE(pg::has_password("service=fleet"));
  CHECK_FALSE(pg::has_password("postgresql://"));
}

TEST_CASE("pg: libpq's syntax check of a location")
{
  CHECK_FALSE(pg::conninfo_error("postgresql://db.example/fleet").has_value());
  CHECK_FALSE(pg::conninfo_error("service=fleet").has_value());
  CHECK(pg::conninfo_error("postgresql://db.example/fleet?nosuchoption=1").has_value());
  CHECK(pg::conninfo_error("host=db.example dbname='fleet").has_value());
}
