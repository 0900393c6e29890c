#include "policy/json_reader.h"

namespace vhp {

using json = nlohmann::json;

void JsonReader::expected(const std::string& path, const std::string& what, const json& got) {
  error(path, "expected " + what + ", got " + got.dump(-1, ' ', false, json::error_handler_t::replace));
}

void JsonReader::warn_unknown_keys(const json& object, const std::string& path, const std::set<std::string>& known) {
  for (const auto& [key, value] : object.items())
    if (!known.contains(key)) warnings.push_back(join(path.empty() ? "(top level)" : path, key.c_str()) + ": unknown key, ignored");
}

namespace {
const json* present(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}
}  // namespace

std::optional<bool> JsonReader::boolean(const json& object, const std::string& path, const char* key) {
  auto* v = present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    expected(join(path, key), "true or false", *v);
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<std::string> JsonReader::string(const json& object, const std::string& path, const char* key) {
  auto* v = present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    expected(join(path, key), "a string", *v);
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<long> JsonReader::integer(const json& object, const std::string& path, const char* key, long min, long max) {
  auto* v = present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() || v->get<long>() < min || v->get<long>() > max) {
    expected(join(path, key), "an integer " + std::to_string(min) + "-" + std::to_string(max), *v);
    return std::nullopt;
  }
  return v->get<long>();
}

const json* JsonReader::list(const json& object, const std::string& path, const char* key) {
  auto* v = present(object, key);
  if (!v) return nullptr;
  if (!v->is_array()) {
    expected(join(path, key), "a list", *v);
    return nullptr;
  }
  return v;
}

const json* JsonReader::object(const json& parent, const std::string& path, const char* key) {
  auto* v = present(parent, key);
  if (!v) return nullptr;
  if (!v->is_object()) {
    expected(join(path, key), "an object", *v);
    return nullptr;
  }
  return v;
}

bool is_disabled(const json& node, JsonReader& reader, const std::string& path) {
  if (auto disable = reader.boolean(node, path, "disable")) return *disable;
  if (auto enable = reader.boolean(node, path, "enable")) return !*enable;
  return false;
}

}  // namespace vhp
