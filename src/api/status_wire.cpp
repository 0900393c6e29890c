// The `status` answer (ours; the reference has none).
#include <ctime>

#include "api/wire.h"

namespace vhp {
namespace {

using ordered_json = nlohmann::ordered_json;

std::string iso8601(WallClock::time_point t) {
  std::time_t seconds = WallClock::to_time_t(t);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

const char* state_name(VmHealth::State s) {
  switch (s) {
    case VmHealth::State::Up: return "up";
    case VmHealth::State::Down: return "down";
    case VmHealth::State::Unknown: break;
  }
  return "unknown";
}

ordered_json optional_number(const std::optional<std::size_t>& n) { return n ? ordered_json(*n) : ordered_json(); }

}  // namespace

ordered_json to_wire(const DaemonStatus& s) {
  auto vms = ordered_json::array();
  for (const auto& vm : s.vms) {
    ordered_json error;
    if (vm.health.last_error) error = {{"at", iso8601(vm.health.last_error_at)}, {"error", *vm.health.last_error}};
    vms.push_back({{"name", vm.name},
                   {"type", vm.type},
                   {"state", state_name(vm.health.state)},
                   {"since", iso8601(vm.health.since)},
                   {"usb_devices", vm.usb_devices},
                   {"pci_devices", vm.pci_devices},
                   {"input_devices", vm.input_devices},
                   {"last_error", error}});
  }
  const auto& l = s.limits;
  return {{"version", s.version},
          {"started", iso8601(s.started)},
          {"uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(s.uptime).count()},
          {"config", {{"path", s.config_path}, {"loaded", iso8601(s.config_loaded)}, {"last_reload_error", s.reload_error ? ordered_json(*s.reload_error) : ordered_json()}}},
          {"vms", std::move(vms)},
          {"devices", {{"usb", s.usb_devices}, {"pci", s.pci_devices}, {"input", s.input_devices}}},
          {"clients", {{"api", s.api_clients}, {"thunder", s.thunder_clients}}},
          {"pending_selections", s.pending_selections},
          {"limits",
           {{"api", {{"max_clients_per_transport", l.api_max_clients}, {"max_line_bytes", l.api_max_line_bytes},
                     {"send_queue_bytes", l.api_send_queue_bytes}, {"send_timeout_ms", l.api_send_timeout_ms}}},
            {"thunder", {{"max_clients", optional_number(l.thunder_max_clients)}, {"max_message_bytes", optional_number(l.thunder_max_message_bytes)}}}}}};
}

}  // namespace vhp
