#include "api/python_text.h"

#include <cstdio>

namespace vhp {

namespace {

// Python's repr of a str: single quotes unless the text has one and no double quote; backslash,
// quote and control characters escaped; other characters (UTF-8 included) as they are.
std::string quoted(const std::string& s) {
  char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(quote)) out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + quote;
}

}  // namespace

std::string python_repr(const nlohmann::ordered_json& v) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::null: return "None";
    case nlohmann::ordered_json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case nlohmann::ordered_json::value_t::string: return quoted(v.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::string out = "[";
      for (const auto& item : v) out += (out.size() > 1 ? ", " : "") + python_repr(item);
      return out + "]";
    }
    case nlohmann::ordered_json::value_t::object: {
      std::string out = "{";
      for (const auto& [key, item] : v.items()) out += (out.size() > 1 ? ", " : "") + quoted(key) + ": " + python_repr(item);
      return out + "}";
    }
    default: return v.dump();  // numbers: 1, 1.5
  }
}

std::string python_str(const nlohmann::ordered_json& v) { return v.is_string() ? v.get<std::string>() : python_repr(v); }

}  // namespace vhp
