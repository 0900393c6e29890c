#include "manager/device_manager.h"

#include <map>

namespace vhp {
namespace {

bool passes(const ListFilter& filter, const std::optional<std::string>& tag, bool disconnected) {
  if (filter.tag && tag != filter.tag) return false;
  return !filter.disconnected || *filter.disconnected == disconnected;
}

}  // namespace

std::vector<UsbListing> DeviceManager::usb_list(const ListFilter& filter) const {
  std::vector<UsbListing> list;
  for (const auto& d : registry_.usb_devices()) {
    auto match = policy_->match_usb(d);
    if (!match) continue;
    if (!passes(filter, match->tag, placements_.is_disconnected(d))) continue;
    std::optional<std::string> vm;
    if (const auto* a = placements_.attachment(d)) vm = a->vm;
    list.push_back({d, match->vms(), vm});
  }
  return list;
}

std::vector<PciListing> DeviceManager::pci_list(const ListFilter& filter) const {
  std::map<std::string, PciListing> by_address;  // the reference sorts PCI lists by address
  std::vector<std::pair<std::string, std::string>> members;  // address, target VM
  for (const auto& d : registry_.pci_devices()) {
    auto match = policy_->match_pci(d);
    if (!match || !passes(filter, match->tag, false)) continue;  // PCI detach arrives with PCI passthrough
    by_address[d.address] = {d, {match->target_vm}, std::nullopt};
    if (match->iommu_add_all)
      for (const auto& member : d.iommu_group_members) members.emplace_back(member, match->target_vm);
  }
  for (const auto& [address, target_vm] : members) {
    const auto* member = registry_.find_pci(address);
    if (!member || by_address.contains(address)) continue;  // gone, or listed by a rule of its own
    by_address[address] = {*member, {target_vm}, std::nullopt, true};
  }
  std::vector<PciListing> list;
  for (auto& [address, entry] : by_address) list.push_back(std::move(entry));
  return list;
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

}  // namespace vhp
