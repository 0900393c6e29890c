#pragma once
// Which VM may have a device, decided by the config's rule groups exactly as the reference does:
// groups in order, disabled ones skipped, a deny clears a match only in its own group, the first
// group with a match wins, hubs never pass through.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/config.h"

namespace vhp {

struct UsbMatch {
  std::optional<std::string> target_vm;  // set: the device goes there
  std::vector<std::string> allowed_vms;  // else: the user picks one of these
  std::optional<std::string> tag;
  bool skip_on_suspend = false;
  std::string group;                     // the group's description, for logs

  // What lists show as allowed_vms: [targetVm], or allowedVms.
  std::vector<std::string> vms() const { return target_vm ? std::vector<std::string>{*target_vm} : allowed_vms; }
  bool allows(const std::string& vm) const {
    return target_vm ? *target_vm == vm : std::find(allowed_vms.begin(), allowed_vms.end(), vm) != allowed_vms.end();
  }
};

struct PciMatch {
  std::string target_vm;
  std::optional<std::string> tag;
  bool skip_on_suspend = false, iommu_add_all = false, iommu_skip_if_shared = false, auto_ovmf = false,
       qemu_use_root_bus = false, crosvm_use_root_bus = false;
  bool restore_host_driver = true;
  int order = 0;  // allow entries looked at before and including the match: the reference's attach order
  std::string group;

  // pciIommuSkipIfShared: a device sharing its IOMMU group is neither attached nor listed.
  bool skips(const PciDevice& d) const { return iommu_skip_if_shared && d.iommu_group_members.size() > 1; }
};

struct EvdevMatch {
  std::string target_vm;
  std::optional<std::string> tag;
  std::string group;
};

class Policy {
 public:
  Policy(Config config, std::shared_ptr<ModuleResolver> modules);

  const Config& config() const { return config_; }
  std::optional<UsbMatch> match_usb(const UsbDevice& d) const;
  std::optional<PciMatch> match_pci(const PciDevice& d) const;
  // usbAuthorization.hostAllow: the host may use this device (authorized even though no VM has it).
  bool usb_host_allowed(const UsbDevice& d) const;
  // As the reference: the first enabled group whose allow matches and whose deny does not, with a targetVm.
  std::optional<EvdevMatch> match_evdev(const EvdevDevice& d) const;
  // The enabled acpiPassthrough tables for `vm`, in config order.
  std::vector<AcpiTable> acpi_tables(const std::string& vm) const;

 private:
  Config config_;
  std::shared_ptr<ModuleResolver> modules_;
};

}  // namespace vhp
