// fleetkey PINs: derivation (values from an independent Python HKDF), triviality, the
// continuation of the stream, the payload and what decode says about bad codes.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/pairing.hpp>
#include <fleetkey/pairing/decode.hpp>
#include <fleetkey/pairing/pin.hpp>

#include <doctest/doctest.h>

#include <map>
#include <numeric>

using namespace fleetkey;
using namespace fleetkey::pairing;

namespace {

std::array<uint8_t, 32> test_key()
{
  std::array<uint8_t, 32> key{};
  std::iota(key.begin(), key.end(), uint8_t{0});
  return key;
}

StreamDeriver test_device()
{
  return StreamDeriver(test_key());
}

} // namespace

TEST_CASE("derive_pin matches the reference implementation")
{
  // K_dev = 00 01 ... 1f; computed with Python's hmac from fleetkey-pairing(5).
  const auto d = test_device();
  CHECK(derive_pin(d, 0, 6) == "742583");
  CHECK(derive_pin(d, 1, 6) == "454174");
  CHECK(derive_pin(d, 0, 8) == "78742583");
  CHECK(derive_pin(d, 1, 8) == "62454174");
  CHECK(derive_pin(d, 0, 12) == "135378742583");
  CHECK(derive_pin(d, 1, 12) == "839962454174");
  CHECK(util::to_hex(d.read(crypto::Info("pairing").add_u64(0), 16)) == "384166c4e0a5cd37242ddee8ababf731");
  CHECK_THROWS_AS(derive_pin(d, 0, 5), Error);
  CHECK_THROWS_AS(derive_pin(d, 0, 13), Error);
}

TEST_CASE("StreamDeriver gives DeviceDeriver's bytes, device after device")
{
  StreamDeriver streams;
  for (uint8_t seed : {uint8_t{0}, uint8_t{7}, uint8_t{200}}) {
    auto key = test_key();
    key[0] = seed;
    const auto secret = crypto::Secret::copy_of(key);
    const crypto::DeviceDeriver reference(secret);
    streams.rekey(secret.span());
    for (size_t length : {size_t{1}, size_t{32}, size_t{33}, size_t{64}, size_t{8160}}) {
      CAPTURE(length);
      const auto expected = reference.pairing_bytes(5, length);
      const auto got = streams.read(crypto::Info("pairing").add_u64(5), length);
      CHECK(util::to_hex(got) == util::to_hex(expected.span()));
      const auto other = reference.derive(crypto::Info("pairing-matter-passcode").add_u64(0), length);
      CHECK(util::to_hex(streams.read(crypto::Info("pairing-matter-passcode").add_u64(0), length))
            == util::to_hex(other.span()));
    }
  }
  CHECK_THROWS_AS(streams.read(crypto::Info("pairing"), 8161), Error);
}

TEST_CASE("trivial PINs")
{
  for (const char* t :
       {"00000000", "99999999", "12345678", "01234567", "78901234", "98765432", "21098765", "567890123456", "654321"}) {
    CAPTURE(t);
    CHECK(is_trivial_pin(t));
  }
  for (const char* t : {"12345679", "11111112", "13579246", "02468024", "12121212"}) {
    CAPTURE(t);
    CHECK_FALSE(is_trivial_pin(t));
  }
}

TEST_CASE("sample continues past the first 64 bytes with the same stream")
{
  const auto d = test_device();
  const crypto::Info info = crypto::Info("pairing").add_u64(0);
  // Rejecting the first 8 words forces the continuation; the 9th word of the full stream wins.
  int calls = 0;
  const uint64_t v = sample(d, info, uint64_t{1} << 32, [&](uint64_t) { return ++calls > 8; });
  const auto full = d.read(info, 72);
  uint64_t w = 0;
  for (size_t i = 64; i < 72; ++i) {
    w = (w << 8) | full[i];
  }
  CHECK(v == (w & 0xffffffff));
  CHECK(calls == 9);
  CHECK_THROWS_AS(sample(d, info, 10, [](uint64_t) { return false; }), Error);
}

TEST_CASE("sample is uniform over the residues")
{
  // Small bound, many counters: every residue appears, none is far from the mean.
  const auto d = test_device();
  std::map<uint64_t, int> seen;
  for (uint64_t n = 0; n < 2000; ++n) {
    ++seen[sample(d, crypto::Info("pairing").add_u64(n), 10, [](uint64_t) { return true; })];
  }
  CHECK(seen.size() == 10);
  for (const auto& [value, count] : seen) {
    CAPTURE(value);
    CHECK(count > 140);
    CHECK(count < 260);
  }
}

TEST_CASE("codes, grouping and the native payload")
{
  CHECK(with_check_digit("48210937") == "482109374");
  CHECK(group_code("482109374") == "4821-0937-4");
  CHECK(group_code("4821093") == "4821-09-3");
  CHECK(group_code("1353787425835") == "1353-7874-2583-5");
  CHECK(native_payload("482109374", "SN-42") == "FK1:482109374:SN-42");

  const auto p = parse_native_payload("FK1:482109374:SN:42/x");
  REQUIRE(p);
  CHECK(p->code == "482109374");
  CHECK(p->device == "SN:42/x");
}

TEST_CASE("decode explains bad fleetkey codes")
{
  const auto error = [](std::string_view text, SchemeHint hint = SchemeHint::any) {
    auto r = decode(text, hint);
    REQUIRE_FALSE(r);
    return r.error();
  };
  CHECK(error("482109375") == "bad check digit: 482109375 ends in 5, the Verhoeff digit of 48210937 is 4");
  CHECK(error("4821-0937") == "bad check digit: 48210937 ends in 7, the Verhoeff digit of 4821093 is 2");
  CHECK(error("12345") == "wrong length: 5 digits, a fleetkey code has 7-13 (a PIN of 6-12 and a check digit)");
  CHECK(error("FK2:482109374:SN-42") == "unknown fleetkey payload version 2 (this fleetkey reads version 1)");
  CHECK(error("XY1:482109374:SN-42")
        == "unknown scheme \"XY\" (fleetkey payloads start with \"FK1:\", Matter ones with \"MT:\")");
  CHECK(error("hello") == "not a pairing payload: expected SCHEME VERSION \":\" (\"FK1:\" or \"MT:\")");
  CHECK(error("FK1:482109374") == "truncated payload: expected FK1:CODE:DEVICE");
  CHECK(error("FK1:482109374:") == "the device id must be 1-128 bytes of printable UTF-8");
  CHECK(error("FK1:48a109375:SN") == "the code \"48a109375\" must be decimal digits");
  const std::string trivial = with_check_digit("12345678");
  CHECK(error(trivial) == "trivial PIN 12345678: fleetkey never issues one");
  CHECK(error("") == "empty code");

  auto ok = decode("4821 0937 4", SchemeHint::any);
  REQUIRE(ok);
  CHECK(std::get<DecodedNativeCode>(*ok).code == "482109374");
  // 11 digits read as Matter unless told otherwise.
  const std::string eleven = with_check_digit("4821093747");
  CHECK(std::holds_alternative<DecodedNativeCode>(*decode(eleven, SchemeHint::fleetkey)));
  const auto as_matter = decode(eleven, SchemeHint::any);
  const bool read_as_native = as_matter.ok() && std::holds_alternative<DecodedNativeCode>(*as_matter);
  CHECK_FALSE(read_as_native);
}

TEST_CASE("label file names are injective and stay in the directory")
{
  using fleet::label_file_name;
  using fleet::QrFormat;
  CHECK(label_file_name("SN-42", QrFormat::png) == "SN-42.png");
  CHECK(label_file_name("a/b c", QrFormat::png) == "a%2Fb%20c.png");
  CHECK(label_file_name("..", QrFormat::svg) == "%2E..svg");
  CHECK(label_file_name("%2F", QrFormat::png) == "%252F.png");
  CHECK(label_file_name("\xc3\xbc", QrFormat::png) == "%C3%BC.png");
  const std::string long_id(128, '\xe2');
  const auto name = label_file_name(long_id, QrFormat::png);
  CHECK(name.size() == 200 + 1 + 16 + 4);
  CHECK(name.substr(200, 1) == "~");
  CHECK(name != label_file_name(std::string(127, '\xe2') + "x", QrFormat::png));
}
