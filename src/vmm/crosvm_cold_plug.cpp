// crosvm's start-up arguments, as ghaf-device-manager builds them (the reference's crosvm renderer
// lacks hot-plug isolation, removable devices and ACPI tables): --vfio-isolate-hotplug when the VM
// has PCI rules, --vfio per device (removable unless crosvmUseRootBus), --acpi-table, --input.
#include <spdlog/spdlog.h>

#include "vmm/cold_plug_args.h"

namespace vhp {

std::vector<std::string> crosvm_cold_plug_args(const ColdPlugPlan& plan) {
  std::vector<std::string> args;
  if (plan.needs_ovmf) spdlog::warn("vmm args: autoOvmf does not apply to crosvm; no firmware arguments");
  if (plan.has_pci_rules) args.emplace_back("--vfio-isolate-hotplug");
  for (const auto& d : plan.pci)
    args.insert(args.end(), {"--vfio", "/sys/bus/pci/devices/" + d.address + ",iommu=viommu" +
                                           (d.crosvm_use_root_bus ? "" : ",removable=true")});
  for (const auto& table : plan.acpi_tables) args.insert(args.end(), {"--acpi-table", table});
  for (const auto& node : plan.evdev_nodes) args.insert(args.end(), {"--input", "evdev[path=" + node + "]"});
  return args;
}

}  // namespace vhp
