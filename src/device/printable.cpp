#include "device/printable.h"

#include <cstdio>

namespace vhp {
namespace {

void escape(std::string& out, unsigned char byte) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "\\x%02x", byte);
  out += buf;
}

// Length of the well-formed UTF-8 sequence at `s` (overlong forms, surrogates and values past
// U+10FFFF are not), or 0.
std::size_t utf8_length(std::string_view s, char32_t& code) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto continuation = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char lead = b(0);
  if (lead < 0x80) return code = lead, 1;
  if (lead >= 0xC2 && lead <= 0xDF && continuation(1)) return code = (lead & 0x1F) << 6 | (b(1) & 0x3F), 2;
  if (lead >= 0xE0 && lead <= 0xEF && continuation(1) && continuation(2)) {
    code = (lead & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    return code >= 0x800 && (code < 0xD800 || code > 0xDFFF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4 && continuation(1) && continuation(2) && continuation(3)) {
    code = (lead & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
    return code >= 0x10000 && code <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    char32_t code = 0;
    auto n = utf8_length(text, code);
    if (n == 0 || code < 0x20 || code == 0x7F || (code >= 0x80 && code <= 0x9F)) {
      for (std::size_t i = 0; i < (n == 0 ? 1 : n); ++i) escape(out, static_cast<unsigned char>(text[i]));
      text.remove_prefix(n == 0 ? 1 : n);
      continue;
    }
    out.append(text.substr(0, n));
    text.remove_prefix(n);
  }
  return out;
}

}  // namespace vhp
