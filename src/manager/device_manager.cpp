#include "manager/device_manager.h"

namespace vhp {
namespace {

using ordered_json = nlohmann::ordered_json;

// Without rules no device is tagged and none was detached by the user.
bool passes(const ListFilter& filter) { return !filter.tag && filter.disconnected.value_or(false) == false; }

template <class Device>
ordered_json list_entry(const Device& d) {
  auto entry = to_json(d);
  entry["allowed_vms"] = ordered_json::array();
  entry["vm"] = nullptr;
  return entry;
}

}  // namespace

ordered_json DeviceManager::usb_list(const ListFilter& filter) const {
  auto list = ordered_json::array();
  if (!passes(filter)) return list;
  for (const auto& d : registry_.usb_devices())
    if (!d.is_hub) list.push_back(list_entry(d));
  return list;
}

ordered_json DeviceManager::pci_list(const ListFilter& filter) const {
  auto list = ordered_json::array();
  if (!passes(filter)) return list;
  for (const auto& d : registry_.pci_devices()) list.push_back(list_entry(d));
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
