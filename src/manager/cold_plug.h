#pragma once
// vmm_args: what a VM gets on its command line at start (the reference's get_vmm_args): the PCI
// devices its rules send it (their IOMMU groups bound to vfio-pci first, as the VM opens them at
// start), the OVMF pair for an NVIDIA GPU of an autoOvmf rule, its ACPI tables (owned as the rules
// ask), its input devices; spelt for its hypervisor type by vmm/cold_plug_args.
#include <string>
#include <vector>

#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>

#include "manager/commands.h"
#include "manager/device_manager.h"
#include "manager/pci_passthrough.h"

namespace vhp {

class ColdPlug {
 public:
  ColdPlug(DeviceManager& manager, PciPassthrough& pci) : manager_(manager), pci_(pci) {}

  // The arguments, by the rules in force when the request came (a reload meanwhile does not mix in);
  // throws VmError with the reference's (or, for require_pci, ghaf-device-manager's) texts.
  boost::asio::awaitable<std::vector<std::string>> args(VmmArgs request);

 private:
  // The PCI devices the rules send to `vm`, as the reference orders them; pciIommuAddAll brings the
  // rest of each group along.
  std::vector<std::pair<PciDevice, PciMatch>> pci_devices(const Policy& policy, const std::string& vm) const;
  // require_pci: the VM has PCI rules, some device matches them, and every address they name is present.
  void check_required(const Policy& policy, const std::string& vm, bool any_device) const;
  // The VM's ACPI tables that exist, chowned as setUser/setGroup ask; a missing one or a failed chown is skipped.
  std::vector<std::string> acpi_tables(const Policy& policy, const std::string& vm) const;

  DeviceManager& manager_;
  PciPassthrough& pci_;
};

}  // namespace vhp
