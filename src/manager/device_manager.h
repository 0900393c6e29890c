#pragma once
// The daemon's model of passthrough, as the APIs see it: devices (from the registry), the policy,
// where each device is attached, what the user chose or detached (persisted), pending VM
// selections, and the stream of API events. Synchronous; Passthrough drives the changes.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/listeners.h"
#include "device/device_registry.h"
#include "manager/commands.h"
#include "manager/state_store.h"
#include "policy/policy.h"

namespace vhp {

// The reference's usb_list / pci_list request filters.
struct ListFilter {
  std::optional<bool> disconnected;  // true: only devices the user detached; false: only the others
  std::optional<std::string> tag;    // only devices whose rule has this tag
};

// A device in a VM. The address tells this plug of the device from an earlier one at the same port.
struct Attachment {
  std::string vm;
  int busnum = 0, devnum = 0;
  bool is(const UsbDevice& d) const { return busnum == d.busnum && devnum == d.devnum; }
};

// What is true now, in memory only.
struct RuntimeState {
  std::map<std::string, Attachment> attached;  // sys_path → where it is attached
  const Attachment* attachment(const UsbDevice& d) const {  // of this very plug of the device
    auto it = attached.find(d.sys_path);
    return it != attached.end() && it->second.is(d) ? &it->second : nullptr;
  }
  std::map<std::string, std::string> wanted;    // sys_path → VM it belongs on; re-attached when that VM comes up
  std::map<std::string, std::vector<std::string>> pending_select;  // sys_path → allowed VMs, waiting for the user
};

class DeviceManager {
 public:
  using Event = nlohmann::ordered_json;

  DeviceManager(DeviceRegistry& registry, std::shared_ptr<const Policy> policy, StateStore& store)
      : registry_(registry), policy_(std::move(policy)), store_(store) {}

  // Swaps in a new policy at once (config reload); requests in flight finish on the old one.
  void set_policy(std::shared_ptr<const Policy> policy) { policy_ = std::move(policy); }
  const Policy& policy() const { return *policy_; }
  DeviceRegistry& registry() { return registry_; }
  StateStore& store() { return store_; }
  RuntimeState& runtime() { return runtime_; }

  // The devices some rule lets pass through: the device object plus `allowed_vms` and `vm`.
  // pci_list adds the other members of a pciIommuAddAll group's IOMMU groups ("iommu_member": true).
  nlohmann::ordered_json usb_list(const ListFilter& filter) const;
  nlohmann::ordered_json pci_list(const ListFilter& filter) const;

  // Non-hub USB devices a selector names (several for a tag, or when ambiguous).
  std::vector<UsbDevice> select(const DeviceSelector& selector) const;

  bool is_disconnected(const UsbDevice& d) const;     // detached by the user (persisted)
  std::optional<std::string> selected_vm(const UsbDevice& d) const;  // the user's persisted choice

  // API events (usb_connected, usb_attached, …): Passthrough publishes, the API server listens.
  [[nodiscard]] Subscription subscribe(Listeners<Event>::Listener listener) { return events_.subscribe(std::move(listener)); }
  void publish(const Event& event) { events_.publish(event); }
  // usb_select_vm events still waiting for an answer, for a client that enables notifications late.
  std::vector<Event> pending_select_events() const;

 private:
  DeviceRegistry& registry_;
  std::shared_ptr<const Policy> policy_;
  StateStore& store_;
  RuntimeState runtime_;
  Listeners<Event> events_;
};

}  // namespace vhp
