#pragma once
// QMP arguments used by more than one QEMU operation. Arguments are built outside co_await
// expressions: GCC 12 destroys temporaries there twice (braced initialisers, lambdas converted to
// std::function). Build them as locals first, with these.
#include <string>

#include <nlohmann/json.hpp>

namespace vhp::qmp {

inline nlohmann::json qom_get(const std::string& path, const char* property) { return {{"path", path}, {"property", property}}; }
inline nlohmann::json by_id(const std::string& id) { return {{"id", id}}; }

}  // namespace vhp::qmp
