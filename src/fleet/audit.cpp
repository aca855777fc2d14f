#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/fleet/audit.hpp>
#include <fleetkey/util/file.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>

namespace fleetkey::fleet {

void list_audit(Fleet& fleet, const AuditQuery& query, const std::function<void(const AuditEvent&)>& fn)
{
  registry::AuditFilter filter;
  // Asked for as the rows are stored (registry::audit_text): a bad byte matches the U+FFFD written for it,
  // on both backends.
  const auto stored = [](const std::optional<std::string>& s) {
    return s ? std::optional<std::string>(registry::audit_text(*s)) : std::nullopt;
  };
  filter.action = stored(query.action);
  filter.subject = stored(query.subject);
  if (query.since) {
    const auto t = util::parse_time(*query.since);
    if (!t) {
      throw Error(Exit::usage, "--since: {}", t.error());
    }
    filter.since = util::format_time(*t); // the registry's own form, which sorts as text
  }
  if (query.last) {
    // CLI11 turns a number past int64 into INT64_MAX rather than refusing it: bound it here.
    constexpr int64_t k_max_last = 1'000'000'000'000;
    if (*query.last < 1) {
      throw Error(Exit::usage, "--last must be at least 1");
    }
    if (*query.last > k_max_last) {
      throw Error(Exit::usage, "--last must be at most {}", k_max_last);
    }
    filter.last = *query.last;
  }
  fleet.registry().for_each_audit(filter, [&fn](const registry::AuditRecord& e) { fn(audit_event_of(e)); });
}

namespace {

constexpr std::string_view k_checkpoint_prefix = "fleetkey-audit-checkpoint ";
constexpr size_t k_max_checkpoint_file = 4096;

bool all_digits(std::string_view s)
{
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<int64_t> parse_seq(std::string_view s)
{
  if (!all_digits(s) || s.size() > 18 || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  int64_t v = 0;
  for (const char c : s) {
    v = v * 10 + (c - '0');
  }
  return v;
}

AuditCheckpoint checked(AuditCheckpoint cp)
{
  if (!registry::audit_hash_from_hex(cp.hash)) {
    throw Error(Exit::usage, "checkpoint: hash must be 64 lower-case hex digits");
  }
  if (cp.seq == 0 ? !cp.at.empty()
                  : (!util::parse_time(cp.at) || util::format_time(*util::parse_time(cp.at)) != cp.at)) {
    throw Error(Exit::usage, "checkpoint: at must be a time as the registry writes it (2026-12-07T06:00:00Z)");
  }
  return cp;
}

} // namespace

std::string format_checkpoint(const AuditCheckpoint& cp)
{
  return fmt::format("{}seq={} hash={} at={}\n", k_checkpoint_prefix, cp.seq, cp.hash, cp.at);
}

AuditCheckpoint parse_checkpoint(std::string_view text)
{
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (!text.empty() && text.front() == '{') {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("hash")
        || !j["hash"].is_string() || !j.contains("at") || !j["at"].is_string()) {
      throw Error(Exit::usage, "checkpoint: not a JSON object with seq, hash and at");
    }
    const auto seq = j["seq"].get<uint64_t>();
    if (seq > static_cast<uint64_t>(INT64_MAX)) {
      throw Error(Exit::usage, "checkpoint: seq out of range");
    }
    return checked({static_cast<int64_t>(seq), j["hash"].get<std::string>(), j["at"].get<std::string>()});
  }
  if (text.substr(0, k_checkpoint_prefix.size()) != k_checkpoint_prefix || text.find('\n') != std::string_view::npos) {
    throw Error(Exit::usage, "checkpoint: not one line \"{}seq=N hash=HEX at=TIME\"", k_checkpoint_prefix);
  }
  text.remove_prefix(k_checkpoint_prefix.size());
  AuditCheckpoint cp;
  const std::string_view names[] = {"seq=", "hash=", "at="};
  std::string_view values[3];
  for (int i = 0; i < 3; ++i) {
    const size_t space = i < 2 ? text.find(' ') : text.size();
    const auto field = text.substr(0, space);
    if (space == std::string_view::npos || field.substr(0, names[i].size()) != names[i]) {
      throw Error(Exit::usage, "checkpoint: expected {}... (\"{}seq=N hash=HEX at=TIME\")", names[i],
                  k_checkpoint_prefix);
    }
    values[i] = field.substr(names[i].size());
    text.remove_prefix(std::min(text.size(), space + 1));
  }
  const auto seq = parse_seq(values[0]);
  if (!seq) {
    throw Error(Exit::usage, "checkpoint: seq must be a decimal number");
  }
  return checked({*seq, std::string(values[1]), std::string(values[2])});
}

AuditCheckpoint read_checkpoint(const std::string& path)
{
  const auto text = util::read_file(path == "-" ? "/dev/stdin" : path, k_max_checkpoint_file);
  if (!text) {
    throw Error(Exit::usage, "--checkpoint: {}", text.error());
  }
  return parse_checkpoint(*text);
}

std::string_view problem_name(AuditProblem p)
{
  switch (p) {
  case AuditProblem::none:
    return "";
  case AuditProblem::changed:
    return "changed";
  case AuditProblem::deleted:
    return "deleted";
  case AuditProblem::inserted:
    return "inserted";
  case AuditProblem::truncated:
    return "truncated";
  case AuditProblem::rewritten:
    return "rewritten";
  }
  return "";
}

AuditVerdict verify_audit(Fleet& fleet, const std::optional<AuditCheckpoint>& checkpoint)
{
  AuditVerdict v;
  registry::AuditHash prev{};   // hash(seq - 1)
  registry::AuditHash before{}; // hash(seq - 2)
  int64_t expected = 1;
  int64_t prev_id = 0;
  v.head.hash = util::to_hex(prev);
  const auto fail = [&v](AuditProblem p, int64_t seq, std::optional<int64_t> id, std::string detail) {
    v.problem = p;
    v.seq = seq;
    v.id = id;
    v.detail = std::move(detail);
  };
  fleet.registry().for_each_audit_row([&](const registry::AuditChainRow& row) {
    if (!v.ok()) {
      return;
    }
    if (!row.seq || !row.hash) {
      fail(AuditProblem::inserted, row.seq.value_or(0), row.id,
           "a row without a seq and hash: not written by fleetkey");
      return;
    }
    const int64_t seq = *row.seq;
    if (seq < expected) {
      fail(AuditProblem::inserted, seq, row.id, fmt::format("a second row with seq {}", seq));
      return;
    }
    if (seq > expected) {
      fail(AuditProblem::deleted, expected, std::nullopt,
           seq == expected + 1 ? fmt::format("seq {} is missing: the next row has seq {}", expected, seq)
                               : fmt::format("seqs {} to {} are missing", expected, seq - 1));
      return;
    }
    const auto stored = registry::audit_hash_from_hex(*row.hash);
    if (!stored || registry::audit_link(prev, seq, row) != *stored) {
      // A row slipped in before this one, with the rows after it renumbered, leaves this row
      // linking as it did at its old place.
      if (stored && seq >= 2 && registry::audit_link(before, seq - 1, row) == *stored) {
        fail(AuditProblem::inserted, seq - 1, prev_id,
             fmt::format("the row with seq {} was put in before this one: the next row links to seq {} before it",
                         seq - 1, seq - 2));
      } else {
        fail(AuditProblem::changed, seq, row.id,
             stored ? "its hash is not that of its contents after the previous row's hash"
                    : "its hash is not 64 lower-case hex digits");
      }
      return;
    }
    if (checkpoint && seq == checkpoint->seq && (*row.hash != checkpoint->hash || row.at != checkpoint->at)) {
      fail(AuditProblem::rewritten, seq, row.id,
           "the chain verifies but differs from the checkpoint here: rows up to it were rewritten");
      return;
    }
    before = prev;
    prev = *stored;
    prev_id = row.id;
    ++expected;
    ++v.rows;
    v.head = {seq, *row.hash, row.at};
  });
  if (v.ok() && checkpoint && checkpoint->seq > v.head.seq) {
    fail(AuditProblem::truncated, v.head.seq + 1, std::nullopt,
         fmt::format("the checkpoint names seq {}, the trail ends at seq {}: rows after it were cut off",
                     checkpoint->seq, v.head.seq));
  }
  if (v.ok() && checkpoint && checkpoint->seq == 0 && checkpoint->hash != util::to_hex(registry::AuditHash{})) {
    fail(AuditProblem::rewritten, 0, std::nullopt, "a checkpoint at seq 0 has the hash of 32 zero bytes");
  }
  return v;
}

std::string verdict_message(const AuditVerdict& v)
{
  const std::string where = v.id ? fmt::format("seq {} (id {})", v.seq, *v.id) : fmt::format("seq {}", v.seq);
  return fmt::format("audit chain broken at {}: {}: {}", where, problem_name(v.problem), v.detail);
}

AuditCheckpoint audit_checkpoint(Fleet& fleet)
{
  const auto v = verify_audit(fleet, std::nullopt);
  if (!v.ok()) {
    throw Error(Exit::audit_chain, "{}", verdict_message(v));
  }
  return v.head;
}

} // namespace fleetkey::fleet
