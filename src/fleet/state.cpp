#include "fleet/convert.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/state.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/token/cbor.hpp>
#include <fleetkey/token/token.hpp>
#include <fleetkey/util/text.hpp>

#include <algorithm>
#include <map>
#include <memory>

namespace fleetkey::fleet {

namespace {

// What every document of one run shares: a deriver per master version.
struct StateContext
{
  std::map<uint32_t, std::unique_ptr<crypto::MasterDeriver>> derivers;
  bool test_key = false;
};

StateContext load_context(Fleet& fleet)
{
  StateContext ctx;
  ctx.test_key = fleet.keyring().is_test_key();
  return ctx;
}

// K_dev(D) from the device's own master version, retired or not: a lock of a retired version must
// still be told so. The fingerprint check catches a key file that does not match the registry.
crypto::Secret state_device_key(Fleet& fleet, StateContext& ctx, const registry::DeviceRecord& d)
{
  auto& slot = ctx.derivers[d.key_version];
  if (!slot) {
    slot = std::make_unique<crypto::MasterDeriver>(fleet.keyring().get(d.key_version));
  }
  auto key = slot->device_key(d.id);
  if (crypto::fingerprint(key.span()) != d.fingerprint) {
    throw Error(Exit::key, "device \"{}\": derived key does not match its registered fingerprint", d.id);
  }
  return key;
}

void append_mac_structure(util::Bytes& out, util::ByteView protected_header, util::ByteView payload)
{
  token::cbor::Writer w(out);
  w.array(4);
  w.text("MAC0");
  w.bytes(protected_header);
  w.bytes({});
  w.bytes(payload);
}

// The device's users, sorted by their 64-bit handle (uid). Two users whose handles collide share one
// entry: the higher epoch, which refuses rather than admits (fleetkey-state(5)).
void add_users(StateDocument& doc, const std::vector<registry::GrantRecord>& grants,
               const crypto::DeviceDeriver& device)
{
  for (const auto& g : grants) {
    StateUser u;
    u.user = g.user;
    const auto uid = device.derive(crypto::Info("state-user").add(g.user), k_state_uid_size);
    std::copy(uid.span().begin(), uid.span().end(), u.uid.begin());
    u.min_epoch = g.epoch;
    doc.users.push_back(std::move(u));
  }
  std::sort(doc.users.begin(), doc.users.end(), [](const StateUser& a, const StateUser& b) { return a.uid < b.uid; });
  for (size_t i = 1; i < doc.users.size();) {
    if (doc.users[i].uid == doc.users[i - 1].uid) {
      doc.users[i - 1].min_epoch = std::max(doc.users[i - 1].min_epoch, doc.users[i].min_epoch);
      doc.users.erase(doc.users.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

// The device's revoked CWT ids that have not expired, sorted and unique. A CWT's token id is the hex
// of its cti: an id that is not whole bytes of hex names no CWT.
void add_revoked_ids(StateDocument& doc, registry::Store& reg, int64_t now)
{
  reg.for_each_live_revoked_token(doc.device, now, [&doc](std::string_view id) {
    if (id.size() % 2 == 0) {
      if (auto bytes = util::from_hex(id)) {
        doc.revoked_ids.push_back(std::move(*bytes));
      }
    }
  });
  std::sort(doc.revoked_ids.begin(), doc.revoked_ids.end());
  doc.revoked_ids.erase(std::unique(doc.revoked_ids.begin(), doc.revoked_ids.end()), doc.revoked_ids.end());
}

// The document's CBOR payload, its keys 0 to 9 (fleetkey-state(5)).
util::Bytes encode_payload(const StateDocument& doc)
{
  util::Bytes payload;
  token::cbor::Writer p(payload);
  p.map(10);
  p.uint(0);
  p.uint(k_state_format_version);
  p.uint(1);
  p.text(doc.device);
  p.uint(2);
  p.uint(doc.seq);
  p.uint(3);
  p.uint(static_cast<uint64_t>(doc.iat));
  p.uint(4);
  p.uint(static_cast<uint64_t>(doc.exp));
  p.uint(5);
  p.uint(doc.revoked ? 1 : 0);
  p.uint(6);
  p.map(doc.users.size());
  for (const auto& u : doc.users) {
    p.bytes(u.uid);
    p.uint(u.min_epoch);
  }
  p.uint(7);
  p.array(doc.revoked_ids.size());
  for (const auto& id : doc.revoked_ids) {
    p.bytes(id);
  }
  p.uint(8);
  p.array(doc.retired.size());
  for (const auto v : doc.retired) {
    p.uint(v);
  }
  p.uint(9);
  p.uint(doc.pairing);
  return payload;
}

// doc.encoded: `payload` in a tagged COSE_Mac0 (HMAC 256/256, kid doc.kid) under the device's
// revocation key.
void encode_mac0(StateDocument& doc, const util::Bytes& payload, const crypto::DeviceDeriver& device)
{
  util::Bytes protected_header;
  token::cbor::Writer h(protected_header);
  h.map(2);
  h.uint(1);
  h.uint(5); // HMAC 256/256
  h.uint(4);
  h.bytes(util::as_bytes(doc.kid));

  util::Bytes mac_input;
  append_mac_structure(mac_input, protected_header, payload);
  const token::MacKey key(device.revocation_key().span());
  uint8_t tag[32];
  key.mac(mac_input, tag);

  token::cbor::Writer out(doc.encoded);
  out.tag(17);
  out.array(4);
  out.bytes(protected_header);
  out.map(0);
  out.bytes(payload);
  out.bytes(util::ByteView(tag, sizeof tag));
}

StateDocument build(Fleet& fleet, StateContext& ctx, std::string_view device_id, int64_t now, int64_t max_age)
{
  auto& reg = fleet.registry();
  // One snapshot for the device row, its seq and what the document lists: a document never holds a
  // seq newer than its contents.
  const registry::ReadSnapshot snapshot(reg);
  const auto d = require_device(fleet, device_id);
  StateDocument doc;
  doc.device = d.id;
  doc.key_version = d.key_version;
  doc.kid = token::format_kid(d.key_version, d.id);
  doc.seq = reg.device_state_seq(d.id);
  doc.iat = now;
  doc.exp = now + max_age;
  doc.revoked = d.status == "revoked";
  for (const auto& mk : reg.master_keys()) {
    if (mk.status == "retired") {
      doc.retired.push_back(mk.version);
    }
  }
  doc.pairing = static_cast<uint64_t>(d.pairing_counter);
  doc.test_key = ctx.test_key;
  const crypto::DeviceDeriver device(state_device_key(fleet, ctx, d));
  add_users(doc, reg.grants_of_device(d.id), device);
  add_revoked_ids(doc, reg, now);
  encode_mac0(doc, encode_payload(doc), device);
  return doc;
}

} // namespace

void check_state_max_age(int64_t seconds)
{
  if (seconds <= 0 || seconds > k_max_state_max_age) {
    throw Error(Exit::usage, "--max-age must be between 1 second and 366 days");
  }
}

StateDocument make_state(Fleet& fleet, std::string_view device, int64_t now, int64_t max_age)
{
  check_state_max_age(max_age);
  require_device(fleet, device); // validated and found before the key file is read
  auto ctx = load_context(fleet);
  return build(fleet, ctx, device, now, max_age);
}

void for_each_state(Fleet& fleet, int64_t now, int64_t max_age, const std::function<void(const StateDocument&)>& fn)
{
  check_state_max_age(max_age);
  auto ctx = load_context(fleet);
  // The ids first (not the records: a million of them would not fit in memory as comfortably), since
  // building a document reads the registry, which must not happen inside the scan.
  std::vector<std::string> ids;
  fleet.registry().for_each_device("", [&ids](const registry::DeviceRecord& d) { ids.push_back(d.id); });
  for (const auto& id : ids) {
    fn(build(fleet, ctx, id, now, max_age));
  }
}

std::string state_file_name(std::string_view device, std::string_view suffix)
{
  std::string out;
  for (size_t i = 0; i < device.size(); ++i) {
    const auto c = static_cast<unsigned char>(device[i]);
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                       || c == '-' || (c == '.' && i > 0);
    out += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return out.append(suffix);
}

std::string state_c_array(const StateDocument& doc)
{
  std::string comment;
  for (const char ch : doc.device) {
    // The id goes into a C comment: nothing that could end it, nothing unprintable.
    const auto c = static_cast<unsigned char>(ch);
    comment +=
        (c < 0x20 || c == 0x7f || c == '*' || c == '/' || c == '\\') ? fmt::format("\\x{:02x}", c) : std::string(1, ch);
  }
  std::string out =
      fmt::format("/* fleetkey state document for device \"{}\", {}, seq {}, issued {}, expires {}, {} bytes{} */\n",
                  comment, doc.kid.substr(0, doc.kid.find('/')), doc.seq, util::format_time(doc.iat),
                  util::format_time(doc.exp), doc.encoded.size(), doc.test_key ? ", TEST KEY" : "");
  out += fmt::format("static const unsigned char fleetkey_state_document[{}] = {{", doc.encoded.size());
  for (size_t i = 0; i < doc.encoded.size(); ++i) {
    out += fmt::format("{}0x{:02x}{}", i % 12 == 0 ? "\n    " : " ", doc.encoded[i],
                       i + 1 < doc.encoded.size() ? "," : "");
  }
  out += fmt::format("\n}};\nstatic const unsigned int fleetkey_state_document_len = {};\n", doc.encoded.size());
  return out;
}

} // namespace fleetkey::fleet
