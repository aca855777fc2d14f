// The audit trail in the SQLite registry: a hash chain (fleetkey-audit(1)), each row linked to
// the head under the write lock of the change it records.

#include "registry/sqlite_store.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::registry {

namespace {

AuditChainRow read_chain_row(const Stmt& st)
{
  AuditChainRow r;
  r.id = st.integer(0);
  if (!st.is_null(1)) {
    r.seq = st.integer(1);
  }
  r.hash = st.optional_text(2);
  r.at = st.text(3);
  r.actor = st.text(4);
  r.action = st.text(5);
  r.subject = st.text(6);
  r.details = st.text(7);
  return r;
}

} // namespace

AuditHead SqliteStore::audit_head()
{
  Stmt st = m_db.prepare("SELECT seq, hash, at FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
  if (!st.step()) {
    return {0, util::to_hex(AuditHash{}), ""};
  }
  return {st.integer(0), st.optional_text(1).value_or(""), st.text(2)};
}

void SqliteStore::audit(std::string_view action, std::string_view subject, const nlohmann::json& details)
{
  std::optional<Transaction> own;
  if (!in_transaction()) {
    own.emplace(*this);
  }
  // The head is read under the write lock that this change already holds, so no other writer
  // can link to it too.
  const AuditHead head = audit_head();
  const auto prev = audit_hash_from_hex(head.hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash: run fleetkey audit verify",
                head.seq);
  }
  AuditChainRow row;
  row.at = util::format_time(util::unix_now());
  row.actor = actor();
  row.action = action;
  row.subject = audit_text(subject); // the same rule on both backends: bad bytes become U+FFFD
  // Details can quote bytes that are not UTF-8 (a file name); they become U+FFFD, as in --json output.
  row.details = details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const int64_t seq = head.seq + 1;
  const std::string hash = util::to_hex(audit_link(*prev, seq, row));
  Stmt st =
      m_db.prepare("INSERT INTO audit (at, actor, action, subject, details, seq, hash) VALUES (?, ?, ?, ?, ?, ?, ?)");
  st.bind(1, row.at).bind(2, row.actor).bind(3, row.action).bind(4, row.subject).bind(5, row.details);
  st.bind(6, seq).bind(7, hash);
  st.run();
  if (own) {
    own->commit();
  }
}

void SqliteStore::link_audit_rows()
{
  const AuditHead head = audit_head();
  auto prev = audit_hash_from_hex(head.hash);
  if (!prev) {
    throw Error(Exit::registry, "the audit trail's last row (seq {}) has no valid hash", head.seq);
  }
  int64_t seq = head.seq;
  Stmt rows = m_db.prepare("SELECT id, seq, hash, at, actor, action, subject, details FROM audit"
                           " WHERE hash IS NULL ORDER BY id");
  Stmt set = m_db.prepare("UPDATE audit SET seq = ?, hash = ? WHERE id = ?");
  while (rows.step()) {
    const AuditChainRow row = read_chain_row(rows);
    *prev = audit_link(*prev, ++seq, row);
    set.bind(1, seq).bind(2, util::to_hex(*prev)).bind(3, row.id);
    set.run();
  }
}

void SqliteStore::for_each_audit_row(const std::function<void(const AuditChainRow&)>& fn)
{
  Stmt st = m_db.prepare("SELECT id, seq, hash, at, actor, action, subject, details FROM audit"
                         " ORDER BY seq IS NOT NULL, seq, id");
  while (st.step()) {
    fn(read_chain_row(st));
  }
}

void SqliteStore::for_each_audit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn)
{
  const std::string matching = "SELECT id, at, actor, action, subject, details FROM audit"
                               " WHERE (?1 IS NULL OR action = ?1"
                               "  OR (substr(?1, -1) = '.' AND substr(action, 1, length(?1)) = ?1))"
                               " AND (?2 IS NULL OR subject = ?2 OR json_extract(details, '$.device') = ?2"
                               "  OR json_extract(details, '$.aud') = ?2 OR json_extract(details, '$.token_id') = ?2)"
                               " AND (?3 IS NULL OR at >= ?3)";
  // All matches: one scan in id order, each row handed on as it is read. The last N: the newest N
  // (a backward scan), then sorted again, N rows only.
  Stmt st = m_db.prepare(f.last < 0 ? matching + " ORDER BY id"
                                    : "SELECT * FROM (" + matching + " ORDER BY id DESC LIMIT ?4) ORDER BY id");
  st.bind(1, f.action).bind(2, f.subject).bind(3, f.since);
  if (f.last >= 0) {
    st.bind(4, f.last);
  }
  while (st.step()) {
    fn({st.integer(0), st.text(1), st.text(2), st.text(3), st.text(4), nlohmann::json::parse(st.text_view(5))});
  }
}

int64_t SqliteStore::last_audit_id()
{
  Stmt st = m_db.prepare("SELECT max(id) FROM audit");
  return st.step() && !st.is_null(0) ? st.integer(0) : 0;
}

std::optional<std::string> SqliteStore::audit_action(int64_t id)
{
  Stmt st = m_db.prepare("SELECT action FROM audit WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) {
    return std::nullopt;
  }
  return st.text(0);
}

} // namespace fleetkey::registry
