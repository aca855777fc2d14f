#include <fleetkey/crypto/hierarchy.hpp>
#include <fleetkey/fleet/devices.hpp>
#include <fleetkey/fleet/tokens.hpp>
#include <fleetkey/qr/qr.hpp>
#include <fleetkey/registry/store.hpp>
#include <fleetkey/util/error.hpp>
#include <fleetkey/util/json_escape.hpp>
#include <fleetkey/util/text.hpp>
#include <fleetkey/util/thread_pool.hpp>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace fleetkey::fleet {

namespace {

constexpr token::Format k_formats[] = {token::Format::cwt, token::Format::cwt64, token::Format::jwt};
constexpr int64_t k_max_ttl = 10LL * 366 * 24 * 3600;

size_t format_index(token::Format f)
{
  return static_cast<size_t>(f);
}

int64_t now_or_clock(const std::optional<int64_t>& now)
{
  if (now) {
    check_now(*now);
  }
  return now ? *now : util::unix_now();
}

crypto::Secret key_for(Fleet& fleet, const token::Kid& kid, token::Format f)
{
  const auto& mk = fleet.master_key(kid.version);
  const crypto::MasterDeriver master(mk);
  if (kid.device.empty()) {
    return master.token_key(token::key_label(f));
  }
  const auto dev = master.device_key(kid.device);
  return crypto::DeviceDeriver(dev).token_key(token::key_label(f));
}

// A registered, active device whose key the caller may use; throws otherwise.
registry::DeviceRecord usable_device(Fleet& fleet, std::string_view id)
{
  auto device = show_device(fleet, id);
  if (device.status == "revoked") {
    throw Error(Exit::conflict, "device \"{}\" is revoked", id).with_reason("device_revoked");
  }
  return device;
}

// The random token id, or for a test master key one derived from the claims, so that fixtures
// minted with --test-seed and --now are reproducible (a real key always gets random bytes).
std::string make_cti(Fleet& fleet, const token::Claims& claims, token::Format f)
{
  const size_t n = f == token::Format::cwt64 ? token::k_cti_size_cwt64 : token::k_cti_size;
  crypto::Secret raw(n);
  if (fleet.keyring().is_test_key()) {
    const auto payload = token::encode_cwt_claims(claims);
    crypto::Info info("test-cti");
    info.add(token::format_name(f)).add(payload);
    raw = crypto::MasterDeriver(fleet.keyring().current()).derive(info, n);
  } else {
    randombytes_buf(raw.data(), n);
  }
  std::string out(reinterpret_cast<const char*>(raw.data()), n);
  if (f == token::Format::jwt) {
    out = util::to_hex(raw.span()); // a JWT's jti is a string: the hex of the same bytes
  }
  return out;
}

void check_ttl(const std::optional<int64_t>& ttl)
{
  if (ttl && (*ttl <= 0 || *ttl > k_max_ttl)) {
    throw Error(Exit::usage, "--ttl must be between 1 second and 10 years");
  }
}

// Bounds a token for `req.subject` on `device` by the subject's grant there (fleetkey-tokens(5),
// GRANT-BOUND TOKENS): returns the epoch it must carry (none for a subject that is no registered
// user: a service, bound by its exp only) and cuts a default `ttl` to the grant's expiry.
std::optional<uint64_t> bound_by_grant(Fleet& fleet, const MintRequest& req, std::string_view device, int64_t now,
                                       std::optional<int64_t>& ttl)
{
  auto& reg = fleet.registry();
  const std::string_view subject = req.subject;
  const auto g = reg.grant(subject, device);
  if (!g) {
    if (reg.user(subject)) {
      throw Error(Exit::exceeds_grant,
                  "\"{}\" is a registered user with no grant on device \"{}\": a token for it would exceed the "
                  "grant (use fleetkey user grant)",
                  subject, device);
    }
    return std::nullopt;
  }
  if (g->status != "active") {
    throw Error(Exit::conflict, "the grant of \"{}\" on device \"{}\" is revoked: no token for it", subject, device)
        .with_reason("grant_revoked");
  }
  const auto expiry = grant_expiry(*g);
  if (expiry && now >= *expiry) {
    throw Error(Exit::conflict, "the grant of \"{}\" on device \"{}\" expired at {}: no token for it", subject, device,
                *g->expires)
        .with_reason("grant_expired");
  }
  if (req.role != g->role) {
    throw Error(Exit::exceeds_grant, "--role {} exceeds the grant of \"{}\" on device \"{}\", which is for role {}",
                req.role, subject, device, g->role);
  }
  if (expiry && ttl && now + *ttl > *expiry) {
    if (req.ttl_explicit) {
      throw Error(Exit::exceeds_grant,
                  "--ttl {}s would outlive the grant of \"{}\" on device \"{}\", which expires at {} ({}s from now)",
                  *ttl, subject, device, *g->expires, *expiry - now);
    }
    ttl = *expiry - now;
  }
  return g->epoch;
}

// Builds and MACs a token; writes nothing (record_mint does, inside the caller's transaction).
MintedToken make_token(Fleet& fleet, const MintRequest& req)
{
  validate_name(req.subject, "--sub");
  validate_role(req.role);
  check_ttl(req.ttl);
  token::Claims c;
  for (const auto& kv : req.claims) {
    auto [k, v] = parse_label(kv, "--claim");
    for (const char* reserved : {"iss", "sub", "aud", "exp", "nbf", "iat", "cti", "jti", "scope", "epoch"}) {
      if (k == reserved) {
        throw Error(Exit::usage, "--claim {} is set by fleetkey itself (use --sub, --role, --aud or --ttl)", k);
      }
    }
    for (size_t i = 0; i < c.extra_count; ++i) {
      if (c.extra[i].key == k) {
        throw Error(Exit::usage, "--claim {} is given twice", k);
      }
    }
    auto& e = c.add_extra();
    e.key = k;
    e.value = v;
  }
  auto& ring = fleet.keyring();
  uint32_t version = ring.current_version();
  std::string device_id;
  if (req.audience) {
    const auto device = usable_device(fleet, *req.audience);
    version = device.key_version;
    device_id = device.id;
  }
  const int64_t now = now_or_clock(req.now);
  std::optional<uint64_t> epoch = req.epoch;
  std::optional<int64_t> ttl = req.ttl;
  if (req.audience && !epoch) {
    epoch = bound_by_grant(fleet, req, *req.audience, now, ttl);
  }
  if (!ttl && !epoch) {
    // Verifiers reject such a token (fleetkey-tokens(5)): only a grant epoch can stand in for exp.
    throw Error(Exit::usage, "a token without an expiry must be bound to a grant");
  }
  c.present = token::Claims::sub | token::Claims::scope | token::Claims::iat | token::Claims::nbf;
  c.sub_value = req.subject;
  c.scope_value = req.role;
  c.iat_value = c.nbf_value = now;
  if (req.audience) {
    c.present |= token::Claims::aud;
    c.aud_value = *req.audience;
  }
  if (ttl) {
    c.present |= token::Claims::exp;
    // check_ttl and the range of now keep this far from overflow; checked all the same.
    if (__builtin_add_overflow(now, *ttl, &c.exp_value)) {
      throw Error(Exit::usage, "--now plus --ttl is past the largest time a token can carry");
    }
  }
  if (epoch) {
    c.present |= token::Claims::epoch;
    c.epoch_value = *epoch;
  }
  c.cti_value = make_cti(fleet, c, req.format);
  c.present |= token::Claims::cti;

  MintedToken out;
  out.format = req.format;
  out.kid = token::format_kid(version, device_id);
  token::Kid kid;
  token::parse_kid(out.kid, kid);
  const token::MacKey key(key_for(fleet, kid, req.format).span());
  out.text = token::encode(req.format, c, out.kid, key);
  token::token_id(c, req.format, out.token_id);
  out.claims = std::move(c);
  return out;
}

void record_mint(registry::Store& reg, const MintRequest& req, const MintedToken& t)
{
  const auto& c = t.claims;
  reg.audit("token.mint", req.subject,
            {{"token_id", t.token_id},
             {"format", token::format_name(req.format)},
             {"kid", t.kid},
             {"role", req.role},
             {"aud", req.audience ? nlohmann::json(*req.audience) : nlohmann::json(nullptr)},
             {"exp", c.has(token::Claims::exp) ? nlohmann::json(c.exp_value) : nlohmann::json(nullptr)},
             {"epoch", c.has(token::Claims::epoch) ? nlohmann::json(c.epoch_value) : nlohmann::json(nullptr)}});
}

} // namespace

void check_now(int64_t now, std::string_view what)
{
  if (now < k_min_now || now > k_max_now) {
    throw Error(Exit::usage, "{} @{} is out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)", what, now);
  }
}

MintedToken mint_token(Fleet& fleet, const MintRequest& req)
{
  auto out = make_token(fleet, req);
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  record_mint(reg, req, out);
  tx.commit();
  return out;
}

struct TokenVerifier::Version
{
  bool retired = false;
  std::unique_ptr<token::MacKey> keys[3];
  std::unique_ptr<crypto::MasterDeriver> deriver; // for device keys, used under m_mutex
};

struct TokenVerifier::Device
{
  bool known = false;
  bool revoked = false;
  uint32_t key_version = 0;
  std::unique_ptr<token::MacKey> keys[3];
};

TokenVerifier::TokenVerifier(Fleet& fleet, const VerifyOptions& options, Preload preload)
    : m_fleet(fleet)
    , m_audience(options.audience.value_or(""))
    , m_preload(preload)
{
  // token::Checks takes an empty audience for "any": an empty --aud must not turn the check off.
  if (options.audience && options.audience->empty()) {
    throw Error(Exit::usage, "--aud must name a device, not be empty");
  }
  if (options.leeway < 0) {
    throw Error(Exit::usage, "--leeway must not be negative");
  }
  m_checks.now = now_or_clock(options.now);
  m_checks.leeway = options.leeway;
  m_checks.audience = m_audience;
  auto& reg = fleet.registry();
  const auto& ring = fleet.keyring();
  for (const auto& rec : reg.master_keys()) {
    auto v = std::make_unique<Version>();
    v->retired = rec.status == "retired";
    if (!v->retired) {
      const auto& mk = ring.get(rec.version);
      v->deriver = std::make_unique<crypto::MasterDeriver>(mk);
      for (auto f : k_formats) {
        const auto k = v->deriver->token_key(token::key_label(f));
        v->keys[format_index(f)] = std::make_unique<token::MacKey>(k.span());
      }
    }
    m_versions.emplace(rec.version, std::move(v));
  }
  if (preload == Preload::all) {
    // Stored folded, as token_id() folds a token's (schema 3 folded rows recorded before).
    reg.for_each_revoked_token([this](std::string_view id) { m_revoked_tokens.emplace(id); });
    reg.for_each_grant_state([this](std::string_view user, std::string_view device, std::string_view role,
                                    uint64_t epoch, std::string_view status, std::string_view expires) {
      std::string key;
      key.append(user).push_back('\0');
      key.append(device);
      m_grants.emplace(std::move(key),
                       Grant{epoch, status == "active",
                             grant_expiry(user, device, expires.empty() ? std::nullopt : std::optional(expires)),
                             std::string(role)});
    });
    reg.for_each_user_name([this](std::string_view name) { m_users.emplace(name); });
  }
}

TokenVerifier::~TokenVerifier() = default;

token::Reason TokenVerifier::verify(std::string_view text, token::Verification& v)
{
  return token::verify(text, *this, m_checks, v);
}

const TokenVerifier::Device& TokenVerifier::device(std::string_view id)
{
  // Called with m_mutex held. Only registered devices are remembered: the ids come from tokens,
  // and remembering every unknown one would let a stream of forged kids grow the cache without end.
  static const Device k_unknown;
  if (auto it = m_devices.find(id); it != m_devices.end()) {
    return *it->second;
  }
  auto rec = m_fleet.registry().device(id);
  if (!rec) {
    return k_unknown;
  }
  auto d = std::make_unique<Device>();
  d->known = true;
  d->revoked = rec->status == "revoked";
  d->key_version = rec->key_version;
  return *m_devices.emplace(std::string(id), std::move(d)).first->second;
}

const token::MacKey* TokenVerifier::key(const token::Kid& kid, token::Format f, std::string& why)
{
  const auto vit = m_versions.find(kid.version);
  if (vit == m_versions.end()) {
    why = fmt::format("master key version {} is not in the registry", kid.version);
    return nullptr;
  }
  const Version& ver = *vit->second;
  if (ver.retired) {
    why = fmt::format("master key version {} is retired", kid.version);
    return nullptr;
  }
  if (kid.device.empty()) {
    return ver.keys[format_index(f)].get();
  }
  std::lock_guard lock(m_mutex);
  const Device& dc = device(kid.device);
  if (!dc.known) {
    why = fmt::format("device \"{}\" is not registered", kid.device);
    return nullptr;
  }
  if (dc.key_version != kid.version) {
    why = fmt::format("device \"{}\" has keys of master version {}, not {}", kid.device, dc.key_version, kid.version);
    return nullptr;
  }
  auto& slot = const_cast<Device&>(dc).keys[format_index(f)];
  if (!slot) {
    const auto dev = ver.deriver->device_key(kid.device);
    const auto k = crypto::DeviceDeriver(dev).token_key(token::key_label(f));
    slot = std::make_unique<token::MacKey>(k.span());
  }
  return slot.get();
}

std::optional<TokenVerifier::Grant> TokenVerifier::grant(std::string_view user, std::string_view device,
                                                         std::string& scratch)
{
  if (m_preload == Preload::all) {
    scratch.assign(user).push_back('\0');
    scratch.append(device);
    const auto it = m_grants.find(std::string_view(scratch));
    return it == m_grants.end() ? std::nullopt : std::optional(it->second);
  }
  std::lock_guard lock(m_mutex);
  const auto g = m_fleet.registry().grant(user, device);
  return g ? std::optional(Grant{g->epoch, g->status == "active", grant_expiry(*g), g->role}) : std::nullopt;
}

bool TokenVerifier::is_user(std::string_view name)
{
  if (m_preload == Preload::all) {
    return m_users.find(name) != m_users.end();
  }
  std::lock_guard lock(m_mutex);
  return m_fleet.registry().user(name).has_value();
}

token::Reason TokenVerifier::standing(const token::Claims& c, token::Format f, const token::Kid& kid, std::string& why)
{
  thread_local std::string id;
  thread_local std::string scratch;
  // With every revocation preloaded and none recorded, no token id needs formatting.
  if (c.has(token::Claims::cti) && (m_preload != Preload::all || !m_revoked_tokens.empty())) {
    token::token_id(c, f, id);
    bool is_revoked = false;
    if (m_preload == Preload::all) {
      is_revoked = m_revoked_tokens.find(std::string_view(id)) != m_revoked_tokens.end();
    } else {
      std::lock_guard lock(m_mutex);
      auto& reg = m_fleet.registry();
      is_revoked = reg.token_revocation(id).has_value();
    }
    if (is_revoked) {
      why = fmt::format("token {} was revoked", id);
      return token::Reason::revoked;
    }
  }
  std::string_view device_id = kid.device;
  if (device_id.empty() && c.has(token::Claims::aud)) {
    device_id = c.aud_value;
  }
  if (device_id.empty()) {
    return token::Reason::valid;
  }
  {
    std::lock_guard lock(m_mutex);
    const Device& d = device(device_id);
    if (d.revoked) {
      why = fmt::format("device \"{}\" is revoked", device_id);
      return token::Reason::revoked;
    }
  }
  if (!c.has(token::Claims::sub)) {
    return token::Reason::valid;
  }
  // A subject with a grant on the device is bound to it: the token must carry the grant's
  // current epoch, and the grant must be active and unexpired. Without a grant, only a token
  // that claims an epoch is refused.
  const auto g = grant(c.sub_value, device_id, scratch);
  if (!g) {
    if (c.has(token::Claims::epoch)) {
      why = fmt::format("\"{}\" has no grant on device \"{}\"", c.sub_value, device_id);
      return token::Reason::revoked;
    }
    if (is_user(c.sub_value)) {
      // A registered user's token never grants more than the user's grant: here, none.
      why = fmt::format("\"{}\" is a registered user with no grant on device \"{}\"", c.sub_value, device_id);
      return token::Reason::revoked;
    }
    return token::Reason::valid; // a service: bound by its exp
  }
  if (!c.has(token::Claims::epoch)) {
    why = fmt::format("the token has no epoch, but \"{}\" has a grant on device \"{}\" ({}, epoch {})", c.sub_value,
                      device_id, g->active ? "active" : "revoked", g->epoch);
    return token::Reason::revoked;
  }
  if (!g->active) {
    why = fmt::format("grant of \"{}\" on device \"{}\" was revoked (token epoch {}, grant epoch {})", c.sub_value,
                      device_id, c.epoch_value, g->epoch);
    return token::Reason::revoked;
  }
  if (g->epoch != c.epoch_value) {
    // The grant is active: it was granted again since this token, whose epoch it superseded.
    why = c.epoch_value < g->epoch
              ? fmt::format("the token's grant epoch {} is superseded: the grant of \"{}\" on device \"{}\" is at "
                            "epoch {}",
                            c.epoch_value, c.sub_value, device_id, g->epoch)
              : fmt::format("the token's grant epoch {} is not the current epoch {} of the grant of \"{}\" on device "
                            "\"{}\"",
                            c.epoch_value, g->epoch, c.sub_value, device_id);
    return token::Reason::revoked;
  }
  if (g->expires && token::has_passed(*g->expires, m_checks.now, m_checks.leeway)) {
    why = fmt::format("grant of \"{}\" on device \"{}\" expired at {} (now {})", c.sub_value, device_id, *g->expires,
                      m_checks.now);
    return token::Reason::expired;
  }
  // Never more than the grant: its role, and no life beyond its expiry.
  if (c.has(token::Claims::scope) && c.scope_value != g->role) {
    why = fmt::format("the token's role {} exceeds the grant of \"{}\" on device \"{}\", which is for role {}",
                      c.scope_value, c.sub_value, device_id, g->role);
    return token::Reason::revoked;
  }
  if (g->expires && (!c.has(token::Claims::exp) || c.exp_value > *g->expires)) {
    why = fmt::format("the token outlives the grant of \"{}\" on device \"{}\", which expires at @{}", c.sub_value,
                      device_id, *g->expires);
    return token::Reason::revoked;
  }
  return token::Reason::valid;
}

std::unique_ptr<Verified> verify_token(Fleet& fleet, std::string_view text, const VerifyOptions& options)
{
  TokenVerifier verifier(fleet, options, Preload::none);
  auto out = std::make_unique<Verified>();
  out->reason = verifier.verify(text, out->verification);
  return out;
}

namespace {

// A run of whole input lines and, once verified, their output.
struct Piece
{
  std::shared_ptr<const std::string> chunk; // the input buffer `lines` points into
  std::string_view lines;
  std::string out;
  uint64_t seq = 0; // input order
  Exit first_invalid = Exit::ok;
  uint64_t total = 0;
  uint64_t invalid = 0;
};

void run_piece(TokenVerifier& verifier, token::Verification& v, Piece& p)
{
  const std::string_view lines = p.lines;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t nl = lines.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = lines.size();
    }
    std::string_view line = lines.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      continue; // blank lines are not tokens
    }
    const auto r = verifier.verify(line, v);
    ++p.total;
    if (r != token::Reason::valid) {
      ++p.invalid;
      if (p.first_invalid == Exit::ok) {
        p.first_invalid = token::reason_exit(r);
      }
    }
    token::append_verdict_json(p.out, r, v);
    p.out += '\n';
  }
}

// The bulk path as a pipeline: the calling thread reads and cuts the input into pieces, one
// worker per core verifies them, and whichever worker completes the next piece in input order
// writes it (and any completed pieces after it). Reading and writing overlap the verifying, and
// no worker waits for another to finish.
class Pipeline
{
public:
  Pipeline(TokenVerifier& verifier, std::FILE* out, size_t workers)
      : m_verifier(verifier)
      , m_out(out)
      , m_pool(workers)
  {
    for (size_t i = 0; i < workers; ++i) {
      m_pool.enqueue([this] { work(); });
    }
  }

  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  ~Pipeline()
  {
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
    }
    m_work.notify_all();
    m_pool.shut_down();
  }

  // Queues a piece: lines to verify, or (`verified`) one whose output and counts are already
  // set. Blocks while enough work is queued; throws the workers' error, if any.
  void push(std::unique_ptr<Piece> p, bool verified = false)
  {
    std::unique_lock lock(m_mutex);
    m_space.wait(lock, [this] { return m_in_flight < k_max_in_flight || m_error; });
    rethrow();
    p->seq = m_next_seq++;
    ++m_in_flight;
    if (verified) {
      lock.unlock();
      deliver(std::move(p));
      return;
    }
    m_queue.push_back(std::move(p));
    lock.unlock();
    m_work.notify_one();
  }

  // Waits until every piece is written.
  StreamResult finish()
  {
    std::unique_lock lock(m_mutex);
    m_space.wait(lock, [this] { return m_in_flight == 0 || m_error; });
    rethrow();
    return m_result;
  }

private:
  static constexpr size_t k_max_in_flight = 96; // ~6 MiB of input: two chunks

  void rethrow()
  {
    if (m_error) {
      std::rethrow_exception(m_error);
    }
  }

  void work()
  {
    token::Verification v;
    for (;;) {
      std::unique_ptr<Piece> p;
      {
        std::unique_lock lock(m_mutex);
        m_work.wait(lock, [this] { return !m_queue.empty() || m_closed; });
        if (m_queue.empty() || m_error) {
          return;
        }
        p = std::move(m_queue.front());
        m_queue.pop_front();
      }
      try {
        run_piece(m_verifier, v, *p);
        p->chunk.reset();
        deliver(std::move(p));
      } catch (...) {
        std::lock_guard lock(m_mutex);
        if (!m_error) {
          m_error = std::current_exception();
        }
        m_space.notify_all();
      }
    }
  }

  // Hands over a completed piece; the thread that completes the next one in order writes.
  void deliver(std::unique_ptr<Piece> p)
  {
    std::unique_lock lock(m_mutex);
    const uint64_t seq = p->seq;
    m_ready.emplace(seq, std::move(p));
    if (m_writing) {
      return;
    }
    m_writing = true;
    for (auto it = m_ready.find(m_next_write); it != m_ready.end(); it = m_ready.find(m_next_write)) {
      std::unique_ptr<Piece> next = std::move(it->second);
      m_ready.erase(it);
      lock.unlock();
      if (!next->out.empty() && std::fwrite(next->out.data(), 1, next->out.size(), m_out) != next->out.size()) {
        const int err = errno;
        lock.lock();
        m_writing = false;
        // Nothing after a lost piece may be written: every thread stops, and push() and finish() throw.
        if (!m_error) {
          m_error = std::make_exception_ptr(Error(Exit::failure, "cannot write to stdout: {}", std::strerror(err)));
        }
        m_space.notify_all();
        std::rethrow_exception(m_error);
      }
      lock.lock();
      m_result.total += next->total;
      m_result.invalid += next->invalid;
      if (m_result.first_invalid == Exit::ok) {
        m_result.first_invalid = next->first_invalid;
      }
      ++m_next_write;
      --m_in_flight;
      m_space.notify_all();
    }
    m_writing = false;
  }

  TokenVerifier& m_verifier;
  std::FILE* m_out;
  std::mutex m_mutex;
  std::condition_variable m_work;  // pieces queued, or closing
  std::condition_variable m_space; // pieces written, or an error
  std::deque<std::unique_ptr<Piece>> m_queue;
  std::map<uint64_t, std::unique_ptr<Piece>> m_ready; // verified, waiting for their turn
  uint64_t m_next_seq = 0;
  uint64_t m_next_write = 0;
  size_t m_in_flight = 0; // queued, being verified or waiting to be written
  bool m_writing = false;
  bool m_closed = false;
  std::exception_ptr m_error;
  StreamResult m_result;
  util::ThreadPool m_pool; // one long-running work() a worker
};

} // namespace

StreamResult verify_stream(Fleet& fleet, int fd, std::FILE* out, const VerifyOptions& options)
{
  TokenVerifier verifier(fleet, options, Preload::all);
  const size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  constexpr size_t k_chunk = size_t{4} << 20; // read size; also the longest line looked at
  constexpr size_t k_piece = size_t{64} << 10;
  token::Verification oversized;
  oversized.detail = fmt::format("token is longer than {} bytes", token::k_max_token_size);
  Pipeline pipeline(verifier, out, workers);
  std::string carry; // the start of a line that the previous chunk cut
  bool eof = false;
  bool discarding = false; // inside a line longer than a chunk
  while (!eof) {
    auto chunk = std::make_shared<std::string>(k_chunk, '\0');
    size_t have = carry.size();
    std::memcpy(chunk->data(), carry.data(), carry.size());
    carry.clear();
    while (!eof && have < chunk->size()) {
      const ssize_t n = ::read(fd, chunk->data() + have, chunk->size() - have);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw Error(Exit::failure, "cannot read stdin: {}", std::strerror(errno));
      }
      eof = n == 0;
      have += static_cast<size_t>(std::max<ssize_t>(n, 0));
    }
    std::string_view data(chunk->data(), have);
    size_t end = data.rfind('\n');
    if (end == std::string_view::npos && !eof) {
      // A full chunk without a newline: one line too long to be a token.
      if (!discarding) {
        auto p = std::make_unique<Piece>();
        token::append_verdict_json(p->out, token::Reason::malformed, oversized);
        p->out += '\n';
        p->total = p->invalid = 1;
        p->first_invalid = Exit::token_malformed;
        pipeline.push(std::move(p), true);
      }
      discarding = true;
      continue;
    }
    end = eof ? have : end + 1; // at EOF the last line may lack a newline
    carry.assign(data.substr(end));
    std::string_view lines = data.substr(0, end);
    if (discarding) {
      const size_t nl = lines.find('\n');
      lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
      discarding = false;
    }
    while (!lines.empty()) {
      size_t cut = lines.size();
      if (cut > k_piece) {
        const size_t nl = lines.find('\n', k_piece - 1);
        cut = nl == std::string_view::npos ? lines.size() : nl + 1;
      }
      auto p = std::make_unique<Piece>();
      p->chunk = chunk;
      p->lines = lines.substr(0, cut);
      pipeline.push(std::move(p));
      lines.remove_prefix(cut);
    }
  }
  const StreamResult result = pipeline.finish();
  if (std::fflush(out) != 0) {
    throw Error(Exit::failure, "cannot write to stdout: {}", std::strerror(errno));
  }
  return result;
}

std::unique_ptr<token::Verification> inspect_token(std::string_view text)
{
  auto v = std::make_unique<token::Verification>();
  if (!v->decoder.decode(text, v->decoded, v->claims, v->detail)) {
    throw Error(Exit::token_malformed, "malformed token: {}", v->detail);
  }
  return v;
}

TokenKey export_token_key(Fleet& fleet, const std::optional<std::string>& audience, token::Format format)
{
  TokenKey out;
  out.format = format;
  token::Kid kid;
  if (audience) {
    const auto device = usable_device(fleet, *audience);
    out.kid = token::format_kid(device.key_version, device.id);
  } else {
    out.kid = token::format_kid(fleet.keyring().current_version(), "");
  }
  token::parse_kid(out.kid, kid);
  out.key = key_for(fleet, kid, format);
  out.fingerprint = crypto::fingerprint(out.key.span());
  out.test_key = fleet.keyring().is_test_key();
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  reg.audit("token.key.export", out.kid, {{"format", token::format_name(format)}, {"fingerprint", out.fingerprint}});
  tx.commit();
  return out;
}

crypto::Secret format_token_key(const TokenKey& key, std::string_view format)
{
  crypto::SecretText text(256 + 6 * key.kid.size() + 2 * key.key.size()); // the JWK is the longest
  if (format == "hex") {
    text.append_hex(key.key.span()).append("\n");
  } else if (format == "base64") {
    text.append_base64(key.key.span(), sodium_base64_VARIANT_ORIGINAL).append("\n");
  } else if (format == "jwk") {
    std::string head = R"({"kty":"oct","kid":)";
    util::append_json_string(head, key.kid);
    if (key.format == token::Format::jwt) {
      head += R"(,"alg":"HS256")";
    }
    head += R"(,"use":"sig","k":")";
    text.append(head).append_base64(key.key.span(), sodium_base64_VARIANT_URLSAFE_NO_PADDING).append("\"}\n");
  } else {
    throw Error(Exit::usage, "unknown key format \"{}\" (hex, base64 or jwk)", format);
  }
  return std::move(text).take();
}

RevokedToken revoke_token(Fleet& fleet, std::string_view token_or_id, std::string_view reason)
{
  validate_reason(reason);
  RevokedToken out;
  const bool is_id = token_or_id.size() >= 2 && token_or_id.size() <= 128
                     && token_or_id.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
  if (is_id) {
    // Folded as token_id() folds a token's: "ABCDEF01" names the JWT whose jti is "ABCDEF01", and
    // the CWT whose cti is h'ABCDEF01' (fleetkey-tokens(5), TOKEN IDS).
    out.token_id.assign(token_or_id);
    token::fold_token_id(out.token_id);
  } else {
    // A whole token: it must be one of ours (known key, good MAC) before it is recorded.
    TokenVerifier verifier(fleet, VerifyOptions{}, Preload::none);
    token::Verification v;
    const auto r = verifier.verify(token_or_id, v);
    if (r == token::Reason::malformed || r == token::Reason::unknown_key || r == token::Reason::bad_mac) {
      throw Error(token::reason_exit(r), "cannot revoke this token: {}", v.detail);
    }
    token::token_id(v.claims, v.decoded.format, out.token_id);
    if (out.token_id.empty()) {
      throw Error(Exit::usage, "the token has no cti or jti to revoke");
    }
    if (v.claims.has(token::Claims::exp)) {
      out.exp = v.claims.exp_value;
    }
    // The device it is for (its kid's, else its aud), if registered: only that lock must learn it.
    token::Kid kid;
    std::string_view device;
    if (token::parse_kid(v.decoded.kid, kid) && !kid.device.empty()) {
      device = kid.device;
    } else if (v.claims.has(token::Claims::aud)) {
      device = v.claims.aud_value;
    }
    if (!device.empty() && fleet.registry().device(device)) {
      out.device = std::string(device);
    }
  }
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  if (reg.token_revocation(out.token_id)) {
    throw Error(Exit::conflict, "token {} is already revoked", out.token_id).with_reason("already_revoked");
  }
  out.reason = std::string(reason);
  out.created = util::format_time(util::unix_now());
  reg.insert_token_revocation({out.token_id, out.reason, out.created, out.exp, out.device});
  reg.audit("token.revoke", out.token_id,
            {{"reason", reason}, {"exp", out.exp ? nlohmann::json(*out.exp) : nlohmann::json(nullptr)}});
  // The locks that must learn it: the token's device, or with none known every device.
  out.device ? reg.raise_device_state(*out.device) : reg.raise_global_state();
  tx.commit();
  return out;
}

GrantBundle grant_with_token(Fleet& fleet, std::string_view user, std::string_view device, std::string_view role,
                             std::optional<int64_t> ttl_seconds,
                             const std::function<void(const GrantBundle&)>& before_commit, KeepEpoch keep,
                             std::optional<int64_t> now_arg)
{
  // Everything that can be checked without the registry is checked before it is written to.
  validate_name(user, "user name");
  validate_name(device, "device id");
  validate_role(role);
  check_ttl(ttl_seconds);
  // What needs no key is refused before a passphrase is asked for (grant_user checks it again
  // inside the transaction, where it counts).
  show_user(fleet, user);
  usable_device(fleet, device);
  fleet.keyring(); // a passphrase prompt must not hold the registry's write lock
  auto& reg = fleet.registry();
  registry::Transaction tx(reg);
  // One clock reading for the grant and its token: created = iat, and expires = exp exactly
  // (user grant --now: that time instead, for fixtures).
  const int64_t now = now_arg.value_or(util::unix_now());
  GrantBundle b;
  b.grant = grant_user(fleet, tx, user, device, role, ttl_seconds, now, keep);
  MintRequest req;
  req.subject = std::string(user);
  req.role = std::string(role);
  req.audience = std::string(device);
  req.epoch = b.grant.grant.epoch;
  req.ttl = std::nullopt;
  req.now = now;
  if (const auto expiry = grant_expiry(b.grant.grant)) {
    req.ttl = std::max<int64_t>(1, *expiry - now);
  }
  b.token = make_token(fleet, req);
  record_mint(reg, req, b.token);
  b.test_key = fleet.keyring().is_test_key();
  if (before_commit) {
    before_commit(b);
  }
  tx.commit();
  return b;
}

crypto::Secret bundle_json(const GrantBundle& b)
{
  nlohmann::ordered_json j;
  j["type"] = "fleetkey-grant";
  j["version"] = 1;
  j["user"] = b.grant.grant.user;
  j["device"] = b.grant.device.id;
  j["role"] = b.grant.grant.role;
  j["epoch"] = b.grant.grant.epoch;
  j["key_version"] = b.grant.device.key_version;
  j["expires"] =
      b.grant.grant.expires ? nlohmann::ordered_json(*b.grant.grant.expires) : nlohmann::ordered_json(nullptr);
  j["fingerprint"] = b.grant.fingerprint;
  j["test_key"] = b.test_key;
  j["token"] = b.token.text;
  j["token_id"] = b.token.token_id;
  // The key is spliced in last, encoded straight into guarded memory sized for the whole bundle,
  // so that no copy of it lands in memory that is freed unzeroed (the json object, a temporary).
  std::string text = j.dump();
  text.pop_back(); // the closing '}'
  constexpr std::string_view k_key_member = R"(,"user_key":")";
  constexpr std::string_view k_end = "\"}";
  const size_t b64_len = sodium_base64_encoded_len(b.grant.user_key.size(), sodium_base64_VARIANT_ORIGINAL) - 1;
  crypto::SecretText out(text.size() + k_key_member.size() + b64_len + k_end.size());
  out.append(text).append(k_key_member).append_base64(b.grant.user_key.span(), sodium_base64_VARIANT_ORIGINAL);
  out.append(k_end);
  sodium_memzero(text.data(), text.size());
  return std::move(out).take();
}

QrMode parse_qr_mode(std::string_view name)
{
  if (name == "utf8") {
    return QrMode::utf8;
  }
  if (name == "png") {
    return QrMode::png;
  }
  if (name == "svg") {
    return QrMode::svg;
  }
  throw Error(Exit::usage, "unknown QR mode \"{}\" (utf8, png or svg)", name);
}

std::vector<uint8_t> render_bundle_qr(const crypto::Secret& bundle, QrMode mode, qr::Colors colors)
{
  const auto m = qr::encode({reinterpret_cast<const char*>(bundle.data()), bundle.size()}, qr::Ec::M);
  if (mode == QrMode::png) {
    return qr::render_png(m);
  }
  std::string text = mode == QrMode::utf8 ? qr::render_utf8(m, 2, colors) : qr::render_svg(m);
  std::vector<uint8_t> out(text.begin(), text.end());
  sodium_memzero(text.data(), text.size());
  return out;
}

} // namespace fleetkey::fleet
