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
                    g.qemu_use_root_bus, g.restore_host_driver, order, g.description};
  }
  return std::nullopt;
}

}  // namespace vhp
