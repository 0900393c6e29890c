#include "policy/pci_rules.h"

#include "device/parse.h"

namespace vhp {

bool PciSelector::matches(const PciDevice& d) const {
  if (!enabled) return false;
  if (address && to_lower(d.address) == *address) return true;
  if (vendor_id && device_id && *vendor_id != 0 && *device_id != 0 && d.vendor_id == *vendor_id && d.device_id == *device_id)
    return true;
  return device_class != 0 && device_class == d.pci_class && (device_subclass == 0 || device_subclass == d.pci_subclass) &&
         (device_prog_if == 0 || device_prog_if == d.pci_prog_if);
}

}  // namespace vhp
