#pragma once
// Typed, path-aware reads from a JSON config. Problems are collected, not thrown, so that one
// check reports all of them: "usbPassthrough[2].allow[0].vendorId: expected a 4-digit hex string, got \"zz\"".
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp {

class JsonReader {
 public:
  std::vector<std::string> errors;
  std::vector<std::string> warnings;

  void error(const std::string& path, const std::string& problem) { errors.push_back(path + ": " + problem); }
  void expected(const std::string& path, const std::string& what, const nlohmann::json& got);
  void warn_unknown_keys(const nlohmann::json& object, const std::string& path, const std::set<std::string>& known);

  // Each returns nullopt when the key is absent or null; a present value of the wrong type is an error.
  std::optional<bool> boolean(const nlohmann::json& object, const std::string& path, const char* key);
  std::optional<std::string> string(const nlohmann::json& object, const std::string& path, const char* key);
  std::optional<long> integer(const nlohmann::json& object, const std::string& path, const char* key, long min, long max);
  // A list: each element's path is path.key[i]. Absent or null: empty.
  const nlohmann::json* list(const nlohmann::json& object, const std::string& path, const char* key);
  const nlohmann::json* object(const nlohmann::json& parent, const std::string& path, const char* key);

  static std::string join(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }
  static std::string index(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }
};

// The reference's enable/disable: "disable" decides when present, else "enable": false disables.
bool is_disabled(const nlohmann::json& node, JsonReader& reader, const std::string& path);

}  // namespace vhp
