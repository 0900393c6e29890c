#pragma once
// JSON values as the reference CLI (Python) prints them: str() for a list field's value (`None`,
// `True`, `['vm1']`, `1`, strings as they are) and repr() for a whole event (`{'event': …}`), so
// that scripts parsing the reference's output keep working.
#include <string>

#include <nlohmann/json.hpp>

namespace vhp {

std::string python_str(const nlohmann::ordered_json& value);
std::string python_repr(const nlohmann::ordered_json& value);

}  // namespace vhp
