#include "crypto/pkcs11_types.hpp"

#include <fleetkey/core/error.hpp>
#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/crypto/pkcs11.hpp>
#include <fleetkey/util/text.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <map>
#include <mutex>
#include <sys/file.h>
#include <unistd.h>

namespace fleetkey::crypto::pkcs11 {

namespace detail {

// A module, loaded and initialized once a process.
struct Module
{
  ck::FUNCTION_LIST* f = nullptr;
  bool os_locking = false;
};

} // namespace detail

namespace {

using detail::Module;

using namespace ck;

constexpr std::string_view k_check_label = "hsm-check";

std::string rv_name(RV rv)
{
  switch (rv) {
  case CKR_PIN_INCORRECT:
    return "CKR_PIN_INCORRECT";
  case CKR_PIN_LOCKED:
    return "CKR_PIN_LOCKED";
  case CKR_PIN_EXPIRED:
    return "CKR_PIN_EXPIRED";
  case CKR_TOKEN_NOT_PRESENT:
    return "CKR_TOKEN_NOT_PRESENT";
  case CKR_USER_NOT_LOGGED_IN:
    return "CKR_USER_NOT_LOGGED_IN";
  case CKR_USER_PIN_NOT_INITIALIZED:
    return "CKR_USER_PIN_NOT_INITIALIZED";
  default:
    return fmt::format("CK_RV 0x{:x}", rv);
  }
}

[[noreturn]] void fail(std::string_view what, RV rv)
{
  throw Error(Exit::key, "PKCS#11 {} failed: {}", what, rv_name(rv));
}

void check(std::string_view what, RV rv)
{
  if (rv != CKR_OK) {
    fail(what, rv);
  }
}

// A fixed-width, space-padded field of CK_TOKEN_INFO, without its padding.
std::string field(const BYTE* p, size_t n)
{
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) {
    s.pop_back();
  }
  return s;
}

int hex_digit(char c)
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string pct_decode(std::string_view s, std::string_view uri)
{
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw Error(Exit::usage, "PKCS#11 URI \"{}\" has a bad percent-encoding", uri);
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string pct_encode(std::string_view s, bool path)
{
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || (path && c == '/')) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

const Module& load_module(const std::string& path)
{
  static std::mutex mutex;
  static std::map<std::string, Module> loaded;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(path); it != loaded.end()) {
    return it->second;
  }
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    throw Error(Exit::key, "cannot load PKCS#11 module {}: {}", path, ::dlerror());
  }
#ifdef FLEETKEY_STATIC_GLIBC
  // A static fleetkey loads the module with its own copy of the shared libc: only the one it was built with.
  if (void* v = ::dlsym(lib, "gnu_get_libc_version"); v != nullptr) {
    const std::string_view loaded_libc = reinterpret_cast<const char* (*)()>(v)();
    if (loaded_libc != ::gnu_get_libc_version()) {
      throw Error(Exit::key,
                  "cannot use PKCS#11 module {}: fleetkey was linked statically with glibc {} and this "
                  "system has glibc {} (rebuild fleetkey here)",
                  path, ::gnu_get_libc_version(), loaded_libc);
    }
  }
#endif
  void* sym = ::dlsym(lib, "C_GetFunctionList");
  if (sym == nullptr) {
    throw Error(Exit::key, "{} is not a PKCS#11 module (no C_GetFunctionList)", path);
  }
  Module m;
  check("C_GetFunctionList", reinterpret_cast<GetFunctionList>(sym)(&m.f));
  if (m.f == nullptr || m.f->version.major != 2) {
    throw Error(Exit::key, "PKCS#11 module {} does not offer the version 2 interface", path);
  }
  // Threads may call at once, each in a session of its own, if the module can lock with the OS's primitives.
  C_INITIALIZE_ARGS args{nullptr, nullptr, nullptr, nullptr, CKF_OS_LOCKING_OK, nullptr};
  RV rv = m.f->C_Initialize(&args);
  m.os_locking = rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED;
  if (rv == CKR_CANT_LOCK) {
    rv = m.f->C_Initialize(nullptr); // one thread at a time: Token serializes every call
  }
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    fail("C_Initialize", rv);
  }
  return loaded.emplace(path, m).first->second; // loaded until exit
}

} // namespace

Uri parse_uri(std::string_view text)
{
  constexpr std::string_view scheme = "pkcs11:";
  if (text.size() < scheme.size() || text.substr(0, scheme.size()) != scheme) {
    throw Error(Exit::usage, "\"{}\" is not a PKCS#11 URI (pkcs11:token=LABEL;...)", text);
  }
  Uri uri;
  std::vector<std::string> seen;
  const auto q = text.find('?');
  const auto path =
      text.substr(scheme.size(), q == std::string_view::npos ? std::string_view::npos : q - scheme.size());
  const auto query = q == std::string_view::npos ? std::string_view() : text.substr(q + 1);
  const auto each = [&](std::string_view part, char sep, auto&& take) {
    while (!part.empty()) {
      const auto end = part.find(sep);
      const auto attr = part.substr(0, end);
      part = end == std::string_view::npos ? std::string_view() : part.substr(end + 1);
      if (attr.empty()) {
        continue;
      }
      const auto eq = attr.find('=');
      if (eq == std::string_view::npos) {
        throw Error(Exit::usage, "PKCS#11 URI attribute \"{}\" has no value", attr);
      }
      const std::string name(attr.substr(0, eq));
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        throw Error(Exit::usage, "PKCS#11 URI attribute \"{}\" is given twice", name);
      }
      seen.push_back(name);
      take(name, pct_decode(attr.substr(eq + 1), text));
    }
  };
  each(path, ';', [&](const std::string& name, std::string value) {
    if (name == "token") {
      uri.token = std::move(value);
    } else if (name == "manufacturer") {
      uri.manufacturer = std::move(value);
    } else if (name == "model") {
      uri.model = std::move(value);
    } else if (name == "serial") {
      uri.serial = std::move(value);
    } else if (name == "object") {
      if (value.empty() || value.size() > 64 || !util::is_printable_utf8(value)) {
        throw Error(Exit::usage, "PKCS#11 URI object= must be 1 to 64 bytes of printable text");
      }
      uri.object = std::move(value);
    } else if (name == "slot-id") {
      uint64_t id = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
      if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
        throw Error(Exit::usage, "PKCS#11 URI slot-id must be a decimal number");
      }
      uri.slot_id = id;
    } else if (name == "type") {
      if (value != "secret-key") {
        throw Error(Exit::usage, "PKCS#11 URI type must be secret-key (the master key is a secret key)");
      }
    } else {
      throw Error(Exit::usage,
                  "PKCS#11 URI attribute \"{}\" is not supported (token, manufacturer, model, serial, "
                  "slot-id, object, type; module-path)",
                  name);
    }
  });
  each(query, '&', [&](const std::string& name, std::string value) {
    if (name == "module-path") {
      uri.module_path = std::move(value);
    } else if (name == "pin-value" || name == "pin-source") {
      throw Error(Exit::usage,
                  "PKCS#11 URI {} is refused: the PIN comes from --pin-file, FLEETKEY_PKCS11_PIN_FILE or "
                  "FLEETKEY_PKCS11_PIN, never from the command line",
                  name);
    } else {
      throw Error(Exit::usage, "PKCS#11 URI query attribute \"{}\" is not supported (module-path)", name);
    }
  });
  return uri;
}

std::string Uri::text() const
{
  std::vector<std::string> attrs;
  const auto add = [&attrs](std::string_view name, const std::string& value) {
    if (!value.empty()) {
      attrs.push_back(fmt::format("{}={}", name, pct_encode(value, false)));
    }
  };
  add("token", token);
  add("manufacturer", manufacturer);
  add("model", model);
  add("serial", serial);
  if (slot_id) {
    attrs.push_back(fmt::format("slot-id={}", *slot_id));
  }
  add("object", object);
  std::string out = "pkcs11:";
  for (size_t i = 0; i < attrs.size(); ++i) {
    out += (i > 0 ? ";" : "") + attrs[i];
  }
  if (!module_path.empty()) {
    out += "?module-path=" + pct_encode(module_path, true);
  }
  return out;
}

std::string object_label(std::string_view object, uint32_t version)
{
  return fmt::format("{}/v{}", object, version);
}

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

// --- The HSM reference (the key file of an HSM home) ---

namespace {

constexpr std::string_view k_comment =
    "# fleetkey master key file: the master key is in a PKCS#11 token. Layout: fleetkey-formats(5).\n";
constexpr std::string_view k_format = "fleetkey-hsm-reference 1";

Error corrupt(std::string_view why)
{
  return Error(Exit::key, "the master key file (a PKCS#11 reference) is corrupted: {}", why);
}

template<typename T>
T number(std::string_view text, std::string_view what)
{
  T v{};
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
    throw corrupt(fmt::format("bad {}", what));
  }
  return v;
}

std::vector<std::string_view> words(std::string_view s)
{
  std::vector<std::string_view> out;
  for (size_t at = 0;;) {
    const auto sp = s.find(' ', at);
    out.push_back(s.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
    if (sp == std::string_view::npos) {
      return out;
    }
    at = sp + 1;
  }
}

bool is_hex(std::string_view s, size_t len)
{
  return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

} // namespace

bool is_reference(std::string_view text)
{
  return text.substr(0, k_comment.size()) == k_comment;
}

std::string encode_reference(const Reference& ref)
{
  std::string out(k_comment);
  out += fmt::format("format: {}\n", k_format);
  out += fmt::format("uri: {}\n", ref.uri);
  out += fmt::format("test-key: {}\n", ref.test_key ? "yes" : "no");
  out += fmt::format("current-version: {}\n", ref.current);
  for (const auto& v : ref.versions) {
    out += fmt::format("version: {} {} {} {}\n", v.version, v.created, v.fingerprint, v.check);
  }
  if (ref.test_key) {
    out += fmt::format("test-seed: {}\n", ref.test_seed_hex);
  }
  return out;
}

Reference decode_reference(std::string_view text)
{
  if (!is_reference(text)) {
    throw Error(Exit::key, "not a fleetkey PKCS#11 reference");
  }
  if (text.back() != '\n') {
    throw corrupt("no final newline");
  }
  std::vector<std::pair<std::string_view, std::string_view>> lines;
  for (auto rest = text.substr(k_comment.size()); !rest.empty();) {
    const auto nl = rest.find('\n');
    const auto line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos) {
      throw corrupt("bad line");
    }
    lines.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  if (lines.size() < 5 || lines[0].first != "format" || lines[1].first != "uri" || lines[2].first != "test-key"
      || lines[3].first != "current-version") {
    throw corrupt("unexpected lines");
  }
  if (lines[0].second != k_format) {
    throw Error(Exit::key, "unsupported master key file format \"{}\"", lines[0].second);
  }
  Reference ref;
  ref.uri = std::string(lines[1].second);
  parse_uri(ref.uri);
  ref.test_key = lines[2].second == "yes";
  ref.current = number<uint32_t>(lines[3].second, "current-version");
  size_t i = 4;
  for (; i < lines.size() && lines[i].first == "version"; ++i) {
    const auto f = words(lines[i].second);
    if (f.size() != 4 || !is_hex(f[2], 32) || !is_hex(f[3], 32)) {
      throw corrupt("bad version line");
    }
    ReferenceVersion v{number<uint32_t>(f[0], "version"), number<int64_t>(f[1], "created"), std::string(f[2]),
                       std::string(f[3])};
    if (!ref.versions.empty() && v.version <= ref.versions.back().version) {
      throw corrupt("versions out of order");
    }
    ref.versions.push_back(std::move(v));
  }
  if (ref.test_key) {
    if (i + 1 != lines.size() || lines[i].first != "test-seed" || !util::from_hex(lines[i].second)) {
      throw corrupt("a test key without its test-seed line");
    }
    ref.test_seed_hex = std::string(lines[i].second);
  } else if (i != lines.size()) {
    throw corrupt("unexpected lines");
  }
  if (ref.versions.empty() || std::none_of(ref.versions.begin(), ref.versions.end(), [&](const ReferenceVersion& v) {
        return v.version == ref.current;
      })) {
    throw corrupt("the current version is not listed");
  }
  return ref;
}

Keyring reference_ring(const Reference& ref, const std::shared_ptr<Token>& token)
{
  const Uri uri = parse_uri(ref.uri);
  std::vector<MasterKey> keys;
  for (const auto& v : ref.versions) {
    token->serve(v.version, object_label(uri.object, v.version), v.check);
    MasterKey mk;
    mk.version = v.version;
    mk.created = v.created;
    mk.source = token;
    mk.source_fingerprint = v.fingerprint;
    keys.push_back(std::move(mk));
  }
  return Keyring::held_elsewhere(std::move(keys), ref.current, ref.test_key);
}

} // namespace fleetkey::crypto::pkcs11
