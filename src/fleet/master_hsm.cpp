#include "fleet/convert.hpp"
#include "fleet/master_steps.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/fleet/hsm.hpp>
#include <fleetkey/fleet/master.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/bytes.hpp>
#include <fleetkey/util/text.hpp>

#include <sodium.h>

namespace fleetkey::fleet {

void choose_object(crypto::pkcs11::Uri& uri)
{
  if (uri.object.empty()) {
    uint8_t tag[4];
    randombytes_buf(tag, sizeof tag);
    uri.object = "fleetkey-" + util::to_hex(tag);
  }
}

crypto::pkcs11::ReferenceVersion import_version(crypto::pkcs11::Token& token, CreatedObjects& created,
                                                const std::string& label, const crypto::MasterKey& mk)
{
  const auto prk = crypto::hkdf_extract(util::as_bytes(crypto::k_salt), mk.key.span());
  token.import_secret(label, prk);
  created.add(label);
  return {mk.version, mk.created, crypto::fingerprint(mk.key.span()), crypto::pkcs11::check_value(prk)};
}

crypto::pkcs11::Reference import_ring(crypto::pkcs11::Token& token, CreatedObjects& created,
                                      const crypto::pkcs11::Uri& uri, const crypto::Keyring& ring)
{
  for (const auto& mk : ring.versions()) {
    const auto label = crypto::pkcs11::object_label(uri.object, mk.version);
    if (token.has_object(label)) {
      throw Error(Exit::conflict,
                  "PKCS#11 token \"{}\" holds an object labelled \"{}\" already: name another prefix with object= "
                  "in the URI",
                  token.label(), label)
          .with_reason("exists");
    }
  }
  crypto::pkcs11::Reference ref;
  ref.uri = uri.text();
  ref.test_key = ring.is_test_key();
  ref.current = ring.current_version();
  if (ring.is_test_key()) {
    ref.test_seed_hex = util::to_hex(ring.test_seed().span());
  }
  for (const auto& mk : ring.versions()) {
    ref.versions.push_back(import_version(token, created, crypto::pkcs11::object_label(uri.object, mk.version), mk));
  }
  return ref;
}

crypto::KeyFileHeader hsm_header(const crypto::pkcs11::Reference& ref)
{
  crypto::KeyFileHeader h;
  h.hsm = true;
  h.test_key = ref.test_key;
  h.current_version = ref.current;
  return h;
}

MasterKeyVersion rotate_in_hsm(Fleet& fleet)
{
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring();
  const auto token = hsm::token_of(ring);
  auto ref = crypto::pkcs11::decode_reference(crypto::as_text(fleet.key_file_text()));
  const auto uri = crypto::pkcs11::parse_uri(ref.uri);
  const uint32_t next = ref.versions.back().version + 1;
  const int64_t now = util::unix_now();
  crypto::MasterKey mk;
  if (ref.test_key) {
    // MK[v] of a test key comes from its seed, as in a key file (fleetkey-formats(5), TEST KEYS).
    const auto seed = util::from_hex(ref.test_seed_hex);
    auto seeded = crypto::Keyring::create(now, crypto::Secret::copy_of(*seed));
    while (seeded.current_version() < next) {
      seeded.rotate(now);
    }
    mk.key = crypto::Secret::copy_of(seeded.current().key.span());
  } else {
    mk.key = crypto::Secret::random(crypto::k_key_len);
  }
  mk.version = next;
  mk.created = now;
  const auto rec = record_of(mk, ref.test_key, "current");
  const auto label = crypto::pkcs11::object_label(uri.object, next);
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  token->destroy(label);
  CreatedObjects created(token);
  ref.versions.push_back(import_version(*token, created, label, mk));
  ref.current = next;
  reg.insert_master_key(rec);
  reg.set_current_master_key(rec.version);
  reg.audit("master.rotate", fmt::format("master:{}", rec.version), {{"fingerprint", rec.fingerprint}});
  auto text = write_and_commit(fleet, tx,
                               [&](const std::string& path) { return write_text_file(path, encode_reference(ref)); });
  created.keep();
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(ref, token)), hsm_header(ref),
                      std::nullopt, std::move(text));
  return master_key_of(rec);
}

HsmImport import_to_hsm(Fleet& fleet, const std::string& uri_text)
{
  auto uri = crypto::pkcs11::parse_uri(uri_text);
  choose_object(uri);
  if (hsm::key_file_in_hsm(fleet.paths().master_key)) {
    throw Error(Exit::conflict, "the master key of {} is in a PKCS#11 token already", fleet.paths().home);
  }
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring(); // asks for the passphrase
  const auto token = crypto::pkcs11::Token::open(uri, hsm::pin_source(fleet.paths()));
  CreatedObjects created(token);
  registry::Transaction tx(reg);
  check_unchanged_key_file(fleet);
  auto ref = import_ring(*token, created, uri, ring);
  HsmImport out{ref.uri, token->label(), {}};
  for (const auto& v : ref.versions) {
    out.versions.push_back(v.version);
  }
  reg.audit("master.import_to_hsm", "master", {{"pkcs11", ref.uri}, {"token", out.token}, {"versions", out.versions}});
  auto text = write_and_commit(
      fleet, tx, [&](const std::string& path) { return write_text_file(path, crypto::pkcs11::encode_reference(ref)); });
  created.keep();
  fleet.reset_keyring(std::make_unique<crypto::Keyring>(crypto::pkcs11::reference_ring(ref, token)), hsm_header(ref),
                      std::nullopt, std::move(text));
  return out;
}

} // namespace fleetkey::fleet
