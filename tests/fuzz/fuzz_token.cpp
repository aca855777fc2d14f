// libFuzzer target for the token decoders: the input is token text (CWT base64url or JWT), and,
// after a first byte of 0xff, a binary COSE_Mac0. Every input must decode or fail cleanly, and a
// decoded token must verify against a fixed key without crashing.
#include <fleetkey/token/cbor.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/token/verify.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

using namespace fleetkey;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  static const util::Bytes key(32, 0x42);
  static token::Verification v;
  token::Checks checks;
  checks.now = 1767225600;
  if (size > 0 && data[0] == 0xff) {
    const util::ByteView bin(data + 1, size - 1);
    for (auto f : {token::Format::cwt, token::Format::cwt64}) {
      (void)token::verify_cwt_bytes(bin, key, f, checks, v);
    }
    token::cbor::Reader r(bin);
    (void)r.skip();
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto f : {token::Format::cwt, token::Format::cwt64, token::Format::jwt}) {
    const auto reason = token::verify_with_key(text, key, f, checks, v);
    if (reason != token::Reason::malformed) {
      std::string out;
      token::append_claims_json(out, v.claims, v.decoded.format);
      token::token_id(v.claims, v.decoded.format, out);
    }
  }
  return 0;
}
