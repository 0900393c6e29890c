#pragma once
// A VM's start-up arguments for the devices it gets at boot (the reference's `vmm_args`), one
// renderer per hypervisor type. The manager decides what goes in (the plan); the renderers only
// spell it in their hypervisor's command-line language.
#include <optional>
#include <string>
#include <vector>

namespace vhp {

struct ColdPlugPci {
  std::string address;  // 0000:01:00.0, already bound to vfio-pci
  bool qemu_use_root_bus = false, crosvm_use_root_bus = false;
};

struct ColdPlugPlan {
  bool has_pci_rules = false;  // some enabled pciPassthrough group targets the VM (crosvm: hot-plug isolation)
  std::vector<ColdPlugPci> pci;           // in the reference's order: rule order, then address
  bool needs_ovmf = false;                // an autoOvmf rule matched an NVIDIA display device
  std::optional<std::string> ovmf_code, ovmf_vars;
  std::vector<std::string> acpi_tables;   // files present on the host
  std::vector<std::string> evdev_nodes;   // /dev/input/eventN
  std::optional<std::string> qemu_bus_prefix;
  int qemu_bus_start_index = 0;
};

// The arguments for a VM of `vm_type`; throws VmError with the reference's texts for what the type
// cannot do ("Unsupported vm type: …", "General ovmfCode is not defined").
std::vector<std::string> cold_plug_args(const std::string& vm_type, const ColdPlugPlan& plan);

// The renderers, one file each.
std::vector<std::string> qemu_cold_plug_args(const ColdPlugPlan& plan);
std::vector<std::string> crosvm_cold_plug_args(const ColdPlugPlan& plan);
std::vector<std::string> cloud_hypervisor_cold_plug_args(const ColdPlugPlan& plan);

}  // namespace vhp
