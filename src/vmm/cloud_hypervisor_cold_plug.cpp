// cloud-hypervisor's start-up arguments, as the reference builds them: --device per PCI device. It
// has no firmware pair, ACPI table or evdev option: the reference fails those, and so do we.
#include <spdlog/spdlog.h>

#include "vmm/cold_plug_args.h"
#include "vmm/vm.h"

namespace vhp {

std::vector<std::string> cloud_hypervisor_cold_plug_args(const ColdPlugPlan& plan) {
  auto unsupported = [](const char* what) {
    spdlog::error("Cloud Hypervisor doesn't support {} passthrough", what);
    return VmError("Unsupported vm type: cloud-hypervisor");
  };
  if (plan.needs_ovmf) throw unsupported("OVMF");
  std::vector<std::string> args;
  for (const auto& d : plan.pci) args.insert(args.end(), {"--device", "path=/sys/bus/pci/devices/" + d.address});
  if (!plan.acpi_tables.empty()) throw unsupported("ACPI table");
  if (!plan.evdev_nodes.empty()) throw unsupported("evdev");
  return args;
}

}  // namespace vhp
