#pragma once
// The daemon's model of passthrough, as its faces see it: devices (from the registry), the policy,
// where each device is and should be (Placements), and the stream of typed events. Synchronous;
// Passthrough drives the changes.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/listeners.h"
#include "device/block_devices.h"
#include "device/device_registry.h"
#include "manager/commands.h"
#include "manager/daemon_status.h"
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

// What usb_list's answer depends on: while the stamp is the same, so is the list (a face may keep
// its encoding of the list and compare stamps instead of listing again).
struct UsbListStamp {
  std::uint64_t devices = 0, attachments = 0, state = 0, policy = 0;
  std::string storage;  // storage_fingerprint, when some listed device could carry a disk
  bool operator==(const UsbListStamp&) const = default;
};

class DeviceManager {
 public:
  DeviceManager(DeviceRegistry& registry, std::shared_ptr<const Policy> policy, StateStore& store, HostInterfaces host = {})
      : registry_(registry), policy_(std::move(policy)), placements_(store), pci_placements_(store), host_(std::move(host)) {}

  // Swaps in a new policy at once (config reload); operations in flight re-check it when they end.
  void set_policy(std::shared_ptr<const Policy> policy) {
    policy_ = std::move(policy);
    ++policy_version_;
  }
  const Policy& policy() const { return *policy_; }
  std::shared_ptr<const Policy> policy_ptr() const { return policy_; }
  DeviceRegistry& registry() { return registry_; }
  const DeviceRegistry& registry() const { return registry_; }
  Placements& placements() { return placements_; }
  const Placements& placements() const { return placements_; }
  PciPlacements& pci_placements() { return pci_placements_; }
  const HostInterfaces& host() const { return host_; }
  const PciPlacements& pci_placements() const { return pci_placements_; }

  // The devices some rule lets pass through, with their allowed VMs and where they are; USB devices
  // the host holds (held_by_host) are left out, as the reference leaves out its boot device.
  // pci_list adds the other members of a pciIommuAddAll group's IOMMU groups (iommu_member), leaves
  // out devices in shared groups of pciIommuSkipIfShared rules, and sorts by rule order, then address.
  std::vector<UsbListing> usb_list(const ListFilter& filter) const;
  std::vector<PciListing> pci_list(const ListFilter& filter) const;
  UsbListStamp usb_list_stamp() const;

  // Why the host needs this USB device itself, whatever a rule says: a disk holding a filesystem the
  // host has mounted (the reference's "Device … is used as a boot device" for what it boots and
  // runs from), or swap. Read afresh each time: mounts come and go. A disk seen held stays held
  // while it has no block device (re-enumerated after a host resume, before its disk is back):
  // that window must not hand the host's disk to a VM. Nothing for other devices.
  std::optional<std::string> held_by_host(const UsbDevice& d) const;
  // The same against block devices read once for several devices (a list).
  std::optional<std::string> held_by_host(const UsbDevice& d, const BlockDevices& blocks) const;

  // Non-hub USB devices a selector names (several for a tag, or when ambiguous).
  std::vector<UsbDevice> select(const DeviceSelector& selector) const;
  // PCI devices a selector names, in rule order then address (a tag: those a rule tags so).
  std::vector<PciDevice> select(const PciDeviceSelector& selector) const;
  // PCI devices some rule sends to a VM, with the match, in rule order then address; without
  // devices a pciIommuSkipIfShared rule leaves out.
  std::vector<std::pair<PciDevice, PciMatch>> pci_matched() const;

  // Input devices some evdevPassthrough rule sends to a VM, by sysfs path.
  std::vector<EvdevListing> evdev_list() const;
  // Where input devices are attached, by sysfs path. Not persisted: after a restart, the EVIOCGRAB
  // probe tells a node the VM already holds.
  std::map<std::string, std::string>& evdev_attachments() { return evdev_attached_; }
  const std::map<std::string, std::string>& evdev_attachments() const { return evdev_attached_; }

  [[nodiscard]] Subscription subscribe(Listeners<ManagerEvent>::Listener listener) { return events_.subscribe(std::move(listener)); }
  void publish(const ManagerEvent& event) { events_.publish(event); }
  // Choices still waiting for the user, for a client that enables notifications late.
  std::vector<UsbSelectVm> pending_selections() const;

  // Each VM's state since when, and its last failed operation (for `status`).
  void vm_came_up(const std::string& vm) { vm_health_[vm].state = VmHealth::State::Up, vm_health_[vm].since = WallClock::now(); }
  void vm_went_down(const std::string& vm) { vm_health_[vm].state = VmHealth::State::Down, vm_health_[vm].since = WallClock::now(); }
  void vm_failed(const std::string& vm, const std::string& error) { vm_health_[vm].last_error = error, vm_health_[vm].last_error_at = WallClock::now(); }
  VmHealth vm_health(const std::string& vm) const;

 private:
  DeviceRegistry& registry_;
  std::shared_ptr<const Policy> policy_;
  Placements placements_;
  PciPlacements pci_placements_;
  HostInterfaces host_;
  mutable std::map<std::string, std::string> host_held_;  // persistent id → why, for the window above
  std::map<std::string, std::string> evdev_attached_;
  std::map<std::string, VmHealth> vm_health_;
  WallClock::time_point started_ = WallClock::now();
  Listeners<ManagerEvent> events_;
  std::uint64_t policy_version_ = 0;
  mutable std::optional<std::pair<std::uint64_t, bool>> storage_seen_;  // registry version → has a storage device
};

}  // namespace vhp
