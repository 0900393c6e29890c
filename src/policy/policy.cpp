#include "policy/policy.h"

#include <algorithm>

namespace vhp {

Policy::Policy(Config config, std::shared_ptr<ModuleResolver> modules)
    : config_(std::move(config)), modules_(std::move(modules)) {}

std::optional<UsbMatch> Policy::match_usb(const UsbDevice& d) const {
  if (d.is_hub) return std::nullopt;
  for (const auto& g : config_.usb) {
    if (!g.enabled || !g.matches(d, *modules_)) continue;
    if (!g.target_vm && g.allowed_vms.empty()) continue;  // the reference logs and tries the next group
    return UsbMatch{g.target_vm, g.target_vm ? std::vector<std::string>{} : g.allowed_vms, g.tag, g.skip_on_suspend,
                    g.description};
  }
  return std::nullopt;
}

std::optional<PciMatch> Policy::match_pci(const PciDevice& d) const {
  int order = 0;
  for (const auto& g : config_.pci) {
    if (!g.enabled) continue;
    bool found = false;
    for (const auto& s : g.allow) {  // counts every entry it looks at, up to the first match
      ++order;
      if (s.matches(d)) {
        found = true;
        break;
      }
    }
    if (found && std::ranges::any_of(g.deny, [&](const PciSelector& s) { return s.matches(d); })) found = false;
    if (!found || !g.target_vm) continue;
    return PciMatch{*g.target_vm, g.tag, g.skip_on_suspend, g.iommu_add_all, g.iommu_skip_if_shared, g.auto_ovmf,
                    g.qemu_use_root_bus, g.crosvm_use_root_bus, g.restore_host_driver, order, g.description};
  }
  return std::nullopt;
}

bool Policy::usb_host_allowed(const UsbDevice& d) const {
  return std::ranges::any_of(config_.usb_authorization.host_allow, [&](const UsbSelector& s) { return s.enabled && s.matches(d, *modules_); });
}

std::optional<EvdevMatch> Policy::match_evdev(const EvdevDevice& d) const {
  for (const auto& g : config_.evdev) {
    if (!g.enabled || !g.matches(d) || !g.target_vm) continue;  // no targetVm: the reference logs and tries the next
    return EvdevMatch{*g.target_vm, g.tag, g.description};
  }
  return std::nullopt;
}

std::vector<AcpiTable> Policy::acpi_tables(const std::string& vm) const {
  std::vector<AcpiTable> out;
  for (const auto& g : config_.acpi)
    if (g.enabled && g.target_vm == vm)
      for (const auto& t : g.tables)
        if (t.enabled) out.push_back(t);
  return out;
}

}  // namespace vhp
