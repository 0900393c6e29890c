#include "manager/device_manager.h"

#include <algorithm>

#include "manager/identity.h"

namespace vhp {
namespace {

using ordered_json = nlohmann::ordered_json;

bool passes(const ListFilter& filter, const std::optional<std::string>& tag, bool disconnected) {
  if (filter.tag && tag != filter.tag) return false;
  return !filter.disconnected || *filter.disconnected == disconnected;
}

template <class Device>
ordered_json list_entry(const Device& d, const std::vector<std::string>& allowed_vms, const std::optional<std::string>& vm) {
  auto entry = to_json(d);
  entry["allowed_vms"] = allowed_vms;
  entry["vm"] = vm ? ordered_json(*vm) : ordered_json(nullptr);
  return entry;
}

}  // namespace

bool DeviceManager::is_disconnected(const UsbDevice& d) const {
  const auto& set = store_.state().disconnected_devices;
  if (set.contains(persistent_id(d))) return true;
  return std::ranges::any_of(persistent_id_fallbacks(d), [&](const std::string& id) { return set.contains(id); });
}

std::optional<std::string> DeviceManager::selected_vm(const UsbDevice& d) const {
  const auto& map = store_.state().selected_vms;
  if (auto it = map.find(persistent_id(d)); it != map.end()) return it->second;
  for (const auto& id : persistent_id_fallbacks(d))
    if (auto it = map.find(id); it != map.end()) return it->second;
  return std::nullopt;
}

ordered_json DeviceManager::usb_list(const ListFilter& filter) const {
  auto list = ordered_json::array();
  for (const auto& d : registry_.usb_devices()) {
    auto match = policy_->match_usb(d);
    if (!match) continue;
    bool disconnected = is_disconnected(d);
    if (!passes(filter, match->tag, disconnected)) continue;
    std::optional<std::string> vm;
    if (const auto* a = runtime_.attachment(d)) vm = a->vm;
    list.push_back(list_entry(d, match->vms(), vm));
  }
  return list;
}

ordered_json DeviceManager::pci_list(const ListFilter& filter) const {
  std::map<std::string, ordered_json> by_address;  // the reference sorts PCI lists by address
  std::vector<std::pair<std::string, std::string>> members;  // address, target VM
  for (const auto& d : registry_.pci_devices()) {
    auto match = policy_->match_pci(d);
    if (!match || !passes(filter, match->tag, false)) continue;  // PCI detach arrives with PCI passthrough
    by_address[d.address] = list_entry(d, {match->target_vm}, std::nullopt);
    if (match->iommu_add_all)
      for (const auto& member : d.iommu_group_members) members.emplace_back(member, match->target_vm);
  }
  for (const auto& [address, target_vm] : members) {
    const auto* member = registry_.find_pci(address);
    if (!member || by_address.contains(address)) continue;  // gone, or listed by a rule of its own
    auto entry = list_entry(*member, {target_vm}, std::nullopt);
    entry["iommu_member"] = true;
    by_address[address] = std::move(entry);
  }
  auto list = ordered_json::array();
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

std::vector<DeviceManager::Event> DeviceManager::pending_select_events() const {
  std::vector<Event> out;
  for (const auto& [path, allowed] : runtime_.pending_select)
    if (const auto* d = registry_.find_usb(path))
      out.push_back({{"event", "usb_select_vm"}, {"usb_device", to_json(*d)}, {"allowed_vms", allowed}});
  return out;
}

}  // namespace vhp
