#pragma once
// The reference's JSON config file. This module reads `general.api` so far; the passthrough rule
// sections arrive with the policy issue. Our additions are new keys, never changed meanings.
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp {

// Names the JSON path and the problem, e.g. "general.api.port: expected an integer 1-65535, got \"x\"".
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A user or group given by name or by numeric id.
struct Principal {
  std::string name;          // empty when given as an id
  std::optional<unsigned> id;
};

struct ApiConfig {
  bool enable = true;
  std::string host = "127.0.0.1";
  int port = 2000;  // TCP and VSOCK, as the reference
  std::vector<std::string> transports;  // "tcp", "vsock", "unix"
  std::vector<unsigned> allowed_cids;   // empty: every CID
  std::string unix_socket = "/var/lib/vhotplug/vhotplug.sock";
  std::string unix_socket_user, unix_socket_group;
  std::optional<unsigned> unix_socket_mode;  // from an octal string, e.g. "0660"
  // Ours: peer-credential access control on the Unix socket (empty lists: everyone the file mode lets in).
  std::vector<Principal> allowed_users, allowed_groups;
  // Ours: limits.
  std::size_t max_line_bytes = 1024 * 1024;
  std::size_t max_clients = 64;
  std::size_t send_queue_bytes = 4 * 1024 * 1024;
  int send_timeout_ms = 10'000;

  bool has_transport(const std::string& t) const;
};

struct Config {
  ApiConfig api;
  std::string source;                 // file path, or "built-in default"
  std::vector<std::string> warnings;  // unknown keys and the like
};

// Reads and validates a config file. Throws ConfigError.
Config load_config_file(const std::string& path);
Config parse_config(const nlohmann::json& root, const std::string& source);
// No file: the API on the Unix socket, no VMs, no rules.
Config builtin_config();

}  // namespace vhp
