#include "crypto/pkcs11_module.hpp"
#include "crypto/pkcs11_types.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <sys/file.h>
#include <unistd.h>

namespace fleetkey::crypto::pkcs11 {

namespace {

using detail::check;
using detail::load_module;
using detail::Module;

using namespace ck;

constexpr std::string_view k_check_label = "hsm-check";

// A fixed-width, space-padded field of CK_TOKEN_INFO, without its padding.
std::string field(const BYTE* p, size_t n)
{
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) {
    s.pop_back();
  }
  return s;
}

} // namespace

std::string check_value(const Secret& prk)
{
  const Secret v = Expander(prk.span()).expand(Info(k_check_label).bytes(), 32);
  return util::to_hex(v.span().first(16));
}

struct Token::State
{
  const detail::Module* module = nullptr;
  std::string module_path;
  SLOT_ID slot = 0;
  std::string label;
  mutable std::mutex mutex; // the session pool and the objects; every call when the module cannot lock
  mutable std::vector<SESSION_HANDLE> idle;
  mutable std::vector<SESSION_HANDLE> all;
  struct Object
  {
    std::string label;
    std::string check;
    std::optional<OBJECT_HANDLE> handle;
  };
  mutable std::map<uint32_t, Object> objects;

  FUNCTION_LIST& f() const { return *module->f; }

  SESSION_HANDLE open_session() const
  {
    SESSION_HANDLE s = 0;
    check("C_OpenSession", f().C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s));
    all.push_back(s);
    return s;
  }
};

namespace {

// A session for one operation: its own (from the pool) when the module locks, else the one session
// under the token's mutex.
class Session
{
public:
  explicit Session(const Token::State& st)
      : m_st(st)
  {
    if (!st.module->os_locking) {
      m_serial = std::unique_lock(st.mutex);
    }
    std::unique_lock pool = st.module->os_locking ? std::unique_lock(st.mutex) : std::unique_lock<std::mutex>();
    if (st.idle.empty()) {
      m_handle = st.open_session();
    } else {
      m_handle = st.idle.back();
      st.idle.pop_back();
    }
  }
  ~Session()
  {
    std::unique_lock pool = m_st.module->os_locking ? std::unique_lock(m_st.mutex) : std::unique_lock<std::mutex>();
    m_st.idle.push_back(m_handle);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  SESSION_HANDLE get() const { return m_handle; }

private:
  const Token::State& m_st;
  std::unique_lock<std::mutex> m_serial;
  SESSION_HANDLE m_handle = 0;
};

std::vector<OBJECT_HANDLE> find_secret_keys(const Token::State& st, SESSION_HANDLE s, const std::string& label)
{
  OBJECT_CLASS cls = CKO_SECRET_KEY;
  ATTRIBUTE templ[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
  };
  check("C_FindObjectsInit", st.f().C_FindObjectsInit(s, templ, 2));
  std::vector<OBJECT_HANDLE> out;
  OBJECT_HANDLE found[16];
  ULONG n = 0;
  RV rv = CKR_OK;
  while ((rv = st.f().C_FindObjects(s, found, 16, &n)) == CKR_OK && n > 0) {
    out.insert(out.end(), found, found + n);
  }
  st.f().C_FindObjectsFinal(s);
  check("C_FindObjects", rv);
  return out;
}

// HKDF-Expand(key, info, out.size()) with each T(i) = C_Sign(CKM_SHA256_HMAC, T(i-1) || info || i).
void expand_one(const Token::State& st, SESSION_HANDLE s, OBJECT_HANDLE key, util::ByteView info,
                std::span<uint8_t> out, Secret& buf)
{
  MECHANISM mech{CKM_SHA256_HMAC, nullptr, 0};
  uint8_t* data = buf.data();
  uint8_t* t = buf.data() + buf.size() - k_hash_len;
  size_t done = 0;
  for (uint8_t counter = 1; done < out.size(); ++counter) {
    size_t n = 0;
    if (counter > 1) {
      std::memcpy(data, t, k_hash_len);
      n = k_hash_len;
    }
    if (!info.empty()) {
      std::memcpy(data + n, info.data(), info.size());
    }
    n += info.size();
    data[n++] = counter;
    check("C_SignInit", st.f().C_SignInit(s, &mech, key));
    ULONG len = k_hash_len;
    check("C_Sign", st.f().C_Sign(s, data, n, t, &len));
    if (len != k_hash_len) {
      throw Error(Exit::key, "PKCS#11 C_Sign returned {} bytes for an HMAC-SHA256", len);
    }
    const size_t take = std::min(k_hash_len, out.size() - done);
    std::memcpy(out.data() + done, t, take);
    done += take;
  }
}

} // namespace

namespace {

// A token whose store is files (SoftHSM2) can show up as uninitialized to a process that starts while
// another one rewrites the store (a login updates the token's flags, an import adds an object): four
// imports at once saw it. fleetkey's processes therefore start, log in, create and destroy objects one
// at a time, under an exclusive flock(2) of the module's file (which every user may read).
class ModuleLock
{
public:
  explicit ModuleLock(const std::string& module_path)
      : m_fd(::open(module_path.c_str(), O_RDONLY | O_CLOEXEC))
  {
    if (m_fd >= 0) {
      while (::flock(m_fd, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~ModuleLock()
  {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  ModuleLock(const ModuleLock&) = delete;
  ModuleLock& operator=(const ModuleLock&) = delete;

private:
  int m_fd;
};

std::vector<std::pair<SLOT_ID, TOKEN_INFO>> matching_tokens(const Module& m, const Uri& uri)
{
  ULONG count = 0;
  check("C_GetSlotList", m.f->C_GetSlotList(k_true, nullptr, &count));
  std::vector<SLOT_ID> slots(count);
  check("C_GetSlotList", m.f->C_GetSlotList(k_true, slots.data(), &count));
  slots.resize(count);
  std::vector<std::pair<SLOT_ID, TOKEN_INFO>> matches;
  for (const SLOT_ID slot : slots) {
    TOKEN_INFO info{};
    if (m.f->C_GetTokenInfo(slot, &info) != CKR_OK || (info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      continue;
    }
    if ((!uri.token.empty() && field(info.label, 32) != uri.token)
        || (!uri.manufacturer.empty() && field(info.manufacturer_id, 32) != uri.manufacturer)
        || (!uri.model.empty() && field(info.model, 16) != uri.model)
        || (!uri.serial.empty() && field(info.serial_number, 16) != uri.serial)
        || (uri.slot_id && *uri.slot_id != slot)) {
      continue;
    }
    matches.emplace_back(slot, info);
  }
  return matches;
}

} // namespace

std::shared_ptr<Token> Token::open(const Uri& uri, const PinSource& pin)
{
  std::string path = uri.module_path;
  if (path.empty()) {
    if (const char* v = std::getenv("FLEETKEY_PKCS11_MODULE"); v != nullptr && *v != '\0') {
      path = v;
    }
  }
  if (path.empty()) {
    throw Error(Exit::key, "no PKCS#11 module: add ?module-path=FILE to the URI or set FLEETKEY_PKCS11_MODULE");
  }
  // Start-up and login, which SoftHSM2 records in its token file, one fleetkey process at a time (see
  // ModuleLock).
  const ModuleLock lock(path);
  const Module& m = load_module(path);
  const auto matches = matching_tokens(m, uri);
  if (matches.empty()) {
    throw Error(Exit::key, "no PKCS#11 token matches {} in {}", uri.text(), path);
  }
  if (matches.size() > 1) {
    throw Error(Exit::key, "{} PKCS#11 tokens match {}: name one with token= or serial=", matches.size(), uri.text());
  }
  std::shared_ptr<Token> token(new Token());
  token->m_state = std::make_unique<State>();
  auto& st = *token->m_state;
  st.module = &m;
  st.module_path = path;
  st.slot = matches.front().first;
  st.label = field(matches.front().second.label, 32);
  Session s(st);
  if ((matches.front().second.flags & CKF_LOGIN_REQUIRED) != 0) {
    Secret p = pin(st.label);
    const RV rv = m.f->C_Login(s.get(), CKU_USER, p.data(), p.size());
    if (rv == CKR_PIN_INCORRECT) {
      throw Error(Exit::key, "wrong PIN for PKCS#11 token \"{}\"", st.label);
    }
    if (rv == CKR_PIN_LOCKED) {
      throw Error(Exit::key, "the PIN of PKCS#11 token \"{}\" is locked", st.label);
    }
    if (rv != CKR_USER_ALREADY_LOGGED_IN) {
      check("C_Login", rv);
    }
  }
  return token;
}

Token::~Token()
{
  if (m_state) {
    for (const auto s : m_state->all) {
      m_state->f().C_CloseSession(s);
    }
  }
}

const std::string& Token::label() const
{
  return m_state->label;
}

bool Token::has_object(const std::string& label) const
{
  Session s(*m_state);
  return !find_secret_keys(*m_state, s.get(), label).empty();
}

void Token::import_secret(const std::string& label, const Secret& prk)
{
  const ModuleLock lock(m_state->module_path);
  Session s(*m_state);
  OBJECT_CLASS cls = CKO_SECRET_KEY;
  KEY_TYPE type = CKK_GENERIC_SECRET;
  BBOOL yes = k_true;
  BBOOL no = k_false;
  ATTRIBUTE templ[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_KEY_TYPE, &type, sizeof type},
      {CKA_TOKEN, &yes, 1},
      {CKA_PRIVATE, &yes, 1},
      {CKA_SENSITIVE, &yes, 1},
      {CKA_EXTRACTABLE, &no, 1},
      {CKA_SIGN, &yes, 1},
      {CKA_VERIFY, &no, 1},
      {CKA_ENCRYPT, &no, 1},
      {CKA_DECRYPT, &no, 1},
      {CKA_WRAP, &no, 1},
      {CKA_UNWRAP, &no, 1},
      {CKA_DERIVE, &no, 1},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
      {CKA_VALUE, const_cast<uint8_t*>(prk.data()), prk.size()},
  };
  OBJECT_HANDLE handle = 0;
  check("C_CreateObject", m_state->f().C_CreateObject(s.get(), templ, sizeof templ / sizeof templ[0], &handle));
}

size_t Token::destroy(const std::string& label)
{
  const ModuleLock lock(m_state->module_path);
  Session s(*m_state);
  const auto found = find_secret_keys(*m_state, s.get(), label);
  for (const auto h : found) {
    check("C_DestroyObject", m_state->f().C_DestroyObject(s.get(), h));
  }
  return found.size();
}

void Token::serve(uint32_t version, std::string label, std::string check_hex)
{
  std::lock_guard lock(m_state->mutex);
  m_state->objects[version] = {std::move(label), std::move(check_hex), std::nullopt};
}

void Token::expand(uint32_t version, std::span<const util::ByteView> infos, size_t length, std::span<uint8_t> out) const
{
  const auto& st = *m_state;
  if (length == 0 || length > 255 * k_hash_len || out.size() != infos.size() * length) {
    throw Error(Exit::failure, "internal error: bad HKDF-Expand request to the PKCS#11 token");
  }
  size_t max_info = k_check_label.size() + 2;
  for (const auto& info : infos) {
    max_info = std::max(max_info, info.size());
  }
  // T(i-1) || info || i, then T(i): T(i) is key material, so the buffer is guarded memory.
  Secret buf(k_hash_len + max_info + 1 + k_hash_len);
  Session s(st);
  OBJECT_HANDLE key = 0;
  {
    std::unique_lock lock = st.module->os_locking ? std::unique_lock(st.mutex) : std::unique_lock<std::mutex>();
    auto it = st.objects.find(version);
    if (it == st.objects.end()) {
      throw Error(Exit::key, "master key version {} is not in PKCS#11 token \"{}\"", version, st.label);
    }
    auto& obj = it->second;
    if (!obj.handle) {
      const auto found = find_secret_keys(st, s.get(), obj.label);
      if (found.empty()) {
        throw Error(Exit::key, "PKCS#11 token \"{}\" has no object \"{}\" (master key version {})", st.label, obj.label,
                    version);
      }
      if (found.size() > 1) {
        throw Error(Exit::key, "PKCS#11 token \"{}\" has {} objects labelled \"{}\"", st.label, found.size(),
                    obj.label);
      }
      if (!obj.check.empty()) {
        const Info info(k_check_label);
        uint8_t value[k_hash_len];
        expand_one(st, s.get(), found.front(), info.bytes(), value, buf);
        const auto want = util::from_hex(obj.check);
        const bool same = want && crypto::equal(std::span<const uint8_t>(value, 16), *want);
        sodium_memzero(value, sizeof value);
        if (!same) {
          throw Error(Exit::key,
                      "object \"{}\" in PKCS#11 token \"{}\" is not master key version {} of this home (another check "
                      "value)",
                      obj.label, st.label, version);
        }
      }
      obj.handle = found.front();
    }
    key = *obj.handle;
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    expand_one(st, s.get(), key, infos[i], out.subspan(i * length, length), buf);
  }
}

} // namespace fleetkey::crypto::pkcs11
