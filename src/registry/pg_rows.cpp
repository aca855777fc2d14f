// The PostgreSQL backend's shared helpers (pg_rows.hpp).

#include "registry/pg_rows.hpp"

#include <nlohmann/json.hpp>

namespace fleetkey::registry::pg {

DeviceRecord read_device(const Result& r, int i)
{
  DeviceRecord d;
  d.id = r.text(i, 0);
  d.model = r.optional_text(i, 1);
  d.labels = nlohmann::json::parse(r.text(i, 2));
  d.key_version = static_cast<uint32_t>(r.integer(i, 3));
  d.fingerprint = r.text(i, 4);
  d.status = r.text(i, 5);
  d.pairing_counter = r.integer(i, 6);
  d.created = r.text(i, 7);
  d.revoked = r.optional_text(i, 8);
  d.revoke_reason = r.optional_text(i, 9);
  return d;
}

GrantRecord read_grant(const Result& r, int i)
{
  GrantRecord g;
  g.user = r.text(i, 0);
  g.device = r.text(i, 1);
  g.role = r.text(i, 2);
  g.epoch = static_cast<uint64_t>(r.integer(i, 3));
  g.status = r.text(i, 4);
  g.created = r.text(i, 5);
  g.expires = r.optional_text(i, 6);
  g.revoked = r.optional_text(i, 7);
  g.revoke_reason = r.optional_text(i, 8);
  return g;
}

MasterKeyRecord read_master(const Result& r, int i)
{
  MasterKeyRecord m;
  m.version = static_cast<uint32_t>(r.integer(i, 0));
  m.created = r.text(i, 1);
  m.fingerprint = r.text(i, 2);
  m.test_key = r.integer(i, 3) != 0;
  m.status = r.text(i, 4);
  m.retired = r.optional_text(i, 5);
  return m;
}

AuditChainRow read_chain_row(const Result& r, int i)
{
  AuditChainRow row;
  row.id = r.integer(i, 0);
  if (!r.is_null(i, 1)) {
    row.seq = r.integer(i, 1);
  }
  row.hash = r.optional_text(i, 2);
  row.at = r.text(i, 3);
  row.actor = r.text(i, 4);
  row.action = r.text(i, 5);
  row.subject = r.text(i, 6);
  row.details = r.text(i, 7);
  return row;
}

std::string num(int64_t v)
{
  return std::to_string(v);
}

Param opt(const std::optional<std::string>& s)
{
  return s ? Param(std::string_view(*s)) : Param();
}

// COPY's text format: backslash, tab, newline and carriage return escaped.
void copy_field(std::string& out, std::string_view v)
{
  for (const char c : v) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      out += c;
    }
  }
}

} // namespace fleetkey::registry::pg
