#pragma once
// Minting, per format (cwt.cpp, jwt.cpp), behind token::encode().

#include <fleetkey/token/token.hpp>

#include <string>
#include <string_view>

namespace fleetkey::token::detail {

std::string encode_cwt(Format f, const Claims& c, std::string_view kid, const MacKey& key);
std::string encode_jwt(const Claims& c, std::string_view kid, const MacKey& key);

} // namespace fleetkey::token::detail
