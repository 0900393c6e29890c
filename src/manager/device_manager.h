#pragma once
// What the APIs see of the host's devices: the reference's list entries and its events.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "device/device_registry.h"
#include "policy/policy.h"

namespace vhp {

// The reference's usb_list / pci_list request filters.
struct ListFilter {
  std::optional<bool> disconnected;  // true: only devices the user detached; false: only the others
  std::optional<std::string> tag;    // only devices whose rule has this tag
};

class DeviceManager {
 public:
  using Notify = std::function<void(const nlohmann::ordered_json& event)>;

  DeviceManager(DeviceRegistry& registry, std::shared_ptr<const Policy> policy)
      : registry_(registry), policy_(std::move(policy)) {}

  // Swaps in a new policy at once (config reload); requests in flight finish on the old one.
  void set_policy(std::shared_ptr<const Policy> policy) { policy_ = std::move(policy); }
  const Policy& policy() const { return *policy_; }

  // The devices some rule lets pass through: the device object plus `allowed_vms` and `vm`
  // (null until attach exists). pci_list adds the other members of a pciIommuAddAll group's
  // IOMMU groups, marked "iommu_member": true.
  nlohmann::ordered_json usb_list(const ListFilter& filter) const;
  nlohmann::ordered_json pci_list(const ListFilter& filter) const;

  // usb_connected / usb_disconnected / pci_connected / pci_disconnected, as they happen.
  [[nodiscard]] DeviceRegistry::Subscription subscribe(Notify notify);

 private:
  DeviceRegistry& registry_;
  std::shared_ptr<const Policy> policy_;
};

}  // namespace vhp
