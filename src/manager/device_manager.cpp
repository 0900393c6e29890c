#include "manager/device_manager.h"

#include <map>

namespace vhp {
namespace {

using ordered_json = nlohmann::ordered_json;

// Nothing is detached by the user yet (that state arrives with attach/detach).
bool passes(const ListFilter& filter, const std::optional<std::string>& tag) {
  if (filter.tag && tag != filter.tag) return false;
  return filter.disconnected.value_or(false) == false;
}

template <class Device>
ordered_json list_entry(const Device& d, const std::vector<std::string>& allowed_vms) {
  auto entry = to_json(d);
  entry["allowed_vms"] = allowed_vms;
  entry["vm"] = nullptr;
  return entry;
}

}  // namespace

ordered_json DeviceManager::usb_list(const ListFilter& filter) const {
  auto list = ordered_json::array();
  for (const auto& d : registry_.usb_devices()) {
    auto match = policy_->match_usb(d);
    if (match && passes(filter, match->tag)) list.push_back(list_entry(d, match->vms()));
  }
  return list;
}

ordered_json DeviceManager::pci_list(const ListFilter& filter) const {
  std::map<std::string, ordered_json> by_address;  // the reference sorts PCI lists by address
  std::vector<std::pair<std::string, std::string>> members;  // address, target VM
  for (const auto& d : registry_.pci_devices()) {
    auto match = policy_->match_pci(d);
    if (!match || !passes(filter, match->tag)) continue;
    by_address[d.address] = list_entry(d, {match->target_vm});
    if (match->iommu_add_all)
      for (const auto& member : d.iommu_group_members) members.emplace_back(member, match->target_vm);
  }
  for (const auto& [address, target_vm] : members) {
    const auto* member = registry_.find_pci(address);
    if (!member || by_address.contains(address)) continue;  // gone, or listed by a rule of its own
    auto entry = list_entry(*member, {target_vm});
    entry["iommu_member"] = true;
    by_address[address] = std::move(entry);
  }
  auto list = ordered_json::array();
  for (auto& [address, entry] : by_address) list.push_back(std::move(entry));
  return list;
}

DeviceRegistry::Subscription DeviceManager::subscribe(Notify notify) {
  return registry_.subscribe([notify = std::move(notify)](const DeviceEvent& event) {
    if (const auto* usb = std::get_if<UsbEvent>(&event)) {
      if (usb->device.is_hub || usb->action == DeviceAction::Changed) return;
      bool added = usb->action == DeviceAction::Added;
      // The full device on disconnect too: the reference sends only device_node, which this contains.
      notify({{"event", added ? "usb_connected" : "usb_disconnected"}, {"usb_device", to_json(usb->device)}});
    } else {
      const auto& pci = std::get<PciEvent>(event);
      if (pci.action == DeviceAction::Changed) return;
      bool added = pci.action == DeviceAction::Added;
      notify({{"event", added ? "pci_connected" : "pci_disconnected"}, {"pci_device", to_json(pci.device)}});
    }
  });
}

}  // namespace vhp
