// fleetkey master backup | restore: the key ring as Shamir shares on paper, and back.
#include "commands.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/backup.hpp>
#include <fleetkey/util/file.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <sys/stat.h>
#include <unistd.h>

namespace fleetkey::cmd {

namespace {

struct BackupCliOptions
{
  unsigned shares = 0;
  unsigned threshold = 0;
  std::optional<std::string> output;
  std::optional<std::string> qr;
};

// DIR, made 0700 and removed again (with what is in it) unless the backup succeeds.
class OutputDir
{
public:
  explicit OutputDir(std::string path)
      : m_path(std::move(path))
  {
    if (::mkdir(m_path.c_str(), 0700) != 0) {
      if (errno == EEXIST) {
        throw Error(Exit::conflict, "{} already exists", m_path);
      }
      throw Error(Exit::failure, "cannot create {}: {}", m_path, std::strerror(errno));
    }
  }
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  ~OutputDir()
  {
    if (!m_kept) {
      for (const auto& name : m_names) {
        ::unlink((m_path + "/" + name).c_str());
      }
      ::rmdir(m_path.c_str());
    }
  }
  util::AtomicFile& add(const std::string& name)
  {
    m_names.push_back(name);
    return m_files.emplace_back(m_path + "/" + name, util::Overwrite::no);
  }
  void commit()
  {
    for (auto& f : m_files) {
      f.commit();
    }
    m_kept = true;
  }
  const std::vector<std::string>& names() const { return m_names; }

private:
  std::string m_path;
  std::vector<std::string> m_names;
  std::deque<util::AtomicFile> m_files;
  bool m_kept = false;
};

crypto::Secret share_json(const fleet::Share& share)
{
  const auto b32 = fleet::share_base32(share);
  const std::string head = fmt::format(R"({{"backup":"{}","index":{},"shares":{},"threshold":{},"share":")",
                                       fleet::backup_id_hex(share), share.index, share.shares, share.threshold);
  crypto::SecretText text(head.size() + b32.size() + 3);
  text.append(head).append(crypto::as_text(b32)).append("\"}\n");
  return std::move(text).take();
}

} // namespace

void add_master_backup(CLI::App& master, Context& ctx)
{
  auto o = std::make_shared<BackupCliOptions>();
  auto* backup = add_command(
      master, ctx, "backup",
      "Split the master key file's secret (every version) into Shamir shares for paper: any --threshold of the "
      "--shares shares restore it (master restore)",
      [&ctx, o] {
        if (o->output == "-") {
          o->output.reset(); // -o -: the shares on standard output, as without -o
        }
        if (o->qr && !o->output) {
          throw Error(Exit::usage, "--qr needs -o DIR");
        }
        if (o->output && util::exists(*o->output)) {
          throw Error(Exit::conflict, "{} already exists", *o->output);
        }
        std::optional<OutputDir> dir;
        ctx.fleet().use_key_file();
        const auto b = fleet::backup_master_key(ctx.fleet(), o->shares, o->threshold, [&](const fleet::Backup& made) {
          if (!o->output) {
            return;
          }
          dir.emplace(*o->output);
          for (const auto& s : made.shares) {
            dir->add(fmt::format("share-{}.txt", s.index)).write(fleet::share_text(s).span());
            if (o->qr) {
              const auto image = fleet::share_qr(s, *o->qr == "png" ? fleet::ShareQr::png : fleet::ShareQr::svg);
              dir->add(fmt::format("share-{}.{}", s.index, *o->qr)).write(image.span());
            }
          }
        });
        const auto& first = b.shares.front();
        if (dir) {
          dir->commit();
          if (ctx.json()) {
            ctx.print_json({{"backup", fleet::backup_id_hex(first)},
                            {"shares", first.shares},
                            {"threshold", first.threshold},
                            {"versions", b.versions},
                            {"directory", *o->output},
                            {"files", dir->names()}});
          } else {
            ctx.note(fmt::format("wrote {} shares of backup {} to {} (any {} restore the master key, {} version{}): "
                                 "print each for a different keeper, then delete the files",
                                 first.shares, fleet::backup_id_hex(first), *o->output, first.threshold, b.versions,
                                 b.versions == 1 ? "" : "s"));
          }
          return;
        }
        for (const auto& s : b.shares) {
          if (ctx.json()) {
            ctx.write_secret(share_json(s));
          } else {
            if (s.index > 1) {
              ctx.print("\n");
            }
            ctx.write_secret(fleet::share_text(s));
          }
        }
      });
  backup->add_option("--shares", o->shares, "How many shares to make, 2-255")->required()->type_name("N");
  backup->add_option("--threshold", o->threshold, "How many shares restore the key, 2 to --shares")
      ->required()
      ->type_name("K");
  backup
      ->add_option("-o,--output", o->output,
                   "Write share-I.txt (and share-I.png or .svg with --qr) for each share into DIR, a new directory "
                   "made 0700 (default, or -: print the shares on stdout)")
      ->type_name("DIR");
  backup->add_option("--qr", o->qr, "Also write each share as a QR code: png or svg (needs -o)")
      ->check(CLI::IsMember({"png", "svg"}));
}

void add_master_restore(CLI::App& master, Context& ctx)
{
  auto files = std::make_shared<std::vector<std::string>>();
  auto ro = std::make_shared<fleet::RestoreOptions>();
  auto* restore = add_command(
      master, ctx, "restore",
      "Write a new master key file from enough shares of a master backup (from FILEs, or typed on the terminal), "
      "under a new passphrase",
      [&ctx, files, ro] {
        auto& fleet = ctx.fleet();
        if (util::exists(fleet.paths().master_key)) {
          throw Error(Exit::conflict,
                      "{} already exists: restore writes a new key file (move the old one away, or pass --master-key)",
                      fleet.paths().master_key);
        }
        std::vector<std::pair<std::string, fleet::Share>> shares;
        for (const auto& f : *files) {
          shares.emplace_back(f, fleet::read_share_file(f));
        }
        if (files->empty()) {
          if (::isatty(STDIN_FILENO) == 0) {
            throw Error(Exit::usage, "no share given: name the share files, or run on a terminal to type them");
          }
          unsigned needed = 2;
          while (shares.size() < needed) {
            const auto name = fmt::format("share {}", shares.size() + 1);
            const auto prompt = fmt::format("Share {} of {}{} (base32, spaces ignored): ", shares.size() + 1, needed,
                                            shares.empty() ? " or more" : "");
            shares.emplace_back(name, fleet::prompt_share(prompt, name));
            needed = shares.front().second.threshold;
          }
        }
        const auto r = fleet::restore_master_key(fleet, shares, *ro);
        const auto& path = fleet.paths().master_key;
        if (ctx.json()) {
          ctx.print_json({{"master_key", path},
                          {"backup", r.backup_id},
                          {"versions", r.versions},
                          {"current_version", r.current_version},
                          {"fingerprint", r.fingerprint},
                          {"encrypted", !ro->no_passphrase},
                          {"test_key", r.test_key},
                          {"registry_checked", r.registry_checked}});
          return;
        }
        ctx.note(fmt::format("restored {} master key version{} from backup {} to {} ({}{})", r.versions,
                             r.versions == 1 ? "" : "s", r.backup_id, path,
                             ro->no_passphrase ? "unencrypted" : "encrypted", r.test_key ? ", TEST KEY" : ""));
        ctx.note(fmt::format("current version {}, fingerprint {}{}", r.current_version, r.fingerprint,
                             r.registry_checked ? " (matches the registry)" : ""));
      });
  restore->add_option("FILE", *files, "Share files, as master backup wrote them (default: type them on the terminal)");
  restore->add_flag("--no-passphrase", ro->no_passphrase, "Write the key file unencrypted (protect it otherwise)");
  restore->add_option("--kdf", ro->kdf_profile, "Argon2id cost of the new passphrase key")
      ->check(CLI::IsMember({"interactive", "moderate", "sensitive"}))
      ->capture_default_str();
}

} // namespace fleetkey::cmd
