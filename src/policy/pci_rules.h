#pragma once
// PCI rule groups (`pciPassthrough`) and the reference's matching semantics.
#include <optional>
#include <string>
#include <vector>

#include "device/pci_device.h"

namespace vhp {

// Criteria OR-ed in this order: address, vendorId+deviceId, deviceClass[+subclass, prog-if].
struct PciSelector {
  bool enabled = true;
  std::string description;
  std::optional<std::string> address;  // lowercase
  std::optional<int> vendor_id, device_id;  // from hex strings, compared as numbers; both needed
  int device_class = 0, device_subclass = 0, device_prog_if = 0;  // 0: absent / wildcard

  bool matches(const PciDevice& d) const;
};

struct PciRuleGroup {
  bool enabled = true;
  std::string description;
  std::optional<std::string> target_vm;  // PCI has no allowedVms
  std::vector<PciSelector> allow, deny;
  bool skip_on_suspend = false, iommu_add_all = false, iommu_skip_if_shared = false, auto_ovmf = false,
       qemu_use_root_bus = false, crosvm_use_root_bus = false;
  bool restore_host_driver = true;  // ours: detach gives the device back to the driver it had
  std::optional<std::string> tag;
};

}  // namespace vhp
