// util/bytes.hpp: hex and base64.
#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/secret.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace fleetkey;

TEST_CASE("hex and base64")
{
  const util::Bytes b = {0x00, 0xff, 0x10};
  CHECK(util::to_hex(b) == "00ff10");
  CHECK(*util::from_hex("00FF10") == b);
  CHECK_FALSE(util::from_hex("0"));
  CHECK_FALSE(util::from_hex("zz"));
  CHECK(util::to_base64(b) == "AP8Q");
  CHECK(util::to_base64url(util::as_bytes("\xfb\xff")) == "-_8");
  CHECK(*util::from_base64url("-_8") == util::Bytes{0xfb, 0xff});
  CHECK_FALSE(util::from_base64url("-_8="));
  CHECK_FALSE(util::from_base64("AP8Q!"));
  // Into a caller's buffer, as the key file's payload is decoded into guarded memory.
  std::vector<uint8_t> buf(util::base64_decoded_max(4));
  CHECK(*util::from_base64_into(buf, "AP8Q") == 3);
  CHECK(util::Bytes(buf.begin(), buf.begin() + 3) == b);
  CHECK(*util::from_base64_into(buf, "AA==") == 1);
  CHECK_FALSE(util::from_base64_into(buf, "AP8Q!"));
  CHECK_FALSE(util::from_base64_into(buf, "AP8"));
}
