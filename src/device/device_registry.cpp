#include "device/device_registry.h"

namespace vhp {

const char* to_string(DeviceAction action) {
  switch (action) {
    case DeviceAction::Added: return "added";
    case DeviceAction::Removed: return "removed";
    case DeviceAction::Changed: return "changed";
  }
  return "?";
}

DeviceRegistry::Subscription& DeviceRegistry::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    listeners_ = std::move(other.listeners_);
    id_ = other.id_;
  }
  return *this;
}

void DeviceRegistry::Subscription::reset() {
  if (auto listeners = listeners_.lock()) listeners->erase(id_);
  listeners_.reset();
}

DeviceRegistry::DeviceRegistry() : listeners_(std::make_shared<std::map<int, std::shared_ptr<Listener>>>()) {}

DeviceRegistry::Subscription DeviceRegistry::subscribe(Listener listener) {
  Subscription s;
  s.listeners_ = listeners_;
  s.id_ = next_id_++;
  listeners_->emplace(s.id_, std::make_shared<Listener>(std::move(listener)));
  return s;
}

std::vector<UsbDevice> DeviceRegistry::usb_devices() const {
  std::vector<UsbDevice> out;
  out.reserve(usb_.size());
  for (const auto& [path, d] : usb_) out.push_back(d);
  return out;
}

std::vector<PciDevice> DeviceRegistry::pci_devices() const {
  std::vector<PciDevice> out;
  out.reserve(pci_.size());
  for (const auto& [address, d] : pci_) out.push_back(d);
  return out;
}

const UsbDevice* DeviceRegistry::find_usb(const std::string& sys_path) const {
  auto it = usb_.find(sys_path);
  return it == usb_.end() ? nullptr : &it->second;
}

const PciDevice* DeviceRegistry::find_pci(const std::string& address) const {
  auto it = pci_.find(address);
  return it == pci_.end() ? nullptr : &it->second;
}

void DeviceRegistry::upsert(UsbDevice device) {
  auto it = usb_.find(device.sys_path);
  if (it == usb_.end()) {
    auto& stored = usb_.emplace(device.sys_path, std::move(device)).first->second;
    publish(UsbEvent{DeviceAction::Added, stored});
    return;
  }
  if (it->second == device) return;
  if (it->second.busnum != device.busnum || it->second.devnum != device.devnum) {
    UsbDevice old = std::move(it->second);
    it->second = std::move(device);
    publish(UsbEvent{DeviceAction::Removed, old});
    publish(UsbEvent{DeviceAction::Added, it->second});
    return;
  }
  it->second = std::move(device);
  publish(UsbEvent{DeviceAction::Changed, it->second});
}

void DeviceRegistry::upsert(PciDevice device) {
  auto it = pci_.find(device.address);
  if (it == pci_.end()) {
    auto& stored = pci_.emplace(device.address, std::move(device)).first->second;
    publish(PciEvent{DeviceAction::Added, stored});
    return;
  }
  if (it->second == device) return;
  it->second = std::move(device);
  publish(PciEvent{DeviceAction::Changed, it->second});
}

void DeviceRegistry::erase_usb(const std::string& sys_path) {
  auto node = usb_.extract(sys_path);
  if (!node.empty()) publish(UsbEvent{DeviceAction::Removed, std::move(node.mapped())});
}

void DeviceRegistry::erase_pci(const std::string& address) {
  auto node = pci_.extract(address);
  if (!node.empty()) publish(PciEvent{DeviceAction::Removed, std::move(node.mapped())});
}

void DeviceRegistry::publish(const DeviceEvent& event) {
  // Listeners may subscribe or unsubscribe while we iterate: walk a copy of the ids and
  // skip any that were dropped meanwhile; ones added meanwhile hear from the next event on.
  std::vector<int> ids;
  for (const auto& entry : *listeners_) ids.push_back(entry.first);
  for (int id : ids) {
    auto it = listeners_->find(id);
    if (it == listeners_->end()) continue;
    auto listener = it->second;  // keeps it alive even if it unsubscribes itself
    (*listener)(event);
  }
}

}  // namespace vhp
