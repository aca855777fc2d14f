#pragma once
// The claims fleetkey interprets, in one table that drives all four mappings: CWT decoding and
// encoding (cwt.cpp), JWT decoding (jwt.cpp), and JSON output, which is also the JWT payload
// (claims_json.cpp). The table's order is the JSON member order of fleetkey-tokens(5).

#include <fleetkey/token/token.hpp>

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

namespace fleetkey::token::claim {

enum class Kind {
  text,  // a text string (CWT) / JSON string (JWT)
  time,  // an integer (int64)
  id,    // cti: 1 to 64 bytes (CWT, shown as hex); jti: a string of 1 to k_max_jti_size bytes (JWT)
  epoch, // the grant epoch: an unsigned integer under the text key "epoch" in both formats
};

struct Spec
{
  Claims::Field field;
  Kind kind;
  uint64_t cwt_key;          // CWT map key (RFC 8392; scope from RFC 8693); 0: a text key, `jwt_name`
  std::string_view cwt_name; // the name in JSON output of a CWT
  std::string_view jwt_name; // the JWT claim name, and the name in JSON output of a JWT
  std::string Claims::*text; // Kind::text and Kind::id
  int64_t Claims::*time;     // Kind::time
  // The names as JSON output writes them, quoted and with the colon: `"iss":`.
  std::string_view cwt_member;
  std::string_view jwt_member;
};

inline constexpr Spec k_table[] = {
    {Claims::iss, Kind::text, 1, "iss", "iss", &Claims::iss_value, nullptr, R"("iss":)", R"("iss":)"},
    {Claims::sub, Kind::text, 2, "sub", "sub", &Claims::sub_value, nullptr, R"("sub":)", R"("sub":)"},
    {Claims::aud, Kind::text, 3, "aud", "aud", &Claims::aud_value, nullptr, R"("aud":)", R"("aud":)"},
    {Claims::scope, Kind::text, 9, "scope", "scope", &Claims::scope_value, nullptr, R"("scope":)", R"("scope":)"},
    {Claims::iat, Kind::time, 6, "iat", "iat", nullptr, &Claims::iat_value, R"("iat":)", R"("iat":)"},
    {Claims::nbf, Kind::time, 5, "nbf", "nbf", nullptr, &Claims::nbf_value, R"("nbf":)", R"("nbf":)"},
    {Claims::exp, Kind::time, 4, "exp", "exp", nullptr, &Claims::exp_value, R"("exp":)", R"("exp":)"},
    {Claims::cti, Kind::id, 7, "cti", "jti", &Claims::cti_value, nullptr, R"("cti":)", R"("jti":)"},
    {Claims::epoch, Kind::epoch, 0, "epoch", "epoch", nullptr, nullptr, R"("epoch":)", R"("epoch":)"},
};

// Each member form is its name quoted, with the colon.
inline constexpr bool members_match_names = [] {
  for (const auto& s : k_table) {
    for (const auto& [name, member] : {std::pair{s.cwt_name, s.cwt_member}, std::pair{s.jwt_name, s.jwt_member}}) {
      if (member.size() != name.size() + 3 || member.front() != '"' || member.substr(1, name.size()) != name
          || member.substr(name.size() + 1) != "\":") {
        return false;
      }
    }
  }
  return true;
}();
static_assert(members_match_names);

inline constexpr uint64_t k_max_cwt_key = 9;

// The entries with an integer CWT key, in key order: the deterministic order of a CWT's claims map.
inline constexpr auto k_cwt_order = [] {
  std::array<const Spec*, std::size(k_table) - 1> out{};
  size_t n = 0;
  for (uint64_t key = 1; key <= k_max_cwt_key; ++key) {
    for (const auto& s : k_table) {
      if (s.cwt_key == key) {
        out[n++] = &s;
      }
    }
  }
  return out;
}();

// The entries by integer CWT key (nullptr where none), for decoding.
inline constexpr auto k_by_cwt_key = [] {
  std::array<const Spec*, k_max_cwt_key + 1> out{};
  for (const auto& s : k_table) {
    if (s.cwt_key != 0) {
      out[s.cwt_key] = &s;
    }
  }
  return out;
}();

// The entry for an integer CWT key, or nullptr.
inline const Spec* by_cwt_key(uint64_t key)
{
  return key <= k_max_cwt_key ? k_by_cwt_key[key] : nullptr;
}

// The entry for a JWT claim name, or nullptr (an extra claim).
inline const Spec* by_jwt_name(std::string_view name)
{
  for (const auto& s : k_table) {
    if (s.jwt_name == name) {
      return &s;
    }
  }
  return nullptr;
}

// Names that extra claims may not take: every name of an interpreted claim, in either format.
inline bool is_reserved(std::string_view name)
{
  for (const auto& s : k_table) {
    if (s.cwt_name == name || s.jwt_name == name) {
      return true;
    }
  }
  return false;
}

inline constexpr std::string_view k_epoch_name = "epoch";

} // namespace fleetkey::token::claim
