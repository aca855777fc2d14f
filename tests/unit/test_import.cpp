// device import at the library level: formats, the audit digest, keys equal to derive_device_key,
// all-or-nothing on bad input, --skip-existing, progress callbacks.
#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/import.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace fleetkey;
using namespace std::string_literals;

namespace {

struct TempFleet
{
  std::filesystem::path dir;
  std::unique_ptr<fleet::Fleet> fleet;

  TempFleet()
  {
    char tmpl[] = "/tmp/fleetkey-unit-import-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    fleet::Options o;
    o.home = (dir / "home").string();
    fleet = std::make_unique<fleet::Fleet>(o, [](std::string_view) {});
    fleet::InitOptions init;
    init.no_passphrase = true;
    init.test_seed_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    fleet::init(*fleet, init);
  }
  ~TempFleet()
  {
    fleet.reset();
    std::filesystem::remove_all(dir);
  }

  std::string write(const std::string& name, const std::string& content) const
  {
    const auto path = (dir / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::vector<registry::DeviceRecord> devices()
  {
    std::vector<registry::DeviceRecord> out;
    fleet->registry().for_each_device("", [&](const registry::DeviceRecord& d) { out.push_back(d); });
    return out;
  }
};

std::string sha256_lines(const std::vector<std::string>& ids)
{
  std::string all;
  for (const auto& id : ids) {
    all += id + "\n";
  }
  uint8_t h[32];
  crypto_hash_sha256(h, reinterpret_cast<const uint8_t*>(all.data()), all.size());
  return util::to_hex(h);
}

fleet::ImportOptions options(const std::string& path)
{
  fleet::ImportOptions o;
  o.source = path;
  return o;
}

} // namespace

TEST_CASE("import: format from --format or the extension; stdin needs --format")
{
  using fleet::ImportFormat;
  CHECK(fleet::import_format_for("a.csv", std::nullopt) == ImportFormat::csv);
  CHECK(fleet::import_format_for("a.jsonl", std::nullopt) == ImportFormat::jsonl);
  CHECK(fleet::import_format_for("a.ndjson", std::nullopt) == ImportFormat::jsonl);
  CHECK(fleet::import_format_for("a.txt", ImportFormat::csv) == ImportFormat::csv);
  CHECK(fleet::import_format_for("-", ImportFormat::jsonl) == ImportFormat::jsonl);
  CHECK_THROWS_WITH_AS(fleet::import_format_for("-", std::nullopt),
                       "reading stdin needs --format csv or --format jsonl", Error);
  CHECK_THROWS_AS(fleet::import_format_for("a.txt", std::nullopt), Error);
  CHECK(fleet::parse_import_format("ndjson") == ImportFormat::jsonl);
  CHECK_THROWS_AS(fleet::parse_import_format("xml"), Error);
}

TEST_CASE("import: rows across several batches and chunks, keys equal derive_device_key, one audit event")
{
  TempFleet t;
  std::vector<std::string> ids;
  std::string csv = "model,id,site\n";
  for (int i = 0; i < 5003; ++i) { // two full batches, a partial one, and a partial INSERT chunk
    ids.push_back(fmt::format("D-{:05}", (i * 7919) % 5003)); // unsorted on purpose
    csv += fmt::format("{},{},{}\n", i % 2 == 0 ? "m" : "", ids.back(), i % 3 == 0 ? "fab" : "");
  }
  std::vector<fleet::ImportProgress> seen;
  auto o = options(t.write("d.csv", csv));
  SUBCASE("sorted in one run") {}
  SUBCASE("sorted in many runs, then merged")
  {
    o.sort_run_bytes = 4096;
  }
  const auto s = fleet::import_devices(*t.fleet, o, [&](const fleet::ImportProgress& p) { seen.push_back(p); });
  std::sort(ids.begin(), ids.end()); // the digest covers the ids in byte order
  CHECK(s.rows == 5003);
  CHECK(s.imported == 5003);
  CHECK(s.skipped == 0);
  CHECK(s.key_version == 1);
  CHECK(s.ids_sha256 == sha256_lines(ids));
  REQUIRE(!seen.empty());
  CHECK(seen.front().phase == fleet::ImportProgress::Phase::validating);
  CHECK(seen.back().phase == fleet::ImportProgress::Phase::importing);
  CHECK(seen.back().done == 5003);
  CHECK(seen.back().total == 5003);

  const auto devices = t.devices();
  REQUIRE(devices.size() == 5003);
  for (size_t i = 0; i < devices.size(); i += 97) {
    const auto& d = devices[i];
    const auto key = fleet::derive_device_key(*t.fleet, d); // checks the stored fingerprint
    CHECK(crypto::fingerprint(key.span()) == d.fingerprint);
  }
  const auto d0 = *t.fleet->registry().device("D-00000");
  CHECK(d0.model == std::optional<std::string>("m"));
  CHECK(d0.labels == nlohmann::json{{"site", "fab"}});
  const auto events = t.fleet->registry().audit_events(10);
  REQUIRE(events.back().action == "device.import");
  CHECK(events.back().details["count"] == 5003);
  CHECK(events.back().details["ids_sha256"] == sha256_lines(ids));
}

TEST_CASE("import: a bad row anywhere leaves the registry as it was")
{
  TempFleet t;
  fleet::add_device(*t.fleet, {"OLD-1", std::nullopt, nlohmann::json::object()}, fleet::IfMissing::no);
  const auto audit_before = t.fleet->registry().audit_events(100).size();
  std::string csv = "id\n";
  for (int i = 0; i < 3000; ++i) {
    csv += fmt::format("N-{}\n", i);
  }
  SUBCASE("a duplicate")
  {
    const auto path = t.write("d.csv", csv + "N-5\nN-2999\nN-5\n");
    auto o = options(path);
    SUBCASE("one run") {}
    SUBCASE("many runs")
    {
      o.sort_run_bytes = 4096;
    }
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, o),
                         (path + ": line 3002: duplicate id \"N-5\" (first on line 7)").c_str(), Error);
  }
  SUBCASE("the earliest repeat is reported")
  {
    const auto path = t.write("d.csv", "id\nB\nA\nC\nC\nA\n");
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, options(path)),
                         (path + ": line 5: duplicate id \"C\" (first on line 4)").c_str(), Error);
  }
  SUBCASE("an id already registered")
  {
    const auto path = t.write("d.csv", csv + "OLD-1\n");
    try {
      fleet::import_devices(*t.fleet, options(path));
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Exit::conflict);
      CHECK(std::string(e.what())
            == path + ": line 3002: device \"OLD-1\" is already registered (use --skip-existing to skip it)");
    }
  }
  SUBCASE("malformed JSON")
  {
    const auto path = t.write("d.jsonl", "{\"id\":\"A\"}\n{\"id\":\"B\"\n");
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, options(path)), (path + ": line 2: invalid JSON").c_str(),
                         Error);
  }
  SUBCASE("a repeat in sorted input, then a malformed row: the malformed row is reported")
  {
    const auto path = t.write("d.csv", "id\nA\nA\nB\x01\n");
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, options(path)),
                         (path + ": line 4: device id must be printable UTF-8 without control characters").c_str(),
                         Error);
  }
  SUBCASE("a repeat in sorted input, then unsorted rows with later repeats")
  {
    const auto path = t.write("d.csv", "id\nA\nB\nB\nA\nC\nC\n");
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, options(path)),
                         (path + ": line 4: duplicate id \"B\" (first on line 3)").c_str(), Error);
  }
  SUBCASE("a JSON line with a NUL byte")
  {
    const auto path = t.write("d.jsonl", "{\"id\":\"A\"}\n{\"id\":\"B\"}\0{\"id\":\"C\"}\n"s);
    CHECK_THROWS_WITH_AS(fleet::import_devices(*t.fleet, options(path)),
                         (path + ": line 2: invalid JSON (a NUL byte)").c_str(), Error);
  }
  SUBCASE("a repeated JSON member")
  {
    const std::pair<std::string, std::string> cases[] = {
        {R"({"id":"A","id":"B"})", R"(member "id" appears twice)"},
        {R"({"id":"A","model":"m","model":null})", R"(member "model" appears twice)"},
        {R"({"labels":{},"id":"A","labels":{"a":"1"}})", R"(member "labels" appears twice)"},
        {R"({"id":"A","labels":{"b":"1","a":"2","b":"3"}})", R"(label "b" appears twice)"},
        // Invalid JSON anywhere on the line is reported as such; otherwise the first problem.
        {R"({"id":"A","id":"B",})", "invalid JSON"},
        {R"({"id":1,"x":2,"id":"A"})", R"("id" must be a string)"},
        {R"(["A",{"id":"A"}])", R"(expected a JSON object with an "id")"},
        {R"({"labels":{"a":{"b":"c"}},"id":"A"})", R"(label "a" must be a string)"},
    };
    for (const auto& [line, why] : cases) {
      CAPTURE(line);
      const auto path = t.write("d.jsonl", "{\"id\":\"Z\"}\n" + line + "\n");
      try {
        fleet::import_devices(*t.fleet, options(path));
        FAIL("no error");
      } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
        CHECK(std::string(e.what()) == path + ": line 2: " + why);
      }
    }
  }
  SUBCASE("an input that cannot be read is a failure, not bad input")
  {
    const auto path = (t.dir / "dir.jsonl").string();
    std::filesystem::create_directory(path);
    try {
      fleet::import_devices(*t.fleet, options(path));
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == Exit::failure);
      CHECK(std::string(e.what()) == path + ": line 1: cannot read input: Is a directory");
    }
  }
  CHECK(t.devices().size() == 1);
  CHECK(t.fleet->registry().audit_events(100).size() == audit_before);
}

TEST_CASE("import: --skip-existing skips and counts registered ids; the digest covers the imported ones")
{
  TempFleet t;
  fleet::add_device(*t.fleet, {"B", std::nullopt, nlohmann::json::object()}, fleet::IfMissing::no);
  auto o = options(
      t.write("d.jsonl", "{\"id\":\"A\"}\n{\"id\":\"B\"}\n{\"id\":\"C\",\"labels\":{\"z\":\"1\",\"a\":\"2\"}}\n"));
  o.skip_existing = fleet::SkipExisting::yes;
  const auto s = fleet::import_devices(*t.fleet, o);
  CHECK(s.imported == 2);
  CHECK(s.skipped == 1);
  CHECK(s.ids_sha256 == sha256_lines({"A", "C"}));
  CHECK(t.fleet->registry().device("C")->labels.dump() == R"({"a":"2","z":"1"})");
}

TEST_CASE("import: the batch derivation (SHA extensions when present) equals HKDF on libsodium's HMAC")
{
  crypto::init();
  // RFC 5869 HKDF-Expand written directly on crypto_auth_hmacsha256, as an independent reference.
  const auto reference = [](const uint8_t prk[32], const std::vector<uint8_t>& info, size_t length) {
    std::vector<uint8_t> okm;
    std::vector<uint8_t> t;
    for (uint8_t counter = 1; okm.size() < length; ++counter) {
      crypto_auth_hmacsha256_state st;
      crypto_auth_hmacsha256_init(&st, prk, 32);
      crypto_auth_hmacsha256_update(&st, t.data(), t.size());
      crypto_auth_hmacsha256_update(&st, info.data(), info.size());
      crypto_auth_hmacsha256_update(&st, &counter, 1);
      t.resize(32);
      crypto_auth_hmacsha256_final(&st, t.data());
      okm.insert(okm.end(), t.begin(), t.begin() + static_cast<long>(std::min<size_t>(32, length - okm.size())));
    }
    return okm;
  };
  uint8_t prk[32];
  randombytes_buf(prk, sizeof prk);
  const crypto::Expander expander(util::ByteView(prk, sizeof prk));
  for (size_t info_len = 0; info_len < 600; info_len += 1 + info_len / 8) {
    std::vector<uint8_t> info(info_len, 0);
    if (!info.empty()) {
      randombytes_buf(info.data(), info.size());
    }
    for (size_t length : {size_t{1}, size_t{31}, size_t{32}, size_t{33}, size_t{64}, size_t{100}}) {
      std::vector<uint8_t> got(length);
      expander.expand(info, got);
      CHECK(got == reference(prk, info, length));
    }
  }
  for (size_t key_len = 0; key_len <= 80; ++key_len) {
    std::vector<uint8_t> key(key_len, 0);
    if (!key.empty()) {
      randombytes_buf(key.data(), key.size());
    }
    std::string msg = "fleetkey/v1 fingerprint";
    msg.append(key.begin(), key.end());
    uint8_t digest[32];
    crypto_hash_sha256(digest, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
    CHECK(crypto::fingerprint(key) == util::to_hex(util::ByteView(digest, 16)));
  }
}
