// The registry: creation, identity checks, migrations, transactions and the append-only audit.
#include "registry/migrations.hpp"
#include "registry/sqlite_store.hpp"
#include "support.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/util/file.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace fleetkey;
using registry::OpenMode;
using Registry = registry::SqliteStore;
using test::code_of;
using test::TempDir;

namespace {

registry::MasterKeyRecord master(uint32_t v)
{
  return {v, "2026-01-01T00:00:00Z", "00112233445566778899aabbccddeeff", false, v == 1 ? "current" : "active", {}};
}

} // namespace

TEST_CASE("a new registry is marked, versioned and in WAL mode")
{
  TempDir dir;
  const auto path = dir.path + "/r.db";
  auto reg = Registry::open(path, OpenMode::create);
  CHECK(reg->db().pragma_int("application_id") == registry::k_application_id);
  CHECK(reg->db().pragma_int("user_version") == Registry::latest_schema_version());
  CHECK(reg->db().pragma_int("foreign_keys") == 1);
  auto st = reg->db().prepare("PRAGMA journal_mode");
  REQUIRE(st.step());
  CHECK(st.text(0) == "wal");
}

TEST_CASE("opening checks the file is a fleetkey registry of a known schema")
{
  TempDir dir;
  CHECK(code_of([&] { Registry::open(dir.path + "/missing.db", OpenMode::existing); }) == Exit::registry);
  CHECK_FALSE(util::exists(dir.path + "/missing.db"));

  const auto text = dir.path + "/text.db";
  std::ofstream(text) << "this is not a database, just some text that is long enough to have a header...........";
  CHECK(code_of([&] { Registry::open(text, OpenMode::existing); }) == Exit::registry);

  const auto other = dir.path + "/other.db";
  {
    registry::Db db(other, true);
    db.exec("CREATE TABLE t (x)");
  }
  CHECK(code_of([&] { Registry::open(other, OpenMode::existing); }) == Exit::registry);
  CHECK(code_of([&] { Registry::open(other, OpenMode::create); }) == Exit::registry);

  const auto newer = dir.path + "/newer.db";
  {
    Registry::open(newer, OpenMode::create);
  }
  {
    registry::Db db(newer, false);
    db.exec("PRAGMA user_version = " + std::to_string(Registry::latest_schema_version() + 1));
  }
  CHECK(code_of([&] { Registry::open(newer, OpenMode::existing); }) == Exit::registry);
}

TEST_CASE("reopening applies no migration twice")
{
  TempDir dir;
  const auto path = dir.path + "/r.db";
  {
    Registry::open(path, OpenMode::create);
  }
  auto reg = Registry::open(path, OpenMode::existing);
  CHECK(reg->master_keys().empty());
}

TEST_CASE("an older registry is migrated to the current schema on open")
{
  TempDir dir;
  const auto path = dir.path + "/old.db";
  {
    registry::Db db(path, true);
    db.exec(registry::migrations().front().sql);
    db.exec("PRAGMA application_id = " + std::to_string(registry::k_application_id));
    db.exec("PRAGMA user_version = 1");
  }
  auto reg = Registry::open(path, OpenMode::existing);
  CHECK(reg->db().pragma_int("user_version") == Registry::latest_schema_version());
  CHECK(Registry::latest_schema_version() > 1);
}

TEST_CASE("schema 3 folds revoked token ids, keeping the earliest of those that fold alike")
{
  TempDir dir;
  const auto path = dir.path + "/v2.db";
  {
    registry::Db db(path, true);
    for (const auto& m : registry::migrations()) {
      if (m.version <= 2) {
        db.exec(m.sql);
      }
    }
    db.exec("PRAGMA application_id = " + std::to_string(registry::k_application_id));
    db.exec("PRAGMA user_version = 2");
    // A JWT revoked by its text (jti as written), then by its id (folded), and a cti; a grant row.
    db.exec("INSERT INTO revocations (kind, token_id, reason, created) VALUES "
            "('token', 'SESSION-Abc', 'first', 't1'), ('token', 'session-abc', 'second', 't2'), "
            "('token', 'ab01', 'cti', 't3'), ('token', 'Other', 'lone', 't4')");
    db.exec("INSERT INTO revocations (kind, device, user, reason, created) VALUES ('grant', 'D', 'U', 'g', 't5')");
  }
  auto reg = Registry::open(path, OpenMode::existing);
  CHECK(reg->db().pragma_int("user_version") == Registry::latest_schema_version());
  std::vector<std::string> rows;
  registry::Stmt st = reg->db().prepare("SELECT kind, coalesce(token_id, '-'), reason FROM revocations ORDER BY id");
  while (st.step()) {
    rows.push_back(st.text(0) + " " + st.text(1) + " " + st.text(2));
  }
  CHECK(rows == std::vector<std::string>{"token session-abc first", "token ab01 cti", "token other lone", "grant - g"});
}

TEST_CASE("a transaction rolls back unless committed")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  {
    registry::Transaction tx(*reg);
    reg->insert_master_key(master(1));
  }
  CHECK(reg->master_keys().empty());
  {
    registry::Transaction tx(*reg);
    reg->insert_master_key(master(1));
    tx.commit();
  }
  REQUIRE(reg->master_keys().size() == 1);
  CHECK(reg->master_keys()[0].fingerprint == "00112233445566778899aabbccddeeff");
}

TEST_CASE("devices need a known master key version, and ids are unique")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  registry::DeviceRecord d;
  d.id = "SN-1";
  d.key_version = 1;
  d.fingerprint = "ff";
  d.created = "2026-01-01T00:00:00Z";
  CHECK(code_of([&] { reg->insert_device(d); }) == Exit::conflict); // foreign key
  reg->insert_master_key(master(1));
  reg->insert_device(d);
  CHECK(code_of([&] { reg->insert_device(d); }) == Exit::conflict);
  CHECK(reg->device("SN-1")->fingerprint == "ff");
  CHECK_FALSE(reg->device("SN-2"));
  int n = 0;
  reg->for_each_device("revoked", [&](const registry::DeviceRecord&) { ++n; });
  CHECK(n == 0);
  reg->for_each_device("", [&](const registry::DeviceRecord&) { ++n; });
  CHECK(n == 1);
}

TEST_CASE("the audit trail is append-only")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  reg->audit("test", "subject", {{"k", 1}});
  const auto events = reg->audit_events(10);
  REQUIRE(events.size() == 1);
  CHECK(events[0].action == "test");
  CHECK(events[0].details["k"] == 1);
  CHECK(code_of([&] { reg->db().exec("UPDATE audit SET action = 'x'"); }) == Exit::conflict);
  CHECK(code_of([&] { reg->db().exec("DELETE FROM audit"); }) == Exit::conflict);
  CHECK(reg->audit_events(10).size() == 1);
}

TEST_CASE("Stmt and Db move")
{
  TempDir dir;
  registry::Db a(dir.path + "/m.db", true);
  registry::Db b(std::move(a));
  CHECK(a.get() == nullptr);
  auto s1 = b.prepare("SELECT 41 + 1");
  registry::Stmt s2;
  s2 = std::move(s1);
  CHECK(s1.get() == nullptr);
  REQUIRE(s2.step());
  CHECK(s2.integer(0) == 42);
}

TEST_CASE("Store::open selects the backend from the location")
{
  CHECK(registry::Store::is_postgresql("postgresql://db.example/fleet"));
  CHECK(registry::Store::is_postgresql("postgres://db.example/fleet"));
  CHECK(registry::Store::is_postgresql("service=fleet"));
  CHECK_FALSE(registry::Store::is_postgresql("registry.db"));
  CHECK_FALSE(registry::Store::is_postgresql("/srv/postgresql/registry.db"));
  CHECK_FALSE(registry::Store::is_postgresql("./service=fleet"));
  TempDir dir;
  auto reg = registry::Store::open(dir.path + "/r.db", OpenMode::create);
  CHECK(reg->backend() == "sqlite");
  CHECK(reg->location() == dir.path + "/r.db");
}

TEST_CASE("held commits: transactions join one, committed by commit_held, rolled back with the store")
{
  TempDir dir;
  const auto path = dir.path + "/r.db";
  {
    auto reg = Registry::open(path, OpenMode::create);
    reg->hold_commits();
    {
      registry::Transaction tx(*reg);
      reg->insert_master_key(master(1));
      tx.commit();
    }
    CHECK(reg->in_transaction());
    {
      registry::Transaction tx(*reg);
      reg->insert_master_key(master(2));
      tx.commit();
    }
  }
  CHECK(Registry::open(path, OpenMode::existing)->master_keys().empty());
  auto reg = Registry::open(path, OpenMode::existing);
  reg->hold_commits();
  {
    registry::Transaction tx(*reg);
    reg->insert_master_key(master(1));
    tx.commit();
  }
  reg->commit_held();
  CHECK_FALSE(reg->in_transaction());
  CHECK(Registry::open(path, OpenMode::existing)->master_keys().size() == 1);
}

TEST_CASE("the audit's last id and the action of a row")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  CHECK(reg->last_audit_id() == 0);
  CHECK_FALSE(reg->audit_action(1));
  reg->audit("master.rotate", "master:2");
  CHECK(reg->last_audit_id() == 1);
  CHECK(reg->audit_action(1) == "master.rotate");
}

TEST_CASE("a bulk insert runs without foreign key checks, and restores them")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  reg->insert_master_key(master(1));
  {
    registry::Transaction tx(*reg);
    CHECK(code_of([&] { reg->bulk_insert(2, "t"); }) == Exit::key); // not the current version
    auto bulk = reg->bulk_insert(1, "2026-01-01T00:00:00Z");
    CHECK(bulk->registry_was_empty());
    CHECK(reg->db().pragma_int("foreign_keys") == 0);
    for (int i = 0; i < 40; ++i) {
      const std::string id = fmt::format("D-{:02}", i);
      registry::BulkDevice d{id, std::nullopt, "{}", "ff"};
      bulk->add(d);
      bulk->flush();
    }
    CHECK_FALSE(bulk->registered("D-99"));
    CHECK(bulk->registered("D-01")->fingerprint == "ff");
    CHECK(bulk->registered("D-01")->active);
    bulk->finish();
    CHECK(bulk->inserted() == 40);
    bulk.reset();
    CHECK(reg->db().pragma_int("foreign_keys") == 1);
    tx.commit();
  }
  int n = 0;
  reg->for_each_device("active", [&](const registry::DeviceRecord& d) {
    CHECK(d.key_version == 1);
    CHECK(d.created == "2026-01-01T00:00:00Z");
    ++n;
  });
  CHECK(n == 40);
  registry::DeviceRecord d;
  d.id = "SN-1";
  d.key_version = 9;
  d.fingerprint = "ff";
  d.created = "t";
  CHECK(code_of([&] { reg->insert_device(d); }) == Exit::conflict); // checked again
}
