#pragma once
// The daemon's model of passthrough, as its faces see it: devices (from the registry), the policy,
// where each device is and should be (Placements), and the stream of typed events. Synchronous;
// Passthrough drives the changes.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/listeners.h"
#include "device/device_registry.h"
#include "manager/commands.h"
#include "manager/events.h"
#include "manager/pci_placements.h"
#include "manager/placements.h"
#include "manager/state_store.h"
#include "policy/policy.h"

namespace vhp {

// The reference's usb_list / pci_list request filters.
struct ListFilter {
  std::optional<bool> disconnected;  // true: only devices the user detached; false: only the others
  std::optional<std::string> tag;    // only devices whose rule has this tag
};

class DeviceManager {
 public:
  DeviceManager(DeviceRegistry& registry, std::shared_ptr<const Policy> policy, StateStore& store)
      : registry_(registry), policy_(std::move(policy)), placements_(store), pci_placements_(store) {}

  // Swaps in a new policy at once (config reload); operations in flight re-check it when they end.
  void set_policy(std::shared_ptr<const Policy> policy) { policy_ = std::move(policy); }
  const Policy& policy() const { return *policy_; }
  std::shared_ptr<const Policy> policy_ptr() const { return policy_; }
  DeviceRegistry& registry() { return registry_; }
  const DeviceRegistry& registry() const { return registry_; }
  Placements& placements() { return placements_; }
  const Placements& placements() const { return placements_; }
  PciPlacements& pci_placements() { return pci_placements_; }
  const PciPlacements& pci_placements() const { return pci_placements_; }

  // The devices some rule lets pass through, with their allowed VMs and where they are.
  // pci_list adds the other members of a pciIommuAddAll group's IOMMU groups (iommu_member), leaves
  // out devices in shared groups of pciIommuSkipIfShared rules, and sorts by rule order, then address.
  std::vector<UsbListing> usb_list(const ListFilter& filter) const;
  std::vector<PciListing> pci_list(const ListFilter& filter) const;

  // Non-hub USB devices a selector names (several for a tag, or when ambiguous).
  std::vector<UsbDevice> select(const DeviceSelector& selector) const;
  // PCI devices a selector names, in rule order then address (a tag: those a rule tags so).
  std::vector<PciDevice> select(const PciDeviceSelector& selector) const;
  // PCI devices some rule sends to a VM, with the match, in rule order then address; without
  // devices a pciIommuSkipIfShared rule leaves out.
  std::vector<std::pair<PciDevice, PciMatch>> pci_matched() const;

  [[nodiscard]] Subscription subscribe(Listeners<ManagerEvent>::Listener listener) { return events_.subscribe(std::move(listener)); }
  void publish(const ManagerEvent& event) { events_.publish(event); }
  // Choices still waiting for the user, for a client that enables notifications late.
  std::vector<UsbSelectVm> pending_selections() const;

 private:
  DeviceRegistry& registry_;
  std::shared_ptr<const Policy> policy_;
  Placements placements_;
  PciPlacements pci_placements_;
  Listeners<ManagerEvent> events_;
};

}  // namespace vhp
