// The files of a production run: each label written whole into a regular file of its own, 0600, or
// (--resume) kept when it already holds what the run would write; the manifest and Matter's
// verifier files, built in guarded memory.
#include "pairing_files.hpp"

#include "pairing_checks.hpp"

#include <fleetkey/core/error.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <span>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

std::span<const uint8_t> verifier_of(const crypto::Secret& verifiers, size_t i)
{
  return std::span<const uint8_t>(verifiers.data() + i * pairing::k_spake2p_verifier_len,
                                  pairing::k_spake2p_verifier_len);
}

void append_base64(crypto::SecretText& t, std::span<const uint8_t> bytes)
{
  t.append_base64(bytes, sodium_base64_VARIANT_ORIGINAL);
}

} // namespace

std::string csv_field(std::string_view s)
{
  if (s.find_first_of(",\"\r\n") == std::string_view::npos && (s.empty() || (s.front() != ' ' && s.back() != ' '))) {
    return std::string(s);
  }
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

// Whether `path` is a regular file with one name that holds exactly `data` (pair --resume).
bool holds(const std::string& path, std::string_view data)
{
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st
  {
  };
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1
      || static_cast<size_t>(st.st_size) != data.size()) {
    return false;
  }
  std::string have(data.size(), '\0');
  size_t got = 0;
  while (got < have.size()) {
    const auto n = ::read(fd.get(), have.data() + got, have.size() - got);
    if (n <= 0) {
      return false;
    }
    got += static_cast<size_t>(n);
  }
  const bool same = sodium_memcmp(have.data(), data.data(), data.size()) == 0;
  sodium_memzero(have.data(), have.size());
  return same;
}

// Labels carry PINs: a label is written only into a regular file of its own that ends up 0600.
// O_NOFOLLOW refuses a symbolic link, O_NONBLOCK a FIFO without a reader; an existing file is
// truncated only once it is known to be a regular file with no other name. On failure the file is
// removed if this call created or truncated it, so that a full disk leaves no partial label.
void write_whole(const std::string& path, std::string_view data, util::Overwrite overwrite)
{
  const int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  // O_EXCL first: a file this call creates is known to be its own to remove.
  util::Fd fd(::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600));
  const bool created = fd.valid();
  if (!created && errno == EEXIST && overwrite == util::Overwrite::yes) {
    fd = util::Fd(::open(path.c_str(), flags));
  }
  if (!fd.valid()) {
    if (errno == ELOOP) {
      throw Error(Exit::conflict, "{} is a symbolic link: a label is never written through one", path);
    }
    throw Error(errno == EEXIST ? Exit::conflict : Exit::failure, "cannot create {}: {}", path, std::strerror(errno));
  }
  struct RemoveOnFailure
  {
    const std::string& path;
    bool armed;
    ~RemoveOnFailure()
    {
      if (armed) {
        ::unlink(path.c_str());
      }
    }
  } remove{path, created};
  struct stat st
  {
  };
  if (::fstat(fd.get(), &st) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
    throw Error(Exit::conflict, "{} is not a regular file with one name: a label is never written into it", path);
  }
  remove.armed = true;
  if (((st.st_mode & 07777) != 0600 && ::fchmod(fd.get(), 0600) != 0) || ::ftruncate(fd.get(), 0) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (!util::write_fully(fd.get(), data)) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  if (::close(fd.release()) != 0) {
    throw Error(Exit::failure, "cannot write {}: {}", path, std::strerror(errno));
  }
  remove.armed = false;
}

bool directory_empty(const std::string& path)
{
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) {
    throw Error(Exit::failure, "cannot read directory {}: {}", path, std::strerror(errno));
  }
  while (const dirent* e = ::readdir(dir.get())) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      return false;
    }
  }
  return true;
}

// DIR/manifest.csv: one row a device (fleetkey-formats(5)).
crypto::SecretText manifest_text(const BatchOptions& o, const std::vector<registry::DeviceRecord>& devices,
                                 const std::vector<LabelRow>& rows, const crypto::Secret& verifiers, size_t room)
{
  const bool matter = o.pair.scheme == PairScheme::matter;
  crypto::SecretText csv(room);
  csv.append(matter ? "device,passcode,manual_code,payload,file,discriminator,iterations,salt,verifier\n"
                    : "device,pin,manual_code,payload,file\n");
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& r = rows[i];
    csv.append(csv_field(devices[i].id)).append(",").append(r.code).append(",").append(r.manual).append(",");
    csv.append(csv_field(r.payload)).append(",").append(csv_field(r.file));
    if (matter) {
      csv.append(fmt::format(",{},{},", r.discriminator, iterations_of(o.pair)));
      append_base64(csv, r.salt);
      csv.append(",");
      append_base64(csv, verifier_of(verifiers, i));
    }
    csv.append("\n");
  }
  return csv;
}

// Matter: the same verifiers in the layouts of connectedhomeip's `spake2p gen-verifier` and of
// esp-matter-mfg-tool's --csv (the keys) and --mcsv (one row a device), in the manifest's order.
std::vector<std::pair<std::string, crypto::SecretText>>
matter_files(const BatchOptions& o, const std::vector<LabelRow>& rows, const crypto::Secret& verifiers, size_t room)
{
  std::vector<std::pair<std::string, crypto::SecretText>> extra;
  crypto::SecretText spake(room);
  crypto::SecretText master(room);
  spake.append("Index,PIN Code,Iteration Count,Salt,Verifier\n");
  master.append("discriminator,iteration-count,salt,verifier\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    spake.append(fmt::format("{},{},{},", i, rows[i].code, iterations_of(o.pair)));
    append_base64(spake, rows[i].salt);
    spake.append(",");
    append_base64(spake, verifier_of(verifiers, i));
    spake.append("\n");
    master.append(fmt::format("{},{},", rows[i].discriminator, iterations_of(o.pair)));
    append_base64(master, rows[i].salt);
    master.append(",");
    append_base64(master, verifier_of(verifiers, i));
    master.append("\n");
  }
  crypto::SecretText config(256);
  config.append("chip-factory,namespace,\ndiscriminator,data,u32\niteration-count,data,u32\n"
                "salt,data,string\nverifier,data,string\n");
  extra.emplace_back(o.out_dir + "/spake2p.csv", std::move(spake));
  extra.emplace_back(o.out_dir + "/esp-matter-config.csv", std::move(config));
  extra.emplace_back(o.out_dir + "/esp-matter-master.csv", std::move(master));
  return extra;
}

} // namespace fleetkey::fleet
