#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace vhp {

// An absent value is JSON null, as the reference (Python None) sends it.
inline nlohmann::ordered_json optional_string(const std::optional<std::string>& s) {
  return s ? nlohmann::ordered_json(*s) : nlohmann::ordered_json(nullptr);
}

}  // namespace vhp
