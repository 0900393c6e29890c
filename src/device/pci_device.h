#pragma once
// A PCI device as captured when it appeared.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp {

struct PciDevice {
  std::string sys_path;
  std::string address;               // 0000:00:14.3
  std::optional<std::string> driver; // bound driver; null when unbound
  int vendor_id = 0, device_id = 0;
  std::string vid, did;              // hex as udev's PCI_ID gives them (uppercase)
  std::optional<std::string> vendor_name, device_name;  // hwdb names
  int pci_class = 0, pci_subclass = 0, pci_prog_if = 0;  // prog-if is the whole byte
  std::optional<std::string> subsystem_vendor_id, subsystem_id;  // hex strings as in PCI_SUBSYS_ID
  std::optional<int> iommu_group;
  std::vector<std::string> iommu_group_members;  // addresses, sorted; includes this device
  bool operator==(const PciDevice&) const = default;
};

// The reference's PCI object, key order and types included: address, driver, vendor_id, device_id,
// vid, did, vendor_name, device_name, pci_class, pci_subclass, pci_prog_if,
// pci_subsystem_vendor_id, pci_subsystem_id.
nlohmann::ordered_json to_json(const PciDevice& d);

}  // namespace vhp
