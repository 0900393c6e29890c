#pragma once
// Strings a device chose (vendor and product names, serials), made safe to print: control
// characters (C0, DEL, C1) and bytes that are not UTF-8 become \xNN, so a name cannot move a
// terminal's cursor, clear it, or forge a log line. Printable text, any script, is unchanged.
#include <string>
#include <string_view>

namespace vhp {

std::string printable(std::string_view text);

}  // namespace vhp
