#include "policy/config.h"

#include <algorithm>
#include <fstream>
#include <set>

namespace vhp {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& expected, const json& got) {
  throw ConfigError(path + ": expected " + expected + ", got " + got.dump(-1, ' ', false, json::error_handler_t::replace));
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

void warn_unknown_keys(const json& object, const std::string& path, const std::set<std::string>& known,
                       std::vector<std::string>& warnings) {
  for (const auto& [key, value] : object.items())
    if (!known.contains(key)) warnings.push_back(path + "." + key + ": unknown key, ignored");
}

bool read_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) fail(path, "true or false", v);
  return v.get<bool>();
}

std::string read_string(const json& v, const std::string& path) {
  if (!v.is_string()) fail(path, "a string", v);
  return v.get<std::string>();
}

long read_int(const json& v, const std::string& path, long min, long max) {
  if (!v.is_number_integer() || v.get<long>() < min || v.get<long>() > max)
    fail(path, "an integer " + std::to_string(min) + "-" + std::to_string(max), v);
  return v.get<long>();
}

std::vector<Principal> read_principals(const json& v, const std::string& path) {
  if (!v.is_array()) fail(path, "a list of names or ids", v);
  std::vector<Principal> out;
  for (size_t i = 0; i < v.size(); ++i) {
    auto item = path + "[" + std::to_string(i) + "]";
    if (v[i].is_string() && !v[i].get<std::string>().empty()) out.push_back({v[i].get<std::string>(), std::nullopt});
    else if (v[i].is_number_unsigned()) out.push_back({"", static_cast<unsigned>(read_int(v[i], item, 0, 0xFFFFFFFE))});
    else fail(item, "a name or a numeric id", v[i]);
  }
  return out;
}

ApiConfig parse_api(const json& api, std::vector<std::string>& warnings) {
  const std::string p = "general.api";
  if (!api.is_object()) fail(p, "an object", api);
  warn_unknown_keys(api, p,
                    {"enable", "host", "port", "transports", "allowedCids", "unixSocket", "unixSocketUser",
                     "unixSocketGroup", "unixSocketMode", "allowedUsers", "allowedGroups", "maxLineBytes",
                     "maxClients", "sendQueueBytes", "sendTimeoutMs"},
                    warnings);
  ApiConfig c;
  if (auto* v = member(api, "enable")) c.enable = read_bool(*v, p + ".enable");
  if (auto* v = member(api, "host")) c.host = read_string(*v, p + ".host");
  if (auto* v = member(api, "port")) c.port = static_cast<int>(read_int(*v, p + ".port", 1, 65535));
  if (auto* v = member(api, "transports")) {
    if (!v->is_array()) fail(p + ".transports", "a list", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      auto t = (*v)[i];
      auto path = p + ".transports[" + std::to_string(i) + "]";
      if (!t.is_string() || (t != "tcp" && t != "vsock" && t != "unix")) fail(path, "\"tcp\", \"vsock\" or \"unix\"", t);
      if (!c.has_transport(t)) c.transports.push_back(t);
    }
  }
  if (auto* v = member(api, "allowedCids"); v && !v->is_null()) {
    if (!v->is_array()) fail(p + ".allowedCids", "a list of CIDs", *v);
    for (size_t i = 0; i < v->size(); ++i)
      c.allowed_cids.push_back(static_cast<unsigned>(read_int((*v)[i], p + ".allowedCids[" + std::to_string(i) + "]", 0, 0xFFFFFFFE)));
  }
  if (auto* v = member(api, "unixSocket")) {
    c.unix_socket = read_string(*v, p + ".unixSocket");
    if (c.unix_socket.empty() || c.unix_socket.size() > 107) fail(p + ".unixSocket", "a path of 1-107 bytes", *v);
  }
  if (auto* v = member(api, "unixSocketUser")) c.unix_socket_user = read_string(*v, p + ".unixSocketUser");
  if (auto* v = member(api, "unixSocketGroup")) c.unix_socket_group = read_string(*v, p + ".unixSocketGroup");
  if (auto* v = member(api, "unixSocketMode")) {
    auto text = read_string(*v, p + ".unixSocketMode");
    char* end = nullptr;
    unsigned long mode = std::strtoul(text.c_str(), &end, 8);
    if (text.empty() || *end != '\0' || mode > 07777) fail(p + ".unixSocketMode", "an octal mode such as \"0660\"", *v);
    c.unix_socket_mode = static_cast<unsigned>(mode);
  }
  if (auto* v = member(api, "allowedUsers")) c.allowed_users = read_principals(*v, p + ".allowedUsers");
  if (auto* v = member(api, "allowedGroups")) c.allowed_groups = read_principals(*v, p + ".allowedGroups");
  if (auto* v = member(api, "maxLineBytes")) c.max_line_bytes = read_int(*v, p + ".maxLineBytes", 256, 64L << 20);
  if (auto* v = member(api, "maxClients")) c.max_clients = read_int(*v, p + ".maxClients", 1, 65536);
  if (auto* v = member(api, "sendQueueBytes")) c.send_queue_bytes = read_int(*v, p + ".sendQueueBytes", 4096, 1L << 30);
  if (auto* v = member(api, "sendTimeoutMs")) c.send_timeout_ms = static_cast<int>(read_int(*v, p + ".sendTimeoutMs", 100, 3'600'000));
  return c;
}

}  // namespace

bool ApiConfig::has_transport(const std::string& t) const {
  return std::ranges::find(transports, t) != transports.end();
}

Config parse_config(const json& root, const std::string& source) {
  if (!root.is_object()) fail("(top level)", "an object", root);
  Config c;
  c.source = source;
  warn_unknown_keys(root, "(top level)",
                    {"usbPassthrough", "pciPassthrough", "evdevPassthrough", "acpiPassthrough", "vms",
                     "usbAuthorization", "general"},
                    c.warnings);
  if (auto* general = member(root, "general")) {
    if (!general->is_object()) fail("general", "an object", *general);
    if (auto* api = member(*general, "api")) c.api = parse_api(*api, c.warnings);
  }
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot be read");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(path + ": invalid JSON: " + e.what());
  }
  return parse_config(root, path);
}

Config builtin_config() {
  Config c;
  c.source = "built-in default";
  c.api.transports = {"unix"};
  return c;
}

}  // namespace vhp
