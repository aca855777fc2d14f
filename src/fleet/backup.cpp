#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/shamir.hpp>
#include <fleetkey/fleet/backup.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <cstring>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

constexpr uint8_t k_share_format = 1;
constexpr size_t k_header_len = 14; // format, backup id, K, N, x, length
constexpr size_t k_checksum_len = 4;
constexpr std::string_view k_base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t k_group = 4;           // characters a group
constexpr size_t k_groups_per_line = 8; // groups a line

size_t base32_len(size_t bytes)
{
  return (bytes * 8 + 4) / 5;
}

void checksum(std::span<const uint8_t> data, uint8_t out[k_checksum_len])
{
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, data.data(), data.size());
  std::memcpy(out, digest, k_checksum_len);
}

Error bad_share(std::string_view name, std::string_view why)
{
  return Error(Exit::key, "{}: {}", name, why);
}

} // namespace

std::string backup_id_hex(const Share& share)
{
  return util::to_hex(share.backup_id);
}

crypto::Secret share_bytes(const Share& share)
{
  const size_t len = share.y.size();
  crypto::Secret out(k_header_len + len + k_checksum_len);
  uint8_t* p = out.data();
  p[0] = k_share_format;
  std::memcpy(p + 1, share.backup_id.data(), share.backup_id.size());
  p[9] = static_cast<uint8_t>(share.threshold);
  p[10] = static_cast<uint8_t>(share.shares);
  p[11] = static_cast<uint8_t>(share.index);
  p[12] = static_cast<uint8_t>(len >> 8);
  p[13] = static_cast<uint8_t>(len);
  std::memcpy(p + k_header_len, share.y.data(), len);
  checksum(out.span().first(k_header_len + len), p + k_header_len + len);
  return out;
}

crypto::Secret share_base32(const Share& share)
{
  const auto bytes = share_bytes(share);
  crypto::Secret out(base32_len(bytes.size()));
  unsigned buffer = 0;
  unsigned bits = 0;
  size_t n = 0;
  for (const uint8_t b : bytes.span()) {
    buffer = ((buffer << 8) | b) & 0xfffu;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.data()[n++] = static_cast<uint8_t>(k_base32[(buffer >> bits) & 31u]);
    }
  }
  if (bits > 0) {
    out.data()[n++] = static_cast<uint8_t>(k_base32[(buffer << (5 - bits)) & 31u]);
  }
  buffer = 0;
  return out;
}

crypto::Secret share_text(const Share& share)
{
  const auto b32 = share_base32(share);
  const std::string comment =
      fmt::format("# fleetkey master key share {} of {}, backup {}: any {} of the {} shares restore the key\n",
                  share.index, share.shares, backup_id_hex(share), share.threshold, share.shares);
  const size_t groups = (b32.size() + k_group - 1) / k_group;
  crypto::SecretText text(comment.size() + b32.size() + groups + 1);
  text.append(comment);
  const auto chars = crypto::as_text(b32);
  for (size_t g = 0; g < groups; ++g) {
    text.append(chars.substr(g * k_group, k_group));
    text.append((g + 1) % k_groups_per_line == 0 || g + 1 == groups ? "\n" : " ");
  }
  return std::move(text).take();
}

Share parse_share(std::string_view text, std::string_view name)
{
  crypto::Secret chars(text.size());
  size_t n = 0;
  bool line_start = true;
  bool comment = false;
  for (const char c : text) {
    if (c == '\n') {
      line_start = true;
      comment = false;
      continue;
    }
    if (comment) {
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '-') {
      continue;
    }
    if (c == '#' && line_start) {
      comment = true;
      continue;
    }
    line_start = false;
    const char upper = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    if (k_base32.find(upper) == std::string_view::npos) {
      throw bad_share(name, "not a fleetkey master key share (a share is base32: letters A-Z and digits 2-7)");
    }
    chars.data()[n++] = static_cast<uint8_t>(upper);
  }
  const size_t len = n * 5 / 8;
  if (n == 0 || base32_len(len) != n) {
    throw bad_share(name, n == 0 ? "no share in it" : "the share is incomplete (characters are missing)");
  }
  crypto::Secret bytes(len);
  unsigned buffer = 0;
  unsigned bits = 0;
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto v = static_cast<unsigned>(k_base32.find(static_cast<char>(chars.data()[i])));
    buffer = ((buffer << 5) | v) & 0xfffu;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.data()[out++] = static_cast<uint8_t>(buffer >> bits);
    }
  }
  const bool padding_clear = (buffer & ((1u << bits) - 1u)) == 0;
  buffer = 0;
  if (len < k_header_len + k_checksum_len) {
    throw bad_share(name, "the share is too short");
  }
  const uint8_t* p = bytes.data();
  const size_t y_len = (size_t{p[12]} << 8) | p[13];
  uint8_t want[k_checksum_len];
  if (k_header_len + y_len + k_checksum_len == len) {
    checksum(bytes.span().first(k_header_len + y_len), want);
  }
  if (k_header_len + y_len + k_checksum_len != len || !padding_clear
      || !crypto::equal({want, k_checksum_len}, bytes.span().subspan(k_header_len + y_len))) {
    throw bad_share(name, "the share is mistyped or damaged (its checksum does not match)");
  }
  if (p[0] != k_share_format) {
    throw bad_share(name, fmt::format("unsupported share format {}", p[0]));
  }
  Share share;
  std::memcpy(share.backup_id.data(), p + 1, share.backup_id.size());
  share.threshold = p[9];
  share.shares = p[10];
  share.index = p[11];
  if (share.threshold < 2 || share.shares < share.threshold || share.index < 1 || share.index > share.shares
      || y_len == 0) {
    throw bad_share(name, "the share's threshold, count or index is out of range");
  }
  share.y = crypto::Secret::copy_of(bytes.span().subspan(k_header_len, y_len));
  return share;
}

Backup backup_master_key(Fleet& fleet, unsigned shares, unsigned threshold,
                         const std::function<void(const Backup&)>& write)
{
  if (threshold < 2 || shares < threshold || shares > 255) {
    throw Error(Exit::usage,
                "--threshold must be at least 2 and at most --shares, and --shares at most 255 (got {} "
                "of {})",
                threshold, shares);
  }
  hsm::refuse_in_hsm(fleet, "master backup",
                     "its keys cannot leave the token (not extractable): take the backup before master import-to-hsm");
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring();
  const auto secret = ring.serialize();
  if (secret.size() > 0xffff) {
    throw Error(Exit::failure, "the key ring is {} bytes, more than a share holds", secret.size());
  }
  std::array<uint8_t, 8> id{};
  randombytes_buf(id.data(), id.size());
  Backup backup;
  backup.versions = ring.versions().size();
  auto ys = crypto::shamir_split(secret.span(), shares, threshold);
  for (unsigned i = 0; i < shares; ++i) {
    Share s;
    s.backup_id = id;
    s.threshold = threshold;
    s.shares = shares;
    s.index = i + 1;
    s.y = std::move(ys[i]);
    backup.shares.push_back(std::move(s));
  }
  registry::Transaction tx(reg);
  reg.audit("master.backup", "master",
            {{"backup", util::to_hex(id)},
             {"shares", shares},
             {"threshold", threshold},
             {"versions", backup.versions},
             {"fingerprint", crypto::fingerprint(ring.current().key.span())}});
  write(backup);
  tx.commit();
  return backup;
}

namespace {

// The secret the shares of one backup combine into; they must be at least its threshold, distinct,
// and of the same backup and shape. `shares` pairs each with the name it is reported by.
crypto::Secret combine_shares(const std::vector<std::pair<std::string, Share>>& shares)
{
  const auto& [first_name, first] = shares.front();
  std::vector<uint8_t> xs;
  std::vector<crypto::Secret> ys;
  for (const auto& [name, s] : shares) {
    if (s.backup_id != first.backup_id) {
      throw Error(Exit::key, "{} is from backup {} and {} from backup {}: shares of different backups do not combine",
                  first_name, backup_id_hex(first), name, backup_id_hex(s));
    }
    if (s.threshold != first.threshold || s.shares != first.shares || s.y.size() != first.y.size()) {
      throw Error(Exit::key, "{} and {} claim the same backup but disagree on its shape: one of them is damaged",
                  first_name, name);
    }
    for (size_t i = 0; i < xs.size(); ++i) {
      if (xs[i] == s.index) {
        throw Error(Exit::key, "{} and {} are both share {}: {} different shares are needed", shares[i].first, name,
                    s.index, first.threshold);
      }
    }
    xs.push_back(static_cast<uint8_t>(s.index));
    ys.push_back(crypto::Secret::copy_of(s.y.span()));
  }
  if (xs.size() < first.threshold) {
    throw Error(Exit::key, "backup {} needs {} shares to restore the master key, {} given", backup_id_hex(first),
                first.threshold, xs.size());
  }
  return crypto::shamir_combine(xs, ys);
}

} // namespace

Restored restore_master_key(Fleet& fleet, const std::vector<std::pair<std::string, Share>>& shares,
                            const RestoreOptions& options)
{
  const auto& paths = fleet.paths();
  if (util::exists(paths.master_key)) {
    throw Error(Exit::conflict,
                "{} already exists: restore writes a new key file (move the old one away, or pass "
                "--master-key)",
                paths.master_key);
  }
  if (shares.empty()) {
    throw Error(Exit::usage, "no share given");
  }
  const auto kdf = crypto::kdf_profile(options.kdf_profile);
  const auto& first = shares.front().second;
  const auto secret = combine_shares(shares);
  std::optional<crypto::Keyring> ring;
  try {
    ring.emplace(crypto::Keyring::deserialize(secret.span()));
  } catch (const Error&) {
    throw Error(Exit::key, "the shares of backup {} do not combine into a master key ring: one of them is wrong",
                backup_id_hex(first));
  }
  Restored out;
  out.backup_id = backup_id_hex(first);
  out.versions = ring->versions().size();
  out.current_version = ring->current_version();
  out.fingerprint = crypto::fingerprint(ring->current().key.span());
  out.test_key = ring->is_test_key();

  // The registry, when there is one, must be the one this ring was made with (a PostgreSQL registry
  // is always there: one that is not fails here, exit 6).
  std::optional<registry::Transaction> tx;
  if (registry::Store::is_postgresql(paths.registry) || util::exists(paths.registry)) {
    if (const auto why = keyring_mismatch(fleet.registry().master_keys(), *ring); !why.empty()) {
      throw Error(Exit::key, "the restored master key does not belong to registry {} ({}): nothing written",
                  paths.registry, why);
    }
    out.registry_checked = true;
  }
  std::optional<crypto::Secret> pass;
  if (!options.no_passphrase) {
    pass = fleet.passphrase(Confirm::yes, "New passphrase for the master key: ");
  }
  if (out.registry_checked) {
    auto& reg = fleet.registry();
    tx.emplace(reg);
    reg.audit("master.restore", "master",
              {{"backup", out.backup_id},
               {"versions", out.versions},
               {"fingerprint", out.fingerprint},
               {"encrypted", pass.has_value()}});
  }
  util::make_directories(util::dirname(paths.master_key), 0700);
  crypto::write_key_file(paths.master_key, *ring, pass ? &*pass : nullptr, kdf, crypto::Replace::no);
  if (tx) {
    try {
      tx->commit();
    } catch (...) {
      ::unlink(paths.master_key.c_str());
      throw;
    }
  }
  return out;
}

} // namespace fleetkey::fleet
