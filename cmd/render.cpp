#include "render.hpp"

#include <fleetkey/fleet/users.hpp>
#include <fleetkey/util/text.hpp>

namespace fleetkey::cmd {

namespace {
Json opt(const std::optional<std::string>& v)
{
  return v ? Json(*v) : Json(nullptr);
}
Json labels_json(const fleet::Labels& labels)
{
  Json out = Json::object();
  for (const auto& [k, v] : labels) {
    out[k] = v;
  }
  return out;
}
} // namespace

Json to_json(const fleet::MasterKeyVersion& r)
{
  return Json{{"version", r.version},     {"status", r.status},           {"current", r.status == "current"},
              {"created", r.created},     {"fingerprint", r.fingerprint}, {"test_key", r.test_key},
              {"retired", opt(r.retired)}};
}

Json to_json(const fleet::Device& r)
{
  return Json{{"id", r.id},
              {"model", opt(r.model)},
              {"labels", labels_json(r.labels)},
              {"status", r.status},
              {"key_version", r.key_version},
              {"fingerprint", r.fingerprint},
              {"pairing_counter", r.pairing_counter},
              {"created", r.created},
              {"revoked", opt(r.revoked)},
              {"revoke_reason", opt(r.revoke_reason)}};
}

Json to_json(const fleet::User& r)
{
  return Json{{"name", r.name}, {"labels", labels_json(r.labels)}, {"created", r.created}};
}

Json to_json(const fleet::GrantInfo& r)
{
  return Json{{"user", r.user},
              {"device", r.device},
              {"role", r.role},
              {"epoch", r.epoch},
              {"status", fleet::grant_status(r, util::unix_now())}, // expired and revoked as they are
              {"created", r.created},
              {"expires", opt(r.expires)},
              {"revoked", opt(r.revoked)},
              {"revoke_reason", opt(r.revoke_reason)}};
}

std::string labels_text(const fleet::Labels& labels)
{
  std::string out;
  for (const auto& [k, v] : labels) {
    out += (out.empty() ? "" : ", ") + k + "=" + v;
  }
  return out.empty() ? "-" : out;
}

} // namespace fleetkey::cmd
