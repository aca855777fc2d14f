#include <fleetkey/pairing/verhoeff.hpp>

#include <cstdint>

namespace fleetkey::pairing {

namespace {

// d: multiplication in D5; p: the position permutation (p[i] = p[1]^i); inv: inverses in D5.
constexpr uint8_t k_d[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
    {3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
    {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
};
constexpr uint8_t k_p[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
    {8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
};
constexpr uint8_t k_inv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};

// Folds the digits right to left, the rightmost at position `first`.
std::optional<uint8_t> fold(std::string_view digits, size_t first)
{
  uint8_t c = 0;
  size_t pos = first;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, ++pos) {
    if (*it < '0' || *it > '9') {
      return std::nullopt;
    }
    c = k_d[c][k_p[pos % 8][*it - '0']];
  }
  return c;
}

} // namespace

std::optional<char> verhoeff_digit(std::string_view digits)
{
  const auto c = fold(digits, 1);
  if (!c) {
    return std::nullopt;
  }
  return static_cast<char>('0' + k_inv[*c]);
}

bool verhoeff_valid(std::string_view code)
{
  if (code.empty()) {
    return false;
  }
  const auto c = fold(code, 0);
  return c && *c == 0;
}

} // namespace fleetkey::pairing
