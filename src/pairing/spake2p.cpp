#include <fleetkey/core/error.hpp>
#include <fleetkey/pairing/matter.hpp>
#include <fleetkey/pairing/spake2p.hpp>

#include <fmt/format.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

namespace fleetkey::pairing {

namespace {

constexpr size_t k_ws_half = 40; // each half of ws: 64 bits more than n, so w mod n is close to uniform
constexpr size_t k_ws_len = 2 * k_ws_half;

// The first error libcrypto queued for this thread, and the queue cleared.
std::string openssl_error(std::string_view what)
{
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  char text[256] = "unknown error";
  if (e != 0) {
    ERR_error_string_n(e, text, sizeof text);
  }
  return fmt::format("libcrypto: {} failed: {}", what, text);
}

struct BnClear
{
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
struct PointClear
{
  void operator()(EC_POINT* p) const { EC_POINT_clear_free(p); }
};
struct KdfCtxFree
{
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); } // clears the password and salt it holds
};

} // namespace

struct Spake2p::State
{
  EC_GROUP* group = nullptr;
  const BIGNUM* order = nullptr; // owned by group
  BN_CTX* ctx = nullptr;         // a secure BN_CTX: its temporaries are cleared when freed
  EVP_KDF* pbkdf2 = nullptr;     // fetched once, not per device
  crypto::Secret ws{k_ws_len};

  ~State()
  {
    EVP_KDF_free(pbkdf2);
    BN_CTX_free(ctx);
    EC_GROUP_free(group);
  }
};

std::optional<std::string> iterations_problem(uint64_t iterations)
{
  if (iterations < k_spake2p_min_iterations || iterations > k_spake2p_max_iterations) {
    return fmt::format("{} PBKDF2 iterations are out of range ({}-{})", iterations, k_spake2p_min_iterations,
                       k_spake2p_max_iterations);
  }
  return std::nullopt;
}

util::Bytes derive_salt(const StreamDeriver& device, uint64_t counter)
{
  const auto bytes = device.read(crypto::Info("pairing-matter-salt").add_u64(counter), k_spake2p_salt_len);
  return util::Bytes(bytes.begin(), bytes.end());
}

Spake2p::Spake2p()
    : m_state(std::make_unique<State>())
{
  // Not the system's openssl.cnf (nor $OPENSSL_CONF): it could make a static fleetkey load provider
  // modules built against the shared libc, and nothing in it concerns P-256 or PBKDF2.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  State* s = m_state.get();
  s->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  s->ctx = BN_CTX_secure_new();
  s->pbkdf2 = EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_PBKDF2, nullptr);
  if (!s->group || !s->ctx || !s->pbkdf2) {
    throw Error(Exit::failure, "{}", openssl_error("setting up P-256 and PBKDF2"));
  }
  s->order = EC_GROUP_get0_order(s->group);
}

Spake2p::~Spake2p() = default;

Result<bool> Spake2p::verifier(uint32_t passcode, util::ByteView salt, uint32_t iterations,
                               std::span<uint8_t, k_spake2p_verifier_len> out) const
{
  if (auto problem = passcode_problem(passcode)) {
    return fail(*problem);
  }
  if (salt.size() < k_spake2p_min_salt_len || salt.size() > k_spake2p_max_salt_len) {
    return fail(fmt::format("a SPAKE2+ salt has {}-{} bytes, not {}", k_spake2p_min_salt_len, k_spake2p_max_salt_len,
                            salt.size()));
  }
  if (auto problem = iterations_problem(iterations)) {
    return fail(*problem);
  }
  State& s = *m_state;

  // ws = PBKDF2-HMAC-SHA256(passcode as 4 little-endian bytes, salt, iterations, 80)
  uint8_t pin[4] = {static_cast<uint8_t>(passcode), static_cast<uint8_t>(passcode >> 8),
                    static_cast<uint8_t>(passcode >> 16), static_cast<uint8_t>(passcode >> 24)};
  {
    std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> kdf(EVP_KDF_CTX_new(s.pbkdf2));
    unsigned int iter = iterations;
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, pin, sizeof pin),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_uint(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    const bool ok = kdf && EVP_KDF_derive(kdf.get(), s.ws.data(), k_ws_len, params) == 1;
    sodium_memzero(pin, sizeof pin);
    if (!ok) {
      return fail(openssl_error("PBKDF2-HMAC-SHA256"));
    }
  }

  // w0 = ws[0:40] mod n, w1 = ws[40:80] mod n, L = w1 * G; BIGNUMs that are cleared when freed.
  std::unique_ptr<BIGNUM, BnClear> w0(BN_secure_new());
  std::unique_ptr<BIGNUM, BnClear> w1(BN_secure_new());
  std::unique_ptr<EC_POINT, PointClear> l(EC_POINT_new(s.group));
  if (!w0 || !w1 || !l) {
    return fail(openssl_error("allocating the SPAKE2+ values"));
  }
  BN_set_flags(w0.get(), BN_FLG_CONSTTIME);
  BN_set_flags(w1.get(), BN_FLG_CONSTTIME);
  if (!BN_bin2bn(s.ws.data(), k_ws_half, w0.get()) || !BN_bin2bn(s.ws.data() + k_ws_half, k_ws_half, w1.get())
      || BN_nnmod(w0.get(), w0.get(), s.order, s.ctx) != 1 || BN_nnmod(w1.get(), w1.get(), s.order, s.ctx) != 1) {
    sodium_memzero(s.ws.data(), k_ws_len);
    return fail(openssl_error("reducing w0 and w1 modulo the order of P-256"));
  }
  sodium_memzero(s.ws.data(), k_ws_len);
  if (BN_is_zero(w1.get())) {
    return fail("w1 is zero: L would be the point at infinity"); // probability about 2^-256
  }
  if (BN_bn2binpad(w0.get(), out.data(), static_cast<int>(k_spake2p_w0_len)) != static_cast<int>(k_spake2p_w0_len)
      || EC_POINT_mul(s.group, l.get(), w1.get(), nullptr, nullptr, s.ctx) != 1
      || EC_POINT_point2oct(s.group, l.get(), POINT_CONVERSION_UNCOMPRESSED, out.data() + k_spake2p_w0_len,
                            k_spake2p_point_len, s.ctx)
             != k_spake2p_point_len) {
    sodium_memzero(out.data(), out.size());
    return fail(openssl_error("computing L = w1 * G on P-256"));
  }
  return true;
}

Result<crypto::Secret> Spake2p::verifier(uint32_t passcode, util::ByteView salt, uint32_t iterations) const
{
  crypto::Secret out(k_spake2p_verifier_len);
  auto r = verifier(passcode, salt, iterations,
                    std::span<uint8_t, k_spake2p_verifier_len>(out.data(), k_spake2p_verifier_len));
  if (!r) {
    return fail(r.error());
  }
  return out;
}

} // namespace fleetkey::pairing
