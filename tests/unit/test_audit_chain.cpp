// The audit chain: the worked example of fleetkey-formats(5), AUDIT CHAIN, the links appended rows
// get, and checkpoints read back.
#include "registry/sqlite_store.hpp"
#include "support.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/audit.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

using namespace fleetkey;
using registry::AuditChainRow;
using registry::AuditHash;
using test::code_of;
using test::TempDir;

TEST_CASE("audit links: the worked example of fleetkey-formats(5)")
{
  AuditChainRow first;
  first.at = "2026-11-22T00:12:17Z";
  first.actor = "ops";
  first.action = "init";
  first.subject = "master:1";
  first.details = R"({"encrypted":true,"fingerprint":"aaeca906302c568504136144b31ee374","test_key":false})";
  const AuditHash h1 = registry::audit_link(AuditHash{}, 1, first);
  CHECK(util::to_hex(h1) == "a00ca5a967acab1245c7095124a2439f42618cf2c6b2020b4e3967b40812e6a3");
  AuditChainRow second;
  second.at = "2026-11-22T00:12:18Z";
  second.actor = "ops";
  second.action = "device.add";
  second.subject = "SN-0001";
  second.details = R"({"fingerprint":"88b6f8da00176499bbc36f301094cb15","key_version":1})";
  CHECK(util::to_hex(registry::audit_link(h1, 2, second))
        == "6418e4408a723193417fbf56d4ed1c81a77e460d594ab2ee3a4cb7940d86b1f9");
  // Lengths make the fields unambiguous: moving a byte from one field to the next changes the link.
  AuditChainRow moved = second;
  moved.action = "device.ad";
  moved.subject = "dSN-0001";
  CHECK(registry::audit_link(h1, 2, moved) != registry::audit_link(h1, 2, second));
  CHECK(registry::audit_link(h1, 3, second) != registry::audit_link(h1, 2, second));
}

TEST_CASE("appended audit rows are linked to the head, in a transaction of their own if need be")
{
  TempDir dir;
  auto reg = registry::SqliteStore::open(dir.path + "/r.db", registry::OpenMode::create);
  CHECK(reg->audit_head().seq == 0);
  CHECK(reg->audit_head().hash == std::string(64, '0'));
  reg->audit("user.add", "alice");
  {
    registry::Transaction tx(*reg);
    reg->audit("user.add", "bob", {{"k", "v"}});
    tx.commit();
  }
  std::vector<AuditChainRow> rows;
  reg->for_each_audit_row([&](const AuditChainRow& r) { rows.push_back(r); });
  REQUIRE(rows.size() == 2);
  AuditHash prev{};
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].seq == static_cast<int64_t>(i + 1));
    prev = registry::audit_link(prev, static_cast<int64_t>(i + 1), rows[i]);
    CHECK(rows[i].hash == util::to_hex(prev));
  }
  CHECK(rows[1].details == R"({"k":"v"})");
  CHECK(reg->audit_head().seq == 2);
  CHECK(reg->audit_head().hash == util::to_hex(prev));
}

TEST_CASE("checkpoints are read in their text and JSON forms, strictly")
{
  const std::string hash(64, 'a');
  const fleet::AuditCheckpoint cp{57, hash, "2026-12-07T06:00:00Z"};
  const std::string line = fleet::format_checkpoint(cp);
  CHECK(line == "fleetkey-audit-checkpoint seq=57 hash=" + hash + " at=2026-12-07T06:00:00Z\n");
  for (const auto& text :
       {line, line.substr(0, line.size() - 1), R"({"seq":57,"hash":")" + hash + R"(","at":"2026-12-07T06:00:00Z"})"}) {
    const auto back = fleet::parse_checkpoint(text);
    CHECK(back.seq == 57);
    CHECK(back.hash == hash);
    CHECK(back.at == cp.at);
  }
  for (const std::string& bad :
       {std::string(), "fleetkey-audit-checkpoint seq=057 hash=" + hash + " at=2026-12-07T06:00:00Z",
        "fleetkey-audit-checkpoint seq=57 hash=" + std::string(64, 'A') + " at=2026-12-07T06:00:00Z",
        "fleetkey-audit-checkpoint seq=57 hash=" + hash + " at=2026-12-07",
        "fleetkey-audit-checkpoint seq=57 hash=" + hash + " at=2026-12-07T06:00:00Z extra",
        "fleetkey-audit-checkpoint hash=" + hash + " seq=57 at=2026-12-07T06:00:00Z", std::string("{\"seq\":1}")}) {
    CAPTURE(bad);
    CHECK(code_of([&] { fleet::parse_checkpoint(bad); }) == Exit::usage);
  }
}
