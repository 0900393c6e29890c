#include "policy/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "device/parse.h"
#include "policy/json_reader.h"

namespace vhp {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxPatternBytes = 1024;

// What Python's re takes and RE2 does not, said in the error: these need backtracking, whose time
// a device string could make exponential.
std::string python_only(const std::string& pattern) {
  for (const char* construct : {"(?=", "(?!", "(?<=", "(?<!"})
    if (pattern.find(construct) != std::string::npos) return " (lookaround assertions are not supported: rules match in linear time)";
  for (std::size_t i = 0; i + 1 < pattern.size(); ++i)
    if (pattern[i] == '\\' && ((pattern[i + 1] >= '1' && pattern[i + 1] <= '9') || pattern.compare(i, 3, "\\g<") == 0))
      return " (backreferences are not supported: rules match in linear time)";
  if (pattern.find("(?P=") != std::string::npos) return " (backreferences are not supported: rules match in linear time)";
  return "";
}

std::optional<Pattern> pattern(JsonReader& r, const json& o, const std::string& path, const char* key) {
  auto source = r.string(o, path, key);
  if (!source) return std::nullopt;
  if (source->size() > kMaxPatternBytes) {
    r.error(JsonReader::join(path, key), "regular expression longer than 1024 bytes");
    return std::nullopt;
  }
  try {
    return Pattern(*source);
  } catch (const std::invalid_argument& e) {
    r.error(JsonReader::join(path, key), "invalid regular expression \"" + *source + "\": " + e.what() + python_only(*source));
    return std::nullopt;
  }
}

std::optional<std::string> usb_id(JsonReader& r, const json& o, const std::string& path, const char* key) {
  auto v = r.string(o, path, key);
  if (!v) return std::nullopt;
  if (v->size() != 4 || !parse_number(*v, 16) || v->find_first_of("xX") != std::string::npos) {
    r.expected(JsonReader::join(path, key), "a 4-digit hex string", *v);
    return std::nullopt;
  }
  return to_lower(*v);
}

std::optional<int> pci_id(JsonReader& r, const json& o, const std::string& path, const char* key) {
  auto v = r.string(o, path, key);
  if (!v) return std::nullopt;
  auto n = parse_number(*v, 16);
  if (!n || *n > 0xFFFF) {
    r.expected(JsonReader::join(path, key), "a hex string of at most 4 digits", *v);
    return std::nullopt;
  }
  return static_cast<int>(*n);
}

int byte(JsonReader& r, const json& o, const std::string& path, const char* key) {
  return static_cast<int>(r.integer(o, path, key, 0, 255).value_or(0));
}

std::string description(JsonReader& r, const json& o, const std::string& path) {
  return r.string(o, path, "description").value_or("");
}

const std::set<std::string> kUsbSelectorKeys = {
    "description", "disable", "enable", "vendorId", "productId", "vendorName", "productName", "bus", "port",
    "deviceClass", "deviceSubclass", "deviceProtocol", "interfaceClass", "interfaceSubclass", "interfaceProtocol",
    "removable", "driverPath"};

UsbSelector usb_selector(JsonReader& r, const json& o, const std::string& path) {
  UsbSelector s;
  if (!o.is_object()) {
    r.expected(path, "an object", o);
    return s;
  }
  r.warn_unknown_keys(o, path, kUsbSelectorKeys);
  s.enabled = !is_disabled(o, r, path);
  s.description = description(r, o, path);
  s.vendor_id = usb_id(r, o, path, "vendorId");
  s.product_id = usb_id(r, o, path, "productId");
  if (s.vendor_id.has_value() != s.product_id.has_value())
    r.warnings.push_back(path + ": vendorId and productId only match together; this pair never matches");
  s.vendor_name = pattern(r, o, path, "vendorName");
  s.product_name = pattern(r, o, path, "productName");
  if (auto bus = r.integer(o, path, "bus", 1, 999)) s.bus = static_cast<int>(*bus);
  if (auto it = o.find("port"); it != o.end() && !it->is_null()) {
    auto ppath = JsonReader::join(path, "port");
    if (it->is_number_integer() && it->get<long>() >= 1 && it->get<long>() <= 255) {
      s.root_port = it->get<int>();
    } else if (it->is_string()) {  // ours: an exact port path such as "2.1"
      std::vector<int> ports;
      std::stringstream ss(it->get<std::string>());
      bool ok = !it->get<std::string>().empty();
      for (std::string part; ok && std::getline(ss, part, '.');) {
        auto n = parse_number(part, 10);
        ok = n && *n >= 1 && *n <= 255;
        if (ok) ports.push_back(static_cast<int>(*n));
      }
      if (ok) s.port_path = ports;
      else r.expected(ppath, "a root port 1-255 or a port path such as \"2.1\"", *it);
    } else {
      r.expected(ppath, "a root port 1-255 or a port path such as \"2.1\"", *it);
    }
  }
  if (s.bus.has_value() != (s.root_port || s.port_path))
    r.warnings.push_back(path + ": bus and port only match together; this pair never matches");
  s.device_class = byte(r, o, path, "deviceClass");
  s.device_subclass = byte(r, o, path, "deviceSubclass");
  s.device_protocol = byte(r, o, path, "deviceProtocol");
  s.interface_class = byte(r, o, path, "interfaceClass");
  s.interface_subclass = byte(r, o, path, "interfaceSubclass");
  s.interface_protocol = byte(r, o, path, "interfaceProtocol");
  s.driver_path = pattern(r, o, path, "driverPath");
  if (auto it = o.find("removable"); it != o.end()) {
    if (it->is_array() && std::ranges::all_of(*it, [](const json& v) { return v.is_string(); })) {
      s.removable_kind = UsbSelector::Removable::List;
      for (const auto& v : *it) {
        auto value = to_lower(v.get<std::string>());
        if (value != "fixed" && value != "removable" && value != "unknown")
          r.warnings.push_back(JsonReader::join(path, "removable") + ": \"" + value +
                               "\" is none of fixed, removable, unknown; it never matches");
        s.removable.push_back(value);
      }
    } else {
      s.removable_kind = UsbSelector::Removable::NotAList;  // the reference: such an entry never matches
      r.warnings.push_back(JsonReader::join(path, "removable") + ": not a list of strings; the entry never matches");
    }
  }
  bool criteria = (s.vendor_id && s.product_id) || s.vendor_name || s.product_name || (s.bus && (s.root_port || s.port_path)) ||
                  s.device_class || s.interface_class || s.driver_path;
  if (!criteria) r.warnings.push_back(path + ": no criterion that can match; the entry never matches");
  return s;
}

std::vector<UsbSelector> usb_selectors(JsonReader& r, const json& o, const std::string& path, const char* key) {
  std::vector<UsbSelector> out;
  if (auto* list = r.list(o, path, key))
    for (size_t i = 0; i < list->size(); ++i) out.push_back(usb_selector(r, (*list)[i], JsonReader::index(JsonReader::join(path, key), i)));
  return out;
}

std::vector<std::string> strings(JsonReader& r, const json& o, const std::string& path, const char* key, const char* what) {
  std::vector<std::string> out;
  if (auto* list = r.list(o, path, key)) {
    for (size_t i = 0; i < list->size(); ++i) {
      if ((*list)[i].is_string()) out.push_back((*list)[i]);
      else r.expected(JsonReader::index(JsonReader::join(path, key), i), what, (*list)[i]);
    }
  }
  return out;
}

std::vector<std::string> vm_names(JsonReader& r, const json& o, const std::string& path, const char* key) {
  return strings(r, o, path, key, "a VM name");
}

UsbRuleGroup usb_group(JsonReader& r, const json& o, const std::string& path) {
  UsbRuleGroup g;
  r.warn_unknown_keys(o, path, {"description", "disable", "enable", "targetVm", "allowedVms", "allow", "deny",
                                "skipOnSuspend", "tag"});
  g.enabled = !is_disabled(o, r, path);
  g.description = description(r, o, path);
  g.target_vm = r.string(o, path, "targetVm");
  g.allowed_vms = vm_names(r, o, path, "allowedVms");
  if (g.target_vm && g.target_vm->empty()) g.target_vm.reset();
  if (!g.target_vm && g.allowed_vms.empty())
    r.warnings.push_back(path + ": neither targetVm nor allowedVms; a device it matches goes on to the next group");
  if (g.target_vm && !g.allowed_vms.empty())
    r.warnings.push_back(path + ": both targetVm and allowedVms; targetVm wins");
  g.allow = usb_selectors(r, o, path, "allow");
  g.deny = usb_selectors(r, o, path, "deny");
  g.skip_on_suspend = r.boolean(o, path, "skipOnSuspend").value_or(false);
  g.tag = r.string(o, path, "tag");
  return g;
}

PciSelector pci_selector(JsonReader& r, const json& o, const std::string& path) {
  PciSelector s;
  if (!o.is_object()) {
    r.expected(path, "an object", o);
    return s;
  }
  r.warn_unknown_keys(o, path, {"description", "disable", "enable", "address", "vendorId", "deviceId", "deviceClass",
                                "deviceSubclass", "deviceProgIf"});
  s.enabled = !is_disabled(o, r, path);
  s.description = description(r, o, path);
  if (auto a = r.string(o, path, "address")) s.address = to_lower(*a);
  s.vendor_id = pci_id(r, o, path, "vendorId");
  s.device_id = pci_id(r, o, path, "deviceId");
  if (s.vendor_id.has_value() != s.device_id.has_value())
    r.warnings.push_back(path + ": vendorId and deviceId only match together; this pair never matches");
  s.device_class = byte(r, o, path, "deviceClass");
  s.device_subclass = byte(r, o, path, "deviceSubclass");
  s.device_prog_if = byte(r, o, path, "deviceProgIf");
  if (!s.address && !(s.vendor_id && s.device_id) && !s.device_class)
    r.warnings.push_back(path + ": no criterion that can match; the entry never matches");
  return s;
}

PciRuleGroup pci_group(JsonReader& r, const json& o, const std::string& path) {
  PciRuleGroup g;
  r.warn_unknown_keys(o, path, {"description", "disable", "enable", "targetVm", "allow", "deny", "tag", "skipOnSuspend",
                                "pciIommuAddAll", "pciIommuSkipIfShared", "autoOvmf", "qemuUseRootBus", "crosvmUseRootBus",
                                "restoreHostDriver"});
  g.enabled = !is_disabled(o, r, path);
  g.description = description(r, o, path);
  g.target_vm = r.string(o, path, "targetVm");
  if (g.target_vm && g.target_vm->empty()) g.target_vm.reset();
  if (!g.target_vm) r.warnings.push_back(path + ": no targetVm; a device it matches goes on to the next group");
  for (const char* key : {"allow", "deny"}) {
    if (auto* list = r.list(o, path, key))
      for (size_t i = 0; i < list->size(); ++i)
        (std::string(key) == "allow" ? g.allow : g.deny)
            .push_back(pci_selector(r, (*list)[i], JsonReader::index(JsonReader::join(path, key), i)));
  }
  g.tag = r.string(o, path, "tag");
  g.skip_on_suspend = r.boolean(o, path, "skipOnSuspend").value_or(false);
  g.iommu_add_all = r.boolean(o, path, "pciIommuAddAll").value_or(false);
  g.iommu_skip_if_shared = r.boolean(o, path, "pciIommuSkipIfShared").value_or(false);
  g.auto_ovmf = r.boolean(o, path, "autoOvmf").value_or(false);
  g.qemu_use_root_bus = r.boolean(o, path, "qemuUseRootBus").value_or(false);
  g.crosvm_use_root_bus = r.boolean(o, path, "crosvmUseRootBus").value_or(false);
  g.restore_host_driver = r.boolean(o, path, "restoreHostDriver").value_or(true);
  return g;
}

EvdevRuleGroup evdev_group(JsonReader& r, const json& o, const std::string& path) {
  EvdevRuleGroup g;
  r.warn_unknown_keys(o, path, {"description", "disable", "enable", "targetVm", "allow", "deny", "tag"});
  g.enabled = !is_disabled(o, r, path);
  g.description = description(r, o, path);
  g.target_vm = r.string(o, path, "targetVm");
  if (!g.target_vm) r.warnings.push_back(path + ": no targetVm; a device it matches goes on to the next group");
  g.tag = r.string(o, path, "tag");
  for (const char* key : {"allow", "deny"}) {
    auto* list = r.list(o, path, key);
    if (!list) continue;
    for (size_t i = 0; i < list->size(); ++i) {
      auto item = JsonReader::index(JsonReader::join(path, key), i);
      const auto& e = (*list)[i];
      if (!e.is_object()) {
        r.expected(item, "an object", e);
        continue;
      }
      r.warn_unknown_keys(e, item, {"description", "disable", "enable", "name", "pathTag", "property", "value"});
      EvdevSelector s;
      s.enabled = !is_disabled(e, r, item);
      s.name = pattern(r, e, item, "name");
      s.path_tag = pattern(r, e, item, "pathTag");
      s.property = r.string(e, item, "property");
      s.value = r.string(e, item, "value");
      description(r, e, item);
      (std::string(key) == "allow" ? g.allow : g.deny).push_back(std::move(s));
    }
  }
  return g;
}

AcpiRuleGroup acpi_group(JsonReader& r, const json& o, const std::string& path) {
  AcpiRuleGroup g;
  r.warn_unknown_keys(o, path, {"description", "disable", "enable", "targetVm", "allow"});
  g.enabled = !is_disabled(o, r, path);
  g.description = description(r, o, path);
  g.target_vm = r.string(o, path, "targetVm");
  if (!g.target_vm) r.warnings.push_back(path + ": no targetVm; its tables are never used");
  if (auto* list = r.list(o, path, "allow")) {
    for (size_t i = 0; i < list->size(); ++i) {
      auto item = JsonReader::index(JsonReader::join(path, "allow"), i);
      const auto& e = (*list)[i];
      if (!e.is_object()) {
        r.expected(item, "an object", e);
        continue;
      }
      r.warn_unknown_keys(e, item, {"description", "disable", "enable", "acpiTable", "setUser", "setGroup"});
      AcpiTable t;
      t.enabled = !is_disabled(e, r, item);
      t.acpi_table = r.string(e, item, "acpiTable").value_or("");
      if (t.acpi_table.empty()) r.error(JsonReader::join(item, "acpiTable"), "missing");
      t.set_user = r.string(e, item, "setUser");
      t.set_group = r.string(e, item, "setGroup");
      description(r, e, item);
      g.tables.push_back(std::move(t));
    }
  }
  return g;
}

std::vector<Principal> principals(JsonReader& r, const json& o, const std::string& path, const char* key) {
  std::vector<Principal> out;
  auto* list = r.list(o, path, key);
  if (!list) return out;
  for (size_t i = 0; i < list->size(); ++i) {
    const auto& v = (*list)[i];
    if (v.is_string() && !v.get<std::string>().empty()) out.push_back({v.get<std::string>(), std::nullopt});
    else if (v.is_number_unsigned() && v.get<unsigned long>() < 0xFFFFFFFFul) out.push_back({"", v.get<unsigned>()});
    else r.expected(JsonReader::index(JsonReader::join(path, key), i), "a name or a numeric id", v);
  }
  return out;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

// An IPv4 or IPv6 address, or a network in CIDR notation.
bool is_address_or_network(const std::string& text) {
  auto slash = text.find('/');
  auto address = text.substr(0, slash);
  unsigned char bytes[16];
  int bits = ::inet_pton(AF_INET, address.c_str(), bytes) == 1 ? 32 : ::inet_pton(AF_INET6, address.c_str(), bytes) == 1 ? 128 : 0;
  if (!bits) return false;
  if (slash == std::string::npos) return true;
  auto prefix = text.substr(slash + 1);
  return !prefix.empty() && prefix.size() <= 3 && prefix.find_first_not_of("0123456789") == std::string::npos &&
         std::stoi(prefix) <= bits;
}

std::vector<ApiPermission> permissions(JsonReader& r, const json& list, const std::string& path) {
  std::vector<ApiPermission> out;
  for (size_t i = 0; i < list.size(); ++i) {
    auto p = JsonReader::index(path, i);
    const auto& e = list[i];
    if (!e.is_object()) {
      r.expected(p, "an object", e);
      continue;
    }
    r.warn_unknown_keys(e, p, {"users", "groups", "cids", "addresses", "vm", "actions", "vms"});
    ApiPermission entry;
    entry.users = principals(r, e, p, "users");
    entry.groups = principals(r, e, p, "groups");
    if (auto* cids = r.list(e, p, "cids")) {
      for (size_t j = 0; j < cids->size(); ++j) {
        const auto& v = (*cids)[j];
        if (v.is_number_unsigned() && v.get<unsigned long>() < 0xFFFFFFFFul) entry.cids.push_back(v.get<unsigned>());
        else r.expected(JsonReader::index(p + ".cids", j), "a CID", v);
      }
    }
    for (auto& a : strings(r, e, p, "addresses", "an IP address or a network such as \"10.0.0.0/8\"")) {
      if (is_address_or_network(a)) entry.addresses.push_back(std::move(a));
      else r.expected(p + ".addresses", "an IP address or a network such as \"10.0.0.0/8\"", a);
    }
    entry.vm = r.string(e, p, "vm");
    if (!e.contains("actions")) r.error(p, "actions is required (a list of " + join_names(kApiActions) + ", or \"*\")");
    for (auto& a : strings(r, e, p, "actions", "an action name")) {
      if (a == "*" || std::ranges::find(kApiActions, a) != kApiActions.end()) entry.actions.push_back(std::move(a));
      else r.expected(p + ".actions", "one of " + join_names(kApiActions) + " or \"*\"", a);
    }
    if (e.contains("vms")) entry.vms = vm_names(r, e, p, "vms");
    out.push_back(std::move(entry));
  }
  return out;
}

ApiConfig api_config(JsonReader& r, const json& api, const std::string& p) {
  r.warn_unknown_keys(api, p, {"enable", "host", "port", "transports", "allowedCids", "unixSocket", "unixSocketUser",
                               "unixSocketGroup", "unixSocketMode", "allowedUsers", "allowedGroups", "maxLineBytes",
                               "maxClients", "sendQueueBytes", "sendTimeoutMs", "firstRequestTimeoutMs", "permissions"});
  ApiConfig c;
  c.enable = r.boolean(api, p, "enable").value_or(true);
  c.host = r.string(api, p, "host").value_or(c.host);
  c.port = static_cast<int>(r.integer(api, p, "port", 1, 65535).value_or(c.port));
  if (auto* list = r.list(api, p, "transports")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const auto& t = (*list)[i];
      if (!t.is_string() || (t != "tcp" && t != "vsock" && t != "unix"))
        r.expected(JsonReader::index(p + ".transports", i), "\"tcp\", \"vsock\" or \"unix\"", t);
      else if (!c.has_transport(t)) c.transports.push_back(t);
    }
  }
  if (auto* list = r.list(api, p, "allowedCids")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const auto& v = (*list)[i];
      if (v.is_number_unsigned() && v.get<unsigned long>() < 0xFFFFFFFFul) c.allowed_cids.push_back(v.get<unsigned>());
      else r.expected(JsonReader::index(p + ".allowedCids", i), "a CID", v);
    }
  }
  if (auto path = r.string(api, p, "unixSocket")) {
    if (path->empty() || path->size() > 107) r.expected(p + ".unixSocket", "a path of 1-107 bytes", *path);
    else c.unix_socket = *path;
  }
  c.unix_socket_user = r.string(api, p, "unixSocketUser").value_or("");
  c.unix_socket_group = r.string(api, p, "unixSocketGroup").value_or("");
  if (auto text = r.string(api, p, "unixSocketMode")) {
    char* end = nullptr;
    unsigned long mode = std::strtoul(text->c_str(), &end, 8);
    if (text->empty() || *end != '\0' || mode > 07777) r.expected(p + ".unixSocketMode", "an octal mode such as \"0660\"", *text);
    else c.unix_socket_mode = static_cast<unsigned>(mode);
  }
  c.allowed_users = principals(r, api, p, "allowedUsers");
  c.allowed_groups = principals(r, api, p, "allowedGroups");
  if (auto* list = r.list(api, p, "permissions")) c.permissions = permissions(r, *list, p + ".permissions");
  c.max_line_bytes = r.integer(api, p, "maxLineBytes", 256, 64L << 20).value_or(c.max_line_bytes);
  c.max_clients = r.integer(api, p, "maxClients", 1, 65536).value_or(c.max_clients);
  c.send_queue_bytes = r.integer(api, p, "sendQueueBytes", 4096, 1L << 30).value_or(c.send_queue_bytes);
  c.send_timeout_ms = static_cast<int>(r.integer(api, p, "sendTimeoutMs", 100, 3'600'000).value_or(c.send_timeout_ms));
  c.first_request_timeout_ms =
      static_cast<int>(r.integer(api, p, "firstRequestTimeoutMs", 100, 3'600'000).value_or(c.first_request_timeout_ms));
  return c;
}

ThunderConfig thunder_config(JsonReader& r, const json& t, const std::string& p) {
  r.warn_unknown_keys(t, p, {"enable", "host", "port", "callsign", "maxClients", "maxMessageBytes", "sendQueueBytes", "allowedOrigins",
                             "allowedHosts", "token", "maxRegistrations", "maxWebSocketsPerPeer"});
  ThunderConfig c;
  c.enable = r.boolean(t, p, "enable").value_or(true);  // the section is ours: present means wanted
  c.host = r.string(t, p, "host").value_or(c.host);
  c.port = static_cast<int>(r.integer(t, p, "port", 1, 65535).value_or(c.port));
  if (auto callsign = r.string(t, p, "callsign")) {
    if (callsign->empty() || callsign->find_first_of(" /") != std::string::npos) r.expected(p + ".callsign", "a callsign without spaces or slashes", *callsign);
    else c.callsign = *callsign;
  }
  c.max_clients = r.integer(t, p, "maxClients", 1, 65536).value_or(c.max_clients);
  c.max_message_bytes = r.integer(t, p, "maxMessageBytes", 256, 64L << 20).value_or(c.max_message_bytes);
  c.send_queue_bytes = r.integer(t, p, "sendQueueBytes", 4096, 1L << 30).value_or(c.send_queue_bytes);
  c.allowed_origins = strings(r, t, p, "allowedOrigins", "an origin such as \"https://app.example\"");
  c.allowed_hosts = strings(r, t, p, "allowedHosts", "a host name");
  c.token = r.string(t, p, "token").value_or("");
  c.max_registrations = r.integer(t, p, "maxRegistrations", 1, 1 << 20).value_or(c.max_registrations);
  c.max_websockets_per_peer = r.integer(t, p, "maxWebSocketsPerPeer", 1, 65536).value_or(c.max_websockets_per_peer);
  return c;
}

GeneralConfig general_config(JsonReader& r, const json& g) {
  const std::string p = "general";
  r.warn_unknown_keys(g, p, {"persistency", "statePath", "modprobe", "modinfo", "crosvm", "ovmfCode", "ovmfVars", "api", "thunder"});
  GeneralConfig c;
  c.persistency = r.boolean(g, p, "persistency").value_or(true);
  c.state_path = r.string(g, p, "statePath").value_or(c.state_path);
  c.modprobe = r.string(g, p, "modprobe").value_or(c.modprobe);
  c.modinfo = r.string(g, p, "modinfo").value_or(c.modinfo);
  c.crosvm = r.string(g, p, "crosvm").value_or(c.crosvm);
  c.ovmf_code = r.string(g, p, "ovmfCode");
  c.ovmf_vars = r.string(g, p, "ovmfVars");
  if (auto* api = r.object(g, p, "api")) c.api = api_config(r, *api, "general.api");
  if (auto* thunder = r.object(g, p, "thunder")) c.thunder = thunder_config(r, *thunder, "general.thunder");
  return c;
}

std::vector<VmConfig> vms(JsonReader& r, const json& root) {
  std::vector<VmConfig> out;
  auto* list = r.list(root, "", "vms");
  if (!list) return out;
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    auto path = JsonReader::index("vms", i);
    const auto& o = (*list)[i];
    if (!o.is_object()) {
      r.expected(path, "an object", o);
      continue;
    }
    r.warn_unknown_keys(o, path, {"name", "type", "socket"});
    VmConfig vm{r.string(o, path, "name").value_or(""), r.string(o, path, "type").value_or(""),
                r.string(o, path, "socket").value_or("")};
    if (vm.name.empty()) r.error(path + ".name", "missing");
    else if (!names.insert(vm.name).second) r.error(path + ".name", "duplicate VM name \"" + vm.name + "\"");
    if (vm.type != "qemu" && vm.type != "crosvm" && vm.type != "cloud-hypervisor")
      r.expected(path + ".type", "\"qemu\", \"crosvm\" or \"cloud-hypervisor\"", o.value("type", json(nullptr)));
    if (vm.socket.empty() && vm.type != "cloud-hypervisor") r.error(path + ".socket", "missing");
    else if (vm.socket.size() > 107) r.expected(path + ".socket", "a socket path of at most 107 bytes", vm.socket);
    out.push_back(std::move(vm));
  }
  return out;
}

template <class Group, class Parse>
std::vector<Group> groups(JsonReader& r, const json& root, const char* key, Parse parse) {
  std::vector<Group> out;
  auto* list = r.list(root, "", key);
  if (!list) return out;
  for (size_t i = 0; i < list->size(); ++i) {
    auto path = JsonReader::index(key, i);
    if (!(*list)[i].is_object()) r.expected(path, "an object", (*list)[i]);
    else out.push_back(parse(r, (*list)[i], path));
  }
  return out;
}

// A VM a rule names should be in `vms`. Not an error, as with the reference: one config serves
// images where some VMs are disabled (Ghaf's chrome-vm rule names business-vm); such a device
// stays on the host and attaching it fails with "VM X is not found in the config file".
void check_vm_names(JsonReader& r, const Config& c) {
  auto check = [&](const std::string& path, const std::string& name) {
    if (!c.find_vm(name)) r.warnings.push_back(path + ": VM \"" + name + "\" is not in vms; devices for it stay on the host");
  };
  auto check_usb = [&](const std::string& path, const std::string& name) {  // cloud-hypervisor has no USB hot-plug
    check(path, name);
    if (const auto* vm = c.find_vm(name); vm && vm->type == "cloud-hypervisor")
      r.warnings.push_back(path + ": VM \"" + name + "\" is a cloud-hypervisor VM, which cannot take USB devices; they stay on the host");
  };
  for (size_t i = 0; i < c.usb.size(); ++i) {
    if (c.usb[i].target_vm) check_usb(JsonReader::index("usbPassthrough", i) + ".targetVm", *c.usb[i].target_vm);
    for (size_t j = 0; j < c.usb[i].allowed_vms.size(); ++j)
      check_usb(JsonReader::index(JsonReader::index("usbPassthrough", i) + ".allowedVms", j), c.usb[i].allowed_vms[j]);
  }
  for (size_t i = 0; i < c.pci.size(); ++i)
    if (c.pci[i].target_vm) check(JsonReader::index("pciPassthrough", i) + ".targetVm", *c.pci[i].target_vm);
  for (size_t i = 0; i < c.evdev.size(); ++i)
    if (c.evdev[i].target_vm) check(JsonReader::index("evdevPassthrough", i) + ".targetVm", *c.evdev[i].target_vm);
  for (size_t i = 0; i < c.acpi.size(); ++i)
    if (c.acpi[i].target_vm) check(JsonReader::index("acpiPassthrough", i) + ".targetVm", *c.acpi[i].target_vm);
  const auto& permissions = c.general.api.permissions;
  for (size_t i = 0; permissions && i < permissions->size(); ++i) {
    auto path = JsonReader::index("general.api.permissions", i);
    if ((*permissions)[i].vm) check(path + ".vm", *(*permissions)[i].vm);
    for (const auto& vm : (*permissions)[i].vms.value_or(std::vector<std::string>{}))
      if (vm != "*") check(path + ".vms", vm);
  }
}

}  // namespace

bool ApiConfig::has_transport(const std::string& t) const {
  return std::ranges::find(transports, t) != transports.end();
}

const VmConfig* Config::find_vm(const std::string& name) const {
  auto it = std::ranges::find(vms, name, &VmConfig::name);
  return it == vms.end() ? nullptr : &*it;
}

Config parse_config(const json& root, const std::string& source) {
  if (!root.is_object()) throw ConfigError("(top level): expected an object, got " + root.dump(-1, ' ', false, json::error_handler_t::replace));
  JsonReader r;
  r.warn_unknown_keys(root, "", {"usbPassthrough", "pciPassthrough", "evdevPassthrough", "acpiPassthrough", "vms",
                                 "usbAuthorization", "general"});
  Config c;
  c.source = source;
  c.vms = vms(r, root);
  c.usb = groups<UsbRuleGroup>(r, root, "usbPassthrough", usb_group);
  c.pci = groups<PciRuleGroup>(r, root, "pciPassthrough", pci_group);
  c.evdev = groups<EvdevRuleGroup>(r, root, "evdevPassthrough", evdev_group);
  c.acpi = groups<AcpiRuleGroup>(r, root, "acpiPassthrough", acpi_group);
  if (auto* auth = r.object(root, "", "usbAuthorization")) {
    r.warn_unknown_keys(*auth, "usbAuthorization", {"enable", "deauthorizeUnmatched", "hostAllow"});
    c.usb_authorization.enable = r.boolean(*auth, "usbAuthorization", "enable").value_or(false);
    c.usb_authorization.deauthorize_unmatched = r.boolean(*auth, "usbAuthorization", "deauthorizeUnmatched").value_or(false);
    c.usb_authorization.host_allow = usb_selectors(r, *auth, "usbAuthorization", "hostAllow");
  }
  if (auto* general = r.object(root, "", "general")) c.general = general_config(r, *general);
  check_vm_names(r, c);
  c.warnings = std::move(r.warnings);
  if (!r.errors.empty()) {
    std::string all;
    for (const auto& e : r.errors) all += (all.empty() ? "" : "\n") + e;
    throw ConfigError(all);
  }
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot be read");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw ConfigError(path + ": invalid JSON: " + e.what());
  }
  return parse_config(root, path);
}

Config builtin_config() {
  Config c;
  c.source = "built-in default";
  c.general.api.transports = {"unix"};
  return c;
}

}  // namespace vhp
