#include "device/pci_device.h"

#include "device/json_util.h"

namespace vhp {

nlohmann::ordered_json to_json(const PciDevice& d) {
  return {
      {"address", d.address},
      {"driver", optional_string(d.driver)},
      {"vendor_id", d.vendor_id},
      {"device_id", d.device_id},
      {"vid", d.vid},
      {"did", d.did},
      {"vendor_name", optional_string(d.vendor_name)},
      {"device_name", optional_string(d.device_name)},
      {"pci_class", d.pci_class},
      {"pci_subclass", d.pci_subclass},
      {"pci_prog_if", d.pci_prog_if},
      {"pci_subsystem_vendor_id", optional_string(d.subsystem_vendor_id)},
      {"pci_subsystem_id", optional_string(d.subsystem_id)},
  };
}

}  // namespace vhp
