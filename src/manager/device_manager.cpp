#include "manager/device_manager.h"

#include <algorithm>
#include <set>

#include "manager/identity.h"

namespace vhp {
namespace {

bool passes(const ListFilter& filter, const std::optional<std::string>& tag, bool disconnected) {
  if (filter.tag && tag != filter.tag) return false;
  return !filter.disconnected || *filter.disconnected == disconnected;
}

// A USB device with a mass-storage interface (class 08): only those can carry a block device.
bool has_storage_interface(const UsbDevice& d) {
  const std::string interfaces = d.interfaces.value_or("");  // ":080650:" per interface
  for (auto at = interfaces.find(':'); at != std::string::npos && at + 2 < interfaces.size(); at = interfaces.find(':', at + 1))
    if (interfaces.compare(at + 1, 2, "08") == 0) return true;
  return false;
}

}  // namespace

std::optional<std::string> DeviceManager::held_by_host(const UsbDevice& d) const {
  if (d.is_hub || !has_storage_interface(d)) return std::nullopt;
  return held_by_host(d, BlockDevices(host_));
}

std::optional<std::string> DeviceManager::held_by_host(const UsbDevice& d, const BlockDevices& blocks) const {
  if (d.is_hub || !has_storage_interface(d)) return std::nullopt;
  auto id = persistent_id(d);
  auto mounts = blocks.mounts_behind(d.sys_path);
  if (mounts.empty()) {
    auto seen = host_held_.find(id);
    if (seen == host_held_.end()) return std::nullopt;
    if (!blocks.any_below(d.sys_path)) return seen->second;  // not back yet: still the host's
    host_held_.erase(seen);  // back, and nothing of it mounted any more
    return std::nullopt;
  }
  bool boots = std::ranges::any_of(mounts, [](const HostMount& m) { return m.boots_the_host(); });
  auto why = boots ? "Device " + friendly_name(d) + " is used as a boot device"
                   : "Device " + friendly_name(d) + " holds the host's mounted filesystems: " + describe(mounts) + "; it stays on the host";
  host_held_[id] = why;
  return why;
}

std::vector<UsbListing> DeviceManager::usb_list(const ListFilter& filter) const {
  std::vector<UsbListing> list;
  std::optional<BlockDevices> blocks;  // read once, at the first storage device
  registry_.for_each_usb([&](const UsbDevice& d) {
    auto match = policy_->match_usb(d);
    if (!match) return;
    if (!d.is_hub && has_storage_interface(d)) {
      if (!blocks) blocks.emplace(host_);
      if (held_by_host(d, *blocks)) return;
    }
    if (!passes(filter, match->tag, placements_.is_disconnected(d))) return;
    std::optional<std::string> vm;
    if (const auto* a = placements_.attachment(d)) vm = a->vm;
    list.push_back({d, match->vms(), vm});
  });
  return list;
}

UsbListStamp DeviceManager::usb_list_stamp() const {
  UsbListStamp stamp{registry_.version(), placements_.attachments_version(), placements_.store_version(), policy_version_, {}};
  if (!storage_seen_ || storage_seen_->first != stamp.devices) {
    bool any = false;  // a held device is left out of the list: whether it still is depends on the host's storage
    registry_.for_each_usb([&](const UsbDevice& d) { any = any || (!d.is_hub && has_storage_interface(d)); });
    storage_seen_.emplace(stamp.devices, any);
  }
  if (storage_seen_->second) stamp.storage = storage_fingerprint(host_);
  return stamp;
}

std::vector<std::pair<PciDevice, PciMatch>> DeviceManager::pci_matched() const {
  std::vector<std::pair<PciDevice, PciMatch>> out;
  for (const auto& d : registry_.pci_devices())  // by address
    if (auto match = policy_->match_pci(d); match && !match->skips(d)) out.emplace_back(d, *match);
  std::ranges::stable_sort(out, {}, [](const auto& entry) { return entry.second.order; });
  return out;
}

std::vector<PciListing> DeviceManager::pci_list(const ListFilter& filter) const {
  std::vector<PciListing> list;
  std::set<std::string> listed;
  auto add = [&](const PciDevice& d, const PciMatch& m, bool member) {
    bool disconnected = pci_placements_.is_disconnected(d.address);
    if (listed.contains(d.address) || (!member && !passes(filter, m.tag, disconnected))) return false;
    listed.insert(d.address);
    list.push_back({d, {m.target_vm}, pci_placements_.vm_of(d.address), member});
    return true;
  };
  for (const auto& [d, match] : pci_matched()) {
    if (!add(d, match, false) || !match.iommu_add_all) continue;
    for (const auto& address : d.iommu_group_members)  // listed with the device whose rule takes them along
      if (const auto* member = registry_.find_pci(address); member && !policy_->match_pci(*member)) add(*member, match, true);
  }
  return list;
}

std::vector<PciDevice> DeviceManager::select(const PciDeviceSelector& s) const {
  std::vector<PciDevice> out;
  if (s.kind() == PciDeviceSelector::Kind::Tag) {
    for (const auto& [d, match] : pci_matched())
      if (match.tag == s.tag) out.push_back(d);
    return out;
  }
  auto id = [](const std::optional<std::string>& hex) { return hex ? std::stoi(*hex, nullptr, 16) : -1; };  // the protocol checked them
  int vendor = id(s.vid), device = id(s.did);
  for (const auto& d : registry_.pci_devices()) {
    bool match = s.kind() == PciDeviceSelector::Kind::Address ? d.address == *s.address
                                                              : s.kind() == PciDeviceSelector::Kind::Ids && d.vendor_id == vendor && d.device_id == device;
    if (match) out.push_back(d);
  }
  return out;
}

std::vector<UsbDevice> DeviceManager::select(const DeviceSelector& s) const {
  std::vector<UsbDevice> out;
  for (const auto& d : registry_.usb_devices()) {
    if (d.is_hub) continue;
    bool match = false;
    switch (s.kind()) {
      case DeviceSelector::Kind::Node: match = d.device_node == *s.device_node; break;
      case DeviceSelector::Kind::Place: {
        const std::string& path = *s.port;
        match = d.busnum == *s.bus && (path.find('.') == std::string::npos ? std::to_string(d.root_port()) == path : d.devpath == path);
        break;
      }
      case DeviceSelector::Kind::Tag: {
        auto m = policy_->match_usb(d);
        match = m && m->tag == s.tag;
        break;
      }
      case DeviceSelector::Kind::Ids: match = d.vid == *s.vid && d.pid == *s.pid; break;
      case DeviceSelector::Kind::None: break;
    }
    if (match) out.push_back(d);
  }
  return out;
}

std::vector<UsbSelectVm> DeviceManager::pending_selections() const {
  std::vector<UsbSelectVm> out;
  for (const auto& [path, allowed] : placements_.pending())
    if (const auto* d = registry_.find_usb(path)) out.push_back({*d, allowed});
  return out;
}

std::vector<EvdevListing> DeviceManager::evdev_list() const {
  std::vector<EvdevListing> out;
  for (const auto& d : registry_.evdev_devices()) {
    auto match = policy_->match_evdev(d);
    if (!match) continue;
    auto it = evdev_attached_.find(d.sys_path);
    out.push_back({d, match->target_vm, it == evdev_attached_.end() ? std::nullopt : std::optional(it->second), match->tag});
  }
  return out;
}

VmHealth DeviceManager::vm_health(const std::string& vm) const {
  auto it = vm_health_.find(vm);
  if (it != vm_health_.end()) return it->second;
  VmHealth unknown;
  unknown.since = started_;
  return unknown;
}

}  // namespace vhp
