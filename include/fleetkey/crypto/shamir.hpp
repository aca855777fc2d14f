#pragma once
// Shamir secret sharing over GF(2^8) (the AES field: x^8 + x^4 + x^3 + x + 1), byte by byte. The
// arithmetic only; the share format that carries it is fleet/backup.hpp's (fleetkey-formats(5)).

#include <fleetkey/crypto/secret.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace fleetkey::crypto {

// Multiplication in GF(2^8) modulo 0x11b, without branches or tables on the operands.
uint8_t gf256_mul(uint8_t a, uint8_t b) noexcept;
// The multiplicative inverse (a^254); 0 for 0.
uint8_t gf256_inv(uint8_t a) noexcept;

// Splits `secret` into `shares` values y_1..y_n (each as long as the secret), any `threshold` of
// which give it back: for each byte position j, a polynomial f_j of degree threshold-1 with
// f_j(0) = secret[j] and the other coefficients from randombytes_buf, and y_x[j] = f_j(x) for
// x = 1..shares. Needs 2 <= threshold <= shares <= 255; throws std::invalid_argument otherwise.
std::vector<Secret> shamir_split(std::span<const uint8_t> secret, unsigned shares, unsigned threshold);

// The polynomials' values at 0 from the points (xs[i], ys[i]) by Lagrange interpolation. The xs
// must be distinct and non-zero and the ys of one length (std::invalid_argument otherwise). With
// fewer points than the threshold, or a wrong one, the result is some other byte string.
Secret shamir_combine(std::span<const uint8_t> xs, std::span<const Secret> ys);

} // namespace fleetkey::crypto
