// PKCS#11 URIs and the HSM reference (fleetkey-formats(5), HSM REFERENCE); the token itself is tested
// against SoftHSM2 by tests/cli/test_hsm.py.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/util/bytes.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace fleetkey;
namespace p11 = crypto::pkcs11;

namespace {

Exit code_of(std::string_view uri)
{
  try {
    p11::parse_uri(uri);
  } catch (const Error& e) {
    return e.code();
  }
  return Exit::ok;
}

} // namespace

TEST_CASE("pkcs11 URI: attributes, percent-encoding and the canonical text")
{
  const auto uri =
      p11::parse_uri("pkcs11:object=prod%20keys;serial=42;token=My%3bToken?module-path=/usr/lib/p%2011.so");
  CHECK(uri.token == "My;Token");
  CHECK(uri.serial == "42");
  CHECK(uri.object == "prod keys");
  CHECK(uri.module_path == "/usr/lib/p 11.so");
  CHECK(uri.text() == "pkcs11:token=My%3BToken;serial=42;object=prod%20keys?module-path=/usr/lib/p%2011.so");
  CHECK(p11::parse_uri(uri.text()).text() == uri.text());
  CHECK(p11::parse_uri("pkcs11:slot-id=7;type=secret-key").slot_id == 7u);
  CHECK(p11::parse_uri("pkcs11:").text() == "pkcs11:");
  CHECK(p11::object_label("fleetkey-0a1b2c3d", 12) == "fleetkey-0a1b2c3d/v12");
}

TEST_CASE("pkcs11 URI: what is refused")
{
  for (const char* bad : {"pkcs11", "PKCS11:token=a", "http://x", "pkcs11:token=a;token=b", "pkcs11:token",
                          "pkcs11:id=%01", "pkcs11:type=private", "pkcs11:slot-id=x", "pkcs11:token=%4",
                          "pkcs11:token=%zz", "pkcs11:token=a?pin-value=1234", "pkcs11:token=a?pin-source=file:/p",
                          "pkcs11:token=a?module-name=softhsm2", "pkcs11:object="}) {
    CAPTURE(bad);
    CHECK(code_of(bad) == Exit::usage);
  }
}

TEST_CASE("pkcs11 check value: the first 16 bytes of HKDF-Expand(PRK, info(\"hsm-check\"), 32)")
{
  // From tests/cli/reference.py: PRK = bytes 0..31.
  uint8_t prk[32];
  for (uint8_t i = 0; i < 32; ++i) {
    prk[i] = i;
  }
  CHECK(p11::check_value(crypto::Secret::copy_of(prk)) == "2ad0d56254a5b941a6a72a6741283291");
}

TEST_CASE("HSM reference: round trip and corruption")
{
  p11::Reference ref;
  ref.uri = "pkcs11:token=fleet;object=k?module-path=/m.so";
  ref.current = 2;
  ref.versions = {{1, 1700000000, std::string(32, 'a'), std::string(32, 'b')},
                  {2, 1700000100, std::string(32, 'c'), std::string(32, 'd')}};
  const auto text = p11::encode_reference(ref);
  CHECK(text
        == "# fleetkey master key file: the master key is in a PKCS#11 token. Layout: fleetkey-formats(5).\n"
           "format: fleetkey-hsm-reference 1\n"
           "uri: pkcs11:token=fleet;object=k?module-path=/m.so\n"
           "test-key: no\n"
           "current-version: 2\n"
           "version: 1 1700000000 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
           "version: 2 1700000100 cccccccccccccccccccccccccccccccc dddddddddddddddddddddddddddddddd\n");
  CHECK(p11::is_reference(text));
  const auto back = p11::decode_reference(text);
  CHECK(p11::encode_reference(back) == text);

  ref.test_key = true;
  ref.test_seed_hex = "00ff";
  const auto test_text = p11::encode_reference(ref);
  CHECK(test_text.ends_with("test-seed: 00ff\n"));
  CHECK(p11::decode_reference(test_text).test_seed_hex == "00ff");

  const auto refused = [](const std::string& t) {
    try {
      p11::decode_reference(t);
    } catch (const Error& e) {
      return e.code() == Exit::key;
    }
    return false;
  };
  const auto replace = [&](std::string t, const std::string& from, const std::string& to) {
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  CHECK(refused(replace(text, "current-version: 2", "current-version: 3")));
  CHECK(refused(replace(text, "version: 2 1700000100", "version: 1 1700000100")));
  CHECK(refused(replace(text, "test-key: no", "test-key: yes")));
  CHECK(refused(replace(text, " dddd", " DDDD")));
  CHECK(refused(replace(text, "format: fleetkey-hsm-reference 1", "format: fleetkey-hsm-reference 2")));
  CHECK(refused(text.substr(0, text.size() - 1)));
  CHECK(refused(text + "extra: 1\n"));
  CHECK(refused(replace(test_text, "test-seed: 00ff\n", "")));
}
