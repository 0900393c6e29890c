#include "policy/usb_rules.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <re2/re2.h>

#include "device/parse.h"

namespace vhp {

Pattern::Pattern(std::string source) : source_(std::move(source)) {
  re2::RE2::Options options;
  options.set_case_sensitive(false);
  options.set_log_errors(false);
  options.set_max_mem(1 << 20);  // a bounded program: a pattern that needs more is refused
  auto regex = std::make_shared<const re2::RE2>(source_, options);
  if (!regex->ok()) throw std::invalid_argument(regex->error());
  regex_ = std::move(regex);
}

bool Pattern::matches(const std::string& text) const {
  return regex_->Match(text, 0, text.size(), re2::RE2::ANCHOR_START, nullptr, 0);
}

std::vector<InterfaceTriple> parse_interfaces(const std::optional<std::string>& interfaces) {
  std::vector<InterfaceTriple> out;
  if (!interfaces) return out;
  std::string_view rest = *interfaces;
  while (!rest.empty()) {
    auto colon = rest.find(':');
    auto item = rest.substr(0, colon);
    if (item.size() >= 6) {
      auto c = parse_number(item.substr(0, 2), 16), s = parse_number(item.substr(2, 2), 16),
           p = parse_number(item.substr(4, 2), 16);
      if (c && s && p) out.push_back({static_cast<int>(*c), static_cast<int>(*s), static_cast<int>(*p)});
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return out;
}

std::vector<std::string> usb_modaliases(const UsbDevice& d) {
  std::vector<UsbInterface> interfaces = d.interface_list;
  if (interfaces.empty()) {  // no descriptors read: udev's list, numbered in order
    for (const auto& t : parse_interfaces(d.interfaces))
      interfaces.push_back({static_cast<int>(interfaces.size()), t.cls, t.subclass, t.protocol});
  }
  if (interfaces.empty()) interfaces.push_back({});
  unsigned vid = static_cast<unsigned>(parse_number(d.vid, 16).value_or(0));
  unsigned pid = static_cast<unsigned>(parse_number(d.pid, 16).value_or(0));
  std::vector<std::string> out;
  for (const auto& i : interfaces) {
    char buf[96];  // the kernel's usb_modalias() of an interface
    std::snprintf(buf, sizeof buf, "usb:v%04Xp%04Xd%04Xdc%02Xdsc%02Xdp%02Xic%02Xisc%02Xip%02Xin%02X", vid, pid,
                  static_cast<unsigned>(d.bcd_device), static_cast<unsigned>(d.device_class),
                  static_cast<unsigned>(d.device_subclass), static_cast<unsigned>(d.device_protocol),
                  static_cast<unsigned>(i.interface_class), static_cast<unsigned>(i.interface_subclass),
                  static_cast<unsigned>(i.interface_protocol), static_cast<unsigned>(i.number));
    out.emplace_back(buf);
  }
  return out;
}

namespace {

// class, then subclass and protocol where 0 means "any" (the reference's truthiness).
bool class_matches(int rule_class, int rule_sub, int rule_proto, int cls, int sub, int proto) {
  return rule_class != 0 && rule_class == cls && (rule_sub == 0 || rule_sub == sub) &&
         (rule_proto == 0 || rule_proto == proto);
}

}  // namespace

bool UsbSelector::matches(const UsbDevice& d, ModuleResolver& modules) const {
  if (!enabled) return false;
  if (removable_kind == Removable::NotAList) return false;
  if (removable_kind == Removable::List && std::ranges::find(removable, to_lower(d.removable)) == removable.end())
    return false;

  if (vendor_id && product_id && to_lower(d.vid) == *vendor_id && to_lower(d.pid) == *product_id) return true;

  if ((vendor_name && vendor_name->matches(d.vendor_name.value_or(""))) ||
      (product_name && product_name->matches(d.product_name.value_or(""))))
    return true;

  if (bus && *bus == d.busnum) {
    if (root_port && d.root_port() != 0 && *root_port == d.root_port()) return true;
    if (port_path && *port_path == d.ports) return true;
  }

  if (class_matches(device_class, device_subclass, device_protocol, d.device_class, d.device_subclass, d.device_protocol))
    return true;

  bool has_valid_interface = false;
  for (const auto& i : parse_interfaces(d.interfaces)) {
    if (i.cls != 0 && i.cls != 0xFF) has_valid_interface = true;
    if (class_matches(interface_class, interface_subclass, interface_protocol, i.cls, i.subclass, i.protocol)) return true;
  }

  // Only for devices without a meaningful interface class (vendor-specific network adapters and the like).
  if (driver_path && !has_valid_interface) {
    for (const auto& alias : usb_modaliases(d))
      for (const auto& path : modules.module_paths(alias))
        if (driver_path->matches(path)) return true;
  }
  return false;
}

bool UsbRuleGroup::matches(const UsbDevice& d, ModuleResolver& modules) const {
  bool found = std::ranges::any_of(allow, [&](const UsbSelector& s) { return s.matches(d, modules); });
  return found && std::ranges::none_of(deny, [&](const UsbSelector& s) { return s.matches(d, modules); });
}

}  // namespace vhp
