#include <fleetkey/crypto/shamir.hpp>

#include <sodium.h>

#include <stdexcept>

namespace fleetkey::crypto {

uint8_t gf256_mul(uint8_t a, uint8_t b) noexcept
{
  unsigned x = a;
  unsigned y = b;
  unsigned p = 0;
  for (int i = 0; i < 8; ++i) {
    p ^= x & (0u - (y & 1u));
    const unsigned hi = (x >> 7) & 1u;
    x = ((x << 1) ^ (0x1bu & (0u - hi))) & 0xffu;
    y >>= 1;
  }
  return static_cast<uint8_t>(p);
}

uint8_t gf256_inv(uint8_t a) noexcept
{
  // a^254 = a^-1 (a^255 = 1 for a != 0): 254 = 0b11111110.
  uint8_t result = 1;
  uint8_t square = a;
  for (int bit = 1; bit < 8; ++bit) {
    square = gf256_mul(square, square); // a^(2^bit)
    result = gf256_mul(result, square);
  }
  return result;
}

std::vector<Secret> shamir_split(std::span<const uint8_t> secret, unsigned shares, unsigned threshold)
{
  if (threshold < 2 || shares < threshold || shares > 255) {
    throw std::invalid_argument("shamir_split: need 2 <= threshold <= shares <= 255");
  }
  init();
  const size_t len = secret.size();
  // coefficients[j * (threshold - 1) + (i - 1)] is coefficient i of f_j.
  const size_t degree = threshold - 1;
  Secret coefficients = Secret::random(len * degree);
  std::vector<Secret> out;
  out.reserve(shares);
  for (unsigned x = 1; x <= shares; ++x) {
    Secret y(len);
    for (size_t j = 0; j < len; ++j) {
      // Horner: ((c_d x + c_{d-1}) x + ...) x + secret[j]
      uint8_t acc = 0;
      for (size_t i = degree; i >= 1; --i) {
        acc = gf256_mul(acc, static_cast<uint8_t>(x)) ^ coefficients.data()[j * degree + (i - 1)];
      }
      y.data()[j] = gf256_mul(acc, static_cast<uint8_t>(x)) ^ secret[j];
    }
    out.push_back(std::move(y));
  }
  return out;
}

Secret shamir_combine(std::span<const uint8_t> xs, std::span<const Secret> ys)
{
  if (xs.size() != ys.size() || xs.empty()) {
    throw std::invalid_argument("shamir_combine: one y per x, at least one");
  }
  const size_t len = ys[0].size();
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i] == 0 || ys[i].size() != len) {
      throw std::invalid_argument("shamir_combine: x must be non-zero, every y of one length");
    }
    for (size_t m = 0; m < i; ++m) {
      if (xs[m] == xs[i]) {
        throw std::invalid_argument("shamir_combine: the xs must be distinct");
      }
    }
  }
  Secret out(len);
  for (size_t i = 0; i < xs.size(); ++i) {
    // The Lagrange basis polynomial l_i at 0: the product over m != i of x_m / (x_m - x_i), where
    // subtraction is XOR. The xs are public (the shares' indices).
    uint8_t num = 1;
    uint8_t den = 1;
    for (size_t m = 0; m < xs.size(); ++m) {
      if (m != i) {
        num = gf256_mul(num, xs[m]);
        den = gf256_mul(den, static_cast<uint8_t>(xs[m] ^ xs[i]));
      }
    }
    const uint8_t l = gf256_mul(num, gf256_inv(den));
    for (size_t j = 0; j < len; ++j) {
      out.data()[j] ^= gf256_mul(ys[i].data()[j], l);
    }
  }
  return out;
}

} // namespace fleetkey::crypto
