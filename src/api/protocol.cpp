#include "api/protocol.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "api/wire.h"
#include "common/log_fields.h"

namespace vhp {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// A request whose fields have the wrong types; the message is the response's error text.
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::optional<bool> optional_bool(const json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw BadRequest(std::string("Invalid message: ") + key + " must be true, false or null");
  return it->get<bool>();
}

std::optional<std::string> optional_string(const json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw BadRequest(std::string("Invalid message: ") + key + " must be a string or null");
  return it->get<std::string>();
}

// The reference runs int() on it: an integer, or its decimal string; null or absent is 0 (the
// reference fails on the null its own CLI sends).
int bus_start_index(const json& request) {
  auto it = request.find("qemu_bus_start_index");
  if (it == request.end() || it->is_null()) return 0;
  std::optional<long> v;
  if (it->is_number_integer()) v = it->get<long>();
  else if (it->is_string() && !it->get<std::string>().empty() && it->get<std::string>().size() <= 9 &&
           it->get<std::string>().find_first_not_of("0123456789") == std::string::npos)
    v = std::stol(it->get<std::string>());
  if (!v || *v < 0 || *v > 1'000'000)
    throw BadRequest("Invalid message: qemu_bus_start_index must be an integer from 0 to 1000000");
  return static_cast<int>(*v);
}

VmmArgs vmm_args(const json& request) {
  auto vm = optional_string(request, "vm");
  if (!vm || vm->empty()) throw BadRequest("VM name is required");
  return VmmArgs{*vm, optional_string(request, "qemu_bus_prefix"), bus_start_index(request),
                 optional_bool(request, "require_pci").value_or(false)};
}

ListFilter list_filter(const json& request) {
  return {optional_bool(request, "disconnected"), optional_string(request, "tag")};
}

// bus and port may be JSON ints (what the reference compares) or strings (what its API.md shows).
std::optional<std::string> number_or_string(const json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) return std::to_string(it->get<unsigned long>());
  if (it->is_string()) return it->get<std::string>();
  throw BadRequest(std::string("Invalid message: ") + key + " must be a number or a string");
}

bool is_port_path(const std::string& s) {  // "2" or "2.1.4"
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) return false;
  return s.find_first_not_of("0123456789.") == std::string::npos && s.size() <= 32;
}

std::optional<std::string> usb_id(const json& request, const char* key) {
  auto v = optional_string(request, key);
  if (v && (v->size() != 4 || v->find_first_not_of("0123456789abcdefABCDEF") != std::string::npos))
    throw BadRequest(std::string("Invalid message: ") + key + " must be a 4-digit hex string");
  if (v) std::ranges::transform(*v, v->begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return v;
}

DeviceSelector device_selector(const json& request) {
  DeviceSelector s;
  s.device_node = optional_string(request, "device_node");
  if (auto bus = number_or_string(request, "bus")) {
    if (bus->empty() || bus->size() > 3 || bus->find_first_not_of("0123456789") != std::string::npos)
      throw BadRequest("Invalid message: bus must be a bus number");
    s.bus = std::stoi(*bus);
  }
  s.port = number_or_string(request, "port");
  if (s.port && !is_port_path(*s.port)) throw BadRequest("Invalid message: port must be a port number or a path such as 2.1");
  s.tag = optional_string(request, "tag");
  s.vid = usb_id(request, "vid");
  s.pid = usb_id(request, "pid");
  if (s.kind() == DeviceSelector::Kind::None)
    throw BadRequest("Invalid message: name the device by device_node, bus and port, vid and pid, or tag");
  return s;
}

bool is_hex(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos; }

// "0000:00:14.3" (domain:bus:device.function), any case; lowercased as sysfs names devices. The
// domain has 4 hex digits, or more behind an Intel VMD controller ("10000:e1:00.0").
std::optional<std::string> pci_address(const json& request) {
  auto a = optional_string(request, "address");
  if (!a) return a;
  auto colon = a->find(':');
  bool ok = colon >= 4 && colon <= 8 && a->size() == colon + 8 && (*a)[colon + 3] == ':' && (*a)[colon + 6] == '.' &&
            is_hex(a->substr(0, colon)) && is_hex(a->substr(colon + 1, 2)) && is_hex(a->substr(colon + 4, 2)) &&
            (*a)[colon + 7] >= '0' && (*a)[colon + 7] <= '7';
  if (!ok) throw BadRequest("Invalid message: address must be a PCI address such as 0000:00:14.3");
  std::ranges::transform(*a, a->begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return a;
}

// A PCI vendor or device id: hex, "10de" or "0x10de", as the reference reads them.
std::optional<std::string> pci_id(const json& request, const char* key) {
  auto v = optional_string(request, key);
  if (!v) return v;
  auto digits = v->starts_with("0x") || v->starts_with("0X") ? v->substr(2) : *v;
  if (digits.size() > 4 || !is_hex(digits)) throw BadRequest(std::string("Invalid message: ") + key + " must be a hex id such as 8086");
  return v;
}

PciDeviceSelector pci_selector(const json& request) {
  PciDeviceSelector s;
  s.address = pci_address(request);
  s.tag = optional_string(request, "tag");
  s.vid = pci_id(request, "vid");
  s.did = pci_id(request, "did");
  if (s.kind() == PciDeviceSelector::Kind::None) throw BadRequest("Invalid message: name the device by address, vid and did, or tag");
  return s;
}

// The permission an action needs (the names of general.api.permissions[].actions).
std::optional<std::string> right_of(const std::string& action) {
  static const std::map<std::string, std::string> rights{
      {"enable_notifications", "notifications"}, {"usb_list", "list"},   {"pci_list", "list"},      {"evdev_list", "list"},
      {"vmm_args", "vmm_args"},                  {"usb_attach", "attach"}, {"usb_detach", "attach"}, {"pci_attach", "pci"},
      {"pci_detach", "pci"},                     {"usb_suspend", "suspend"}, {"usb_resume", "suspend"}, {"pci_suspend", "suspend"},
      {"pci_resume", "suspend"},                 {"status", "list"}};
  auto it = rights.find(action);
  if (it == rights.end()) return std::nullopt;
  return it->second;
}

// What a caller limited to some VMs sees of a list: devices in them, or that their rules offer them.
template <class Listing>
bool shown(const Grant* grant, const Listing& entry) {
  return !grant || (entry.vm && grant->manages(*entry.vm)) || grant->manages_any(entry.allowed_vms);
}

}  // namespace

std::string Outcome::response_line() const { return line ? *line : Protocol::to_line(response.value()); }

std::string Protocol::usb_list_line(const ListFilter& filter, const Grant* grant) {
  static constexpr std::size_t max_filters = 4;  // filters differ by tag: a client's strings must not grow this
  auto stamp = manager_.usb_list_stamp();
  auto key = std::pair(filter.disconnected, filter.tag);
  auto it = usb_lists_.find(key);
  if (it == usb_lists_.end() || it->second.stamp != stamp) {
    if (it == usb_lists_.end() && usb_lists_.size() >= max_filters) usb_lists_.clear();
    UsbListCache fresh{std::move(stamp), {}, R"({"result":"ok","usb_devices":[)"};
    for (const auto& entry : manager_.usb_list(filter)) {
      if (!fresh.entries.empty()) fresh.line += ',';
      std::size_t begin = fresh.line.size();
      fresh.line += to_wire(entry).dump(-1, ' ', false, json::error_handler_t::replace);
      fresh.entries.push_back({begin, fresh.line.size(), entry.vm, entry.allowed_vms});
    }
    fresh.line += "]}\n";
    it = usb_lists_.insert_or_assign(key, std::move(fresh)).first;
  }
  const auto& cache = it->second;
  if (!grant) return cache.line;
  std::string line = R"({"result":"ok","usb_devices":[)";
  bool first = true;
  for (const auto& e : cache.entries) {
    if (shown(grant, e)) {
      line.append(first ? "" : ",").append(cache.line, e.begin, e.end - e.begin);
      first = false;
    }
  }
  return line + "]}\n";
}

ordered_json Protocol::failed(const std::string& error) { return {{"result", "failed"}, {"error", error}}; }

ordered_json Protocol::ok() { return {{"result", "ok"}}; }

ordered_json Protocol::line_too_long(std::size_t limit) {
  return failed("Message too long: the limit is " + std::to_string(limit) + " bytes per line");
}

std::string Protocol::to_line(const ordered_json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Outcome Protocol::handle(std::string_view line, Session& session) {
  json request;
  try {
    request = json::parse(line);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for numbers beyond a double (1e999999); ill-formed UTF-8 is a parse_error.
    return {failed(std::string("Invalid JSON: ") + e.what())};
  }
  if (!request.is_object()) return {failed("Invalid message: expected a JSON object")};
  auto action = request.find("action");
  if (action == request.end() || action->is_null()) return {failed("No action specified")};
  if (!action->is_string()) return {failed("Invalid message: action must be a string")};
  try {
    return dispatch(action->get<std::string>(), request, session);
  } catch (const BadRequest& e) {
    return {failed(e.what())};
  } catch (const std::exception& e) {  // a bug must not cost the client its connection
    return {failed(std::string("Internal error: ") + e.what())};
  }
}

Outcome Protocol::deny(const Session& session, const std::string& action, const std::string& why) {
  if (denials_logged_.insert(session.caller.identity() + " " + action).second)
    LogFields().caller(session.caller.identity()).warn("api: permission denied to {}: {}", session.caller.describe(), why);
  return {failed("Permission denied: " + why)};
}

Outcome Protocol::dispatch(const std::string& action, const json& request, Session& session) {
  const Grant* grant = session.grant.get();
  if (auto right = right_of(action); grant && right && !grant->may(*right)) {
    if (grant->rights.empty()) return deny(session, action, action + " (no permissions entry matches " + session.caller.identity() + ")");
    return deny(session, action, action + " (" + grant->name + " does not allow " + *right + ")");
  }
  auto outcome = run(action, request, session);
  if (grant && outcome.command)
    if (auto why = scope_denial(manager_, *grant, *outcome.command)) return deny(session, action, *why);
  return outcome;
}

Outcome Protocol::run(const std::string& action, const json& request, Session& session) {
  const Grant* grant = session.grant.get();
  if (action == "enable_notifications") {
    session.notifications = true;
    return {ok(), std::nullopt, true};
  }
  if (action == "usb_list") {
    Outcome outcome;
    outcome.line = usb_list_line(list_filter(request), grant);
    return outcome;
  }
  if (action == "pci_list") {
    auto response = ok();
    auto list = ordered_json::array();
    for (const auto& entry : manager_.pci_list(list_filter(request)))
      if (shown(grant, entry)) list.push_back(to_wire(entry));
    response["pci_devices"] = std::move(list);
    return {response};
  }
  if (action == "evdev_list") {  // ours: the reference has no API for input devices
    auto response = ok();
    auto list = ordered_json::array();
    for (const auto& entry : manager_.evdev_list())
      if (!grant || (entry.vm && grant->manages(*entry.vm)) || grant->manages(entry.target_vm)) list.push_back(to_wire(entry));
    response["evdev_devices"] = std::move(list);
    return {response};
  }
  if (action == "status") {  // ours
    if (!status_source_) return {failed("Status is not available")};
    auto status = status_source_();
    if (grant) std::erase_if(status.vms, [&](const VmStatus& vm) { return !grant->manages(vm.name); });
    auto response = ok();
    response["status"] = to_wire(status);
    return {response};
  }
  if (action == "vmm_args") return {std::nullopt, vmm_args(request)};
  if (action == "usb_attach") return {std::nullopt, UsbAttach{device_selector(request), optional_string(request, "vm")}};
  if (action == "usb_detach") return {std::nullopt, UsbDetach{device_selector(request)}};
  if (action == "pci_attach") return {std::nullopt, PciAttach{pci_selector(request), optional_string(request, "vm")}};
  if (action == "pci_detach") return {std::nullopt, PciDetach{pci_selector(request)}};
  if (action == "usb_suspend") return {std::nullopt, UsbSuspend{optional_string(request, "vm")}};
  if (action == "usb_resume") return {std::nullopt, UsbResume{optional_string(request, "vm")}};
  if (action == "pci_suspend") return {std::nullopt, PciSuspend{optional_string(request, "vm")}};
  if (action == "pci_resume") return {std::nullopt, PciResume{optional_string(request, "vm")}};
  return {failed("Unknown message: " + action)};
}

}  // namespace vhp
