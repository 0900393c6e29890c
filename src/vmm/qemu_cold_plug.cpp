// QEMU's start-up arguments, exactly as the reference's get_vmm_args builds them: the OVMF pflash
// pair first, then vfio-pci devices, ACPI tables, virtio-input-host devices.
#include "vmm/cold_plug_args.h"
#include "vmm/vm.h"

namespace vhp {

std::vector<std::string> qemu_cold_plug_args(const ColdPlugPlan& plan) {
  std::vector<std::string> args;
  if (plan.needs_ovmf) {
    if (plan.ovmf_code.value_or("").empty()) throw VmError("General ovmfCode is not defined");  // Python: `if not ovmf_code`
    if (plan.ovmf_vars.value_or("").empty()) throw VmError("General ovmfVars is not defined");
    args.insert(args.end(), {"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + *plan.ovmf_code, "-drive",
                             "if=pflash,format=raw,unit=1,readonly=on,file=" + *plan.ovmf_vars});
  }
  int n = plan.qemu_bus_start_index;
  for (const auto& d : plan.pci) {
    std::string device = "vfio-pci,host=" + d.address + ",multifunction=on,id=vhp-pci-" + std::to_string(n);
    // The reference tests the prefix for truth: an empty one means no bus either.
    if (plan.qemu_bus_prefix && !plan.qemu_bus_prefix->empty() && !d.qemu_use_root_bus)
      device += ",bus=" + *plan.qemu_bus_prefix + std::to_string(n);
    args.insert(args.end(), {"-device", device});
    ++n;
  }
  for (const auto& table : plan.acpi_tables) args.insert(args.end(), {"-acpitable", "file=" + table});
  n = plan.qemu_bus_start_index;  // the reference numbers input devices from the start index again
  for (const auto& node : plan.evdev_nodes)
    args.insert(args.end(), {"-device", "virtio-input-host-pci,evdev=" + node + ",id=vhp-evdev-" + std::to_string(n++)});
  return args;
}

}  // namespace vhp
