#pragma once
// What the APIs see of the host's devices: the reference's list entries and its events.
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "device/device_registry.h"

namespace vhp {

// The reference's usb_list / pci_list request filters.
struct ListFilter {
  std::optional<bool> disconnected;  // true: only devices the user detached; false: only the others
  std::optional<std::string> tag;    // only devices whose rule has this tag
};

class DeviceManager {
 public:
  using Notify = std::function<void(const nlohmann::ordered_json& event)>;

  explicit DeviceManager(DeviceRegistry& registry) : registry_(registry) {}

  // List entries: the device object plus `allowed_vms` and `vm`. Until rules exist, every non-hub
  // device is listed, allowed nowhere, attached nowhere, and none carries a tag.
  nlohmann::ordered_json usb_list(const ListFilter& filter) const;
  nlohmann::ordered_json pci_list(const ListFilter& filter) const;

  // usb_connected / usb_disconnected / pci_connected / pci_disconnected, as they happen.
  [[nodiscard]] DeviceRegistry::Subscription subscribe(Notify notify);

 private:
  DeviceRegistry& registry_;
};

}  // namespace vhp
