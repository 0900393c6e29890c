#pragma once
// Strict parsers for the text that sysfs and udev hand us: the whole string must be a number.
#include <optional>
#include <string>
#include <string_view>

namespace vhp {

std::string_view trim(std::string_view s);
// Non-negative integer in `base` (10 or 16, optional 0x prefix for 16); nullopt when not a whole number or too big.
std::optional<long> parse_number(std::string_view s, int base);
std::string to_lower(std::string s);
std::string to_upper(std::string s);

}  // namespace vhp
