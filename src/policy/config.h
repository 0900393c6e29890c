#pragma once
// The reference's JSON config file, every section parsed and validated. Our additions are new
// keys, never changed meanings.
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/evdev_rules.h"
#include "policy/pci_rules.h"
#include "policy/usb_rules.h"

namespace vhp {

// Every problem found, one per line, each naming its JSON path.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Principal {  // a user or group, by name or by numeric id
  std::string name;
  std::optional<unsigned> id;
};

// Ours: what a caller may do over the API (docs/CONFIG.md, "Permissions"). An entry matches a
// caller by any of its users or groups (Unix), cids (VSOCK) or addresses (TCP: an address or a
// network); an entry naming none matches every caller. The first entry that matches applies.
struct ApiPermission {
  std::vector<Principal> users, groups;
  std::vector<unsigned> cids;
  std::vector<std::string> addresses;           // "127.0.0.1", "10.0.0.0/8", "::1"
  std::optional<std::string> vm;                // the caller is this VM: its default `vms`
  std::vector<std::string> actions;             // of kApiActions, or "*"
  std::optional<std::vector<std::string>> vms;  // the VMs it may act on ("*": every one); absent: [vm], else every one
};

// The kinds of request a permission entry names.
inline const std::vector<std::string> kApiActions{"list", "attach", "pci", "suspend", "vmm_args", "notifications"};

struct ApiConfig {
  bool enable = true;
  std::string host = "127.0.0.1";
  int port = 2000;  // TCP and VSOCK, as the reference
  std::vector<std::string> transports;  // "tcp", "vsock", "unix"
  std::vector<unsigned> allowed_cids;   // empty: every CID
  std::string unix_socket = "/var/lib/vhotplug/vhotplug.sock";
  std::string unix_socket_user, unix_socket_group;
  std::optional<unsigned> unix_socket_mode;  // from an octal string, e.g. "0660"
  // Ours: peer-credential access control on the Unix socket (empty: everyone the file mode lets in).
  std::vector<Principal> allowed_users, allowed_groups;
  // Ours: who may do what; absent: every admitted caller may do everything.
  std::optional<std::vector<ApiPermission>> permissions;
  // Ours: limits.
  std::size_t max_line_bytes = 1024 * 1024;
  std::size_t max_clients = 1024;  // per transport: TCP clients cannot lock out Unix ones
  std::size_t send_queue_bytes = 4 * 1024 * 1024;
  int send_timeout_ms = 10'000;
  int first_request_timeout_ms = 30'000;  // a connection that has sent no complete request by then is closed

  bool has_transport(const std::string& t) const;
};

// Ours: the Thunder USBHub JSON-RPC facade (HTTP and WebSocket). Off unless the section is present.
struct ThunderConfig {
  bool enable = false;
  std::string host = "127.0.0.1";
  int port = 9998;  // RDK's usual Thunder port
  std::string callsign = "USBHub";
  std::size_t max_clients = 64;
  std::size_t max_message_bytes = 1024 * 1024;
  std::size_t send_queue_bytes = 4 * 1024 * 1024;
  // Who may call: a browser page only from these origins (a request with another Origin is
  // refused); a Host header only an IP literal, "localhost" or one of these names (no DNS
  // rebinding); with a token, only callers that send it.
  std::vector<std::string> allowed_origins, allowed_hosts;
  std::string token;
  std::size_t max_registrations = 64;       // per connection
  std::size_t max_websockets_per_peer = 16; // per peer address
};

struct VmConfig {
  std::string name;
  std::string type;    // qemu | crosvm | cloud-hypervisor
  std::string socket;  // QMP socket (qemu), control socket (crosvm), API socket (cloud-hypervisor)
};

struct AcpiTable {
  bool enabled = true;
  std::string acpi_table;
  std::optional<std::string> set_user, set_group;
};

struct AcpiRuleGroup {
  bool enabled = true;
  std::string description;
  std::optional<std::string> target_vm;
  std::vector<AcpiTable> tables;
};

struct UsbAuthorization {
  bool enable = false;
  bool deauthorize_unmatched = false;
  std::vector<UsbSelector> host_allow;
};

struct GeneralConfig {
  bool persistency = true;
  std::string state_path = "/var/lib/vhotplug/vhotplug.state";
  std::string modprobe = "modprobe", modinfo = "modinfo", crosvm = "crosvm";
  std::optional<std::string> ovmf_code, ovmf_vars;
  ApiConfig api;
  ThunderConfig thunder;
};

struct Config {
  std::vector<UsbRuleGroup> usb;
  std::vector<PciRuleGroup> pci;
  std::vector<EvdevRuleGroup> evdev;
  std::vector<AcpiRuleGroup> acpi;
  std::vector<VmConfig> vms;
  UsbAuthorization usb_authorization;
  GeneralConfig general;
  std::string source;                 // file path, or "built-in default"
  std::vector<std::string> warnings;  // unknown keys and rules that can never apply

  const VmConfig* find_vm(const std::string& name) const;
};

// Reads and validates a config. Throws ConfigError listing every problem.
Config load_config_file(const std::string& path);
Config parse_config(const nlohmann::json& root, const std::string& source);
// No file: the API on the Unix socket, no VMs, no rules.
Config builtin_config();

}  // namespace vhp
