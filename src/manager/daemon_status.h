#pragma once
// What the `status` action answers (ours): how the daemon and each VM are doing, as typed facts.
// The daemon fills it; the faces encode it.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace vhp {

using WallClock = std::chrono::system_clock;

// Kept by the manager as VMs come and go and operations on them fail.
struct VmHealth {
  enum class State { Unknown, Up, Down };
  State state = State::Unknown;
  WallClock::time_point since = WallClock::now();  // of the state (the daemon's start while unknown)
  std::optional<std::string> last_error;
  WallClock::time_point last_error_at{};
};

struct VmStatus {
  std::string name, type;
  VmHealth health;
  std::size_t usb_devices = 0, pci_devices = 0, input_devices = 0;  // attached now
};

struct DaemonStatus {
  std::string version;
  WallClock::time_point started;
  std::chrono::steady_clock::duration uptime{};
  std::string config_path;  // "built-in default" when there was no file
  WallClock::time_point config_loaded;
  std::optional<std::string> reload_error;  // the last reload's, when it was rejected
  std::vector<VmStatus> vms;
  std::size_t usb_devices = 0, pci_devices = 0, input_devices = 0;  // present on the host
  std::size_t api_clients = 0, thunder_clients = 0, pending_selections = 0;
  struct Limits {
    std::size_t api_max_clients = 0, api_max_line_bytes = 0, api_send_queue_bytes = 0;
    int api_send_timeout_ms = 0;
    std::optional<std::size_t> thunder_max_clients, thunder_max_message_bytes;
  } limits;
};

}  // namespace vhp
