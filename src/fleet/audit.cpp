#include <fleetkey/fleet/audit.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::fleet {

void list_audit(Fleet& fleet, const AuditQuery& query, const std::function<void(const registry::AuditRecord&)>& fn)
{
  registry::AuditFilter filter;
  filter.action = query.action;
  filter.subject = query.subject;
  if (query.since) {
    const auto t = util::parse_time(*query.since);
    if (!t) {
      throw Error(Exit::usage, "--since: {}", t.error());
    }
    filter.since = util::format_time(*t); // the registry's own form, which sorts as text
  }
  if (query.last) {
    if (*query.last < 1) {
      throw Error(Exit::usage, "--last must be at least 1");
    }
    filter.last = *query.last;
  }
  fleet.registry().for_each_audit(filter, fn);
}

} // namespace fleetkey::fleet
