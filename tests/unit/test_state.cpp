// State sequence numbers (schema 4, fleetkey-state(5)): per device and global, from one counter.
#include "registry/migrations.hpp"
#include "registry/sqlite_store.hpp"
#include "support.hpp"

#include <fleetkey/core/error.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;
using registry::OpenMode;
using Registry = registry::SqliteStore;
using test::code_of;
using test::TempDir;

namespace {

void add_device(Registry& reg, const std::string& id)
{
  registry::DeviceRecord d;
  d.id = id;
  d.key_version = 1;
  d.fingerprint = "00112233445566778899aabbccddeeff";
  d.created = "2026-01-01T00:00:00Z";
  reg.insert_device(d);
}

} // namespace

TEST_CASE("state seq goes up per device and for every device, never down")
{
  TempDir dir;
  auto reg = Registry::open(dir.path + "/r.db", OpenMode::create);
  reg->insert_master_key({1, "2026-01-01T00:00:00Z", "00112233445566778899aabbccddeeff", false, "current", {}});
  add_device(*reg, "A");
  add_device(*reg, "B");
  CHECK(reg->device_state_seq("A") == 1);
  CHECK(reg->device_state_seq("B") == 1);
  reg->raise_device_state("A");
  CHECK(reg->device_state_seq("A") == 2);
  CHECK(reg->device_state_seq("B") == 1);
  reg->raise_global_state();
  CHECK(reg->device_state_seq("A") == 3);
  CHECK(reg->device_state_seq("B") == 3);
  reg->raise_device_state("B");
  CHECK(reg->device_state_seq("A") == 3);
  CHECK(reg->device_state_seq("B") == 4);
  add_device(*reg, "C"); // a new device starts at the global seq
  CHECK(reg->device_state_seq("C") == 3);
  CHECK(code_of([&] { reg->device_state_seq("nope"); }) == Exit::not_found);
}

TEST_CASE("schema 4 starts the devices of an older registry at seq 1")
{
  TempDir dir;
  const auto path = dir.path + "/v3.db";
  {
    registry::Db db(path, true);
    for (const auto& m : registry::migrations()) {
      if (m.version <= 3) {
        db.exec(m.sql);
      }
    }
    db.exec("PRAGMA application_id = " + std::to_string(registry::k_application_id));
    db.exec("PRAGMA user_version = 3");
    db.exec("INSERT INTO master_keys VALUES (1, 't', 'f', 0, 'current', NULL)");
    db.exec("INSERT INTO devices (id, key_version, fingerprint, created) VALUES ('OLD-1', 1, 'f', 't')");
  }
  auto reg = Registry::open(path, OpenMode::existing);
  CHECK(reg->device_state_seq("OLD-1") == 1);
  reg->raise_device_state("OLD-1");
  CHECK(reg->device_state_seq("OLD-1") == 2);
}
