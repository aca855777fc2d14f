// util/file.hpp: Fd, AtomicFile and its FileError (and core/file_error.hpp's exit codes for it),
// open_private and read_into, passwd_name.
#include <fleetkey/core/error.hpp>
#include <fleetkey/core/file_error.hpp>
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
#include <functional>
#include <optional>
#include <span>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace fleetkey;

TEST_CASE("Fd moves ownership")
{
  util::Fd a(::open("/dev/null", O_RDONLY));
  const int raw = a.get();
  REQUIRE(raw >= 0);
  util::Fd b(std::move(a));
  CHECK_FALSE(a.valid());
  CHECK(b.get() == raw);
  util::Fd c;
  c = std::move(b);
  CHECK(c.get() == raw);
  CHECK(::fcntl(raw, F_GETFD) != -1);
  c = util::Fd();
  CHECK(::fcntl(raw, F_GETFD) == -1); // closed by the move-assignment
}

TEST_CASE("AtomicFile throws a FileError that names the file and what went wrong")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const auto thrown = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const util::FileError& e) {
      return std::optional<util::FileError>(e);
    }
    return std::optional<util::FileError>();
  };
  const auto exists = thrown([&] { util::AtomicFile(dir, util::Overwrite::no); });
  REQUIRE(exists);
  CHECK(exists->kind() == util::FileError::Kind::exists);
  CHECK(exists->error_number() == EEXIST);
  CHECK(exists->path() == dir);
  CHECK(std::string(exists->what()) == dir + " already exists");
  const auto as_error = file_error(*exists);
  CHECK(as_error.code() == Exit::conflict);
  CHECK(as_error.has_reason("file_exists"));
  CHECK(as_error.message() == dir + " already exists");

  const auto bad = thrown([&] { util::AtomicFile(dir + "/..", util::Overwrite::yes); });
  REQUIRE(bad);
  CHECK(bad->kind() == util::FileError::Kind::bad_name);
  CHECK(file_error(*bad).code() == Exit::usage);
  CHECK(std::string(bad->what()) == "\"" + dir + "/..\" does not name a file");

  const auto missing = thrown([&] { util::AtomicFile(dir + "/no/such/dir/f", util::Overwrite::no); });
  REQUIRE(missing);
  CHECK(missing->kind() == util::FileError::Kind::failure);
  CHECK(missing->error_number() == ENOENT);
  CHECK(std::string(missing->what()) == "cannot create " + dir + "/no/such/dir/f: " + std::strerror(ENOENT));
  CHECK(file_error(*missing).code() == Exit::failure);
  CHECK(file_error(*missing).reason() == nullptr);

  util::FileError appeared(util::FileError::Kind::appeared, EEXIST, "x", "cannot create x: File exists");
  CHECK(file_error(appeared).code() == Exit::conflict);
  CHECK(file_error(appeared).reason() == nullptr);
  std::filesystem::remove_all(dir);
}

TEST_CASE("AtomicFile renames only on commit")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/out";
  {
    util::AtomicFile f(path, util::Overwrite::no);
    f.write(std::string_view("half"));
    // With O_TMPFILE (ext4, tmpfs) nothing is visible until commit, so a kill leaves nothing.
    CHECK(std::filesystem::is_empty(dir));
  }
  CHECK_FALSE(util::exists(path));
  CHECK(std::filesystem::is_empty(dir));
  {
    util::AtomicFile f(path, util::Overwrite::no);
    f.write(std::string_view("whole"));
    f.commit();
  }
  CHECK(*util::read_file(path) == "whole");
  CHECK_THROWS_AS(util::AtomicFile(path, util::Overwrite::no), util::FileError);
  {
    util::AtomicFile f(path, util::Overwrite::yes);
    f.write(std::string_view("new"));
    f.commit();
  }
  CHECK(*util::read_file(path) == "new");
  CHECK(std::filesystem::status(path).permissions() == std::filesystem::perms(0600));
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) {
    ++entries;
  }
  CHECK(entries == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("open_private checks the opened file, and read_into reads it whole or refuses it")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/secret";
  {
    util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    REQUIRE(::write(fd.get(), "12345678", 8) == 8);
  }
  auto fd = util::open_private(path, "test file");
  REQUIRE(fd);
  // The check is on the descriptor: what was opened is what is read, whatever the path becomes.
  REQUIRE(::rename(path.c_str(), (dir + "/moved").c_str()) == 0);
  uint8_t buf[8];
  auto n = util::read_into(*fd, buf, "test file");
  REQUIRE(n);
  CHECK(*n == 8);
  CHECK(std::memcmp(buf, "12345678", 8) == 0);
  auto small = util::open_private(dir + "/moved", "test file");
  REQUIRE(small);
  uint8_t seven[7];
  auto too_big = util::read_into(*small, seven, "test file x");
  REQUIRE_FALSE(too_big);
  CHECK(too_big.error() == "test file x is larger than 7 bytes");
  ::chmod((dir + "/moved").c_str(), 0640);
  auto shared = util::open_private(dir + "/moved", "test file");
  REQUIRE_FALSE(shared);
  CHECK(shared.error()
        == fmt::format(
            "test file {0}/moved is accessible by group or others (mode 0640); fix it with: chmod 600 {0}/moved", dir));
  REQUIRE(::symlink((dir + "/moved").c_str(), path.c_str()) == 0);
  auto link = util::open_private(path, "test file"); // followed: the target's mode is what counts
  REQUIRE_FALSE(link);
  CHECK(link.error()
        == fmt::format("test file {0} is accessible by group or others (mode 0640); fix it with: chmod 600 {0}", path));
  ::chmod((dir + "/moved").c_str(), 0600);
  CHECK(util::open_private(path, "test file"));
  auto missing = util::open_private(dir + "/none", "test file");
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == fmt::format("cannot read test file {}/none: No such file or directory", dir));
  std::filesystem::remove_all(dir);
}

TEST_CASE("passwd_name reads the first account with a uid, without NSS")
{
  char tmpl[] = "/tmp/fleetkey-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/passwd";
  const std::string gecos(10000, 'g'); // longer than the first buffer: read again with a larger one
  const std::string text = "+::1001:1001:::\n"
                           "-nis:x:1002:1002::/:/bin/sh\n"
                           "root:x:0:0:root:/root:/bin/bash\n"
                           "no colons here\n"
                           ":x:1003:1003::/:/bin/sh\n"
                           "alice:x:1001:1001:"
                           + gecos
                           + ":/home/alice:/bin/sh\n"
                             "alias:x:1001:1001::/home/alice:/bin/sh\n"
                             "carol:x:1004:1004::/home/carol:/bin/sh";
  {
    util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644));
    REQUIRE(util::write_fully(fd.get(), text));
  }
  CHECK(util::passwd_name(path, 0) == "root");
  CHECK(util::passwd_name(path, 1001) == "alice"); // the first account, after the "+" line
  CHECK(util::passwd_name(path, 1002) == std::nullopt);
  CHECK(util::passwd_name(path, 1003) == std::nullopt);
  CHECK(util::passwd_name(path, 1004) == "carol"); // the last line needs no newline
  CHECK(util::passwd_name(path, 4242) == std::nullopt);
  CHECK(util::passwd_name(dir + "/none", 0) == std::nullopt);
  std::filesystem::remove_all(dir);
}
