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

std::vector<EvdevDevice> DeviceRegistry::evdev_devices() const {
  std::vector<EvdevDevice> out;
  out.reserve(evdev_.size());
  for (const auto& [path, d] : evdev_) out.push_back(d);
  return out;
}

const EvdevDevice* DeviceRegistry::find_evdev(const std::string& sys_path) const {
  auto it = evdev_.find(sys_path);
  return it == evdev_.end() ? nullptr : &it->second;
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

void DeviceRegistry::upsert(EvdevDevice device) {
  auto it = evdev_.find(device.sys_path);
  if (it == evdev_.end()) {
    auto& stored = evdev_.emplace(device.sys_path, std::move(device)).first->second;
    publish(EvdevEvent{DeviceAction::Added, stored});
    return;
  }
  if (it->second == device) return;
  it->second = std::move(device);
  publish(EvdevEvent{DeviceAction::Changed, it->second});
}

void DeviceRegistry::erase_usb(const std::string& sys_path) {
  auto node = usb_.extract(sys_path);
  if (!node.empty()) publish(UsbEvent{DeviceAction::Removed, std::move(node.mapped())});
}

void DeviceRegistry::erase_pci(const std::string& address) {
  auto node = pci_.extract(address);
  if (!node.empty()) publish(PciEvent{DeviceAction::Removed, std::move(node.mapped())});
}

void DeviceRegistry::erase_evdev(const std::string& sys_path) {
  auto node = evdev_.extract(sys_path);
  if (!node.empty()) publish(EvdevEvent{DeviceAction::Removed, std::move(node.mapped())});
}

}  // namespace vhp
