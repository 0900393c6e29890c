#pragma once
// The devices the host has now, and a stream of what changes, for whoever subscribes.
// Single-threaded: owned and driven by the event loop thread.
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/listeners.h"
#include "device/evdev_device.h"
#include "device/pci_device.h"
#include "device/usb_device.h"

namespace vhp {

enum class DeviceAction { Added, Removed, Changed };
const char* to_string(DeviceAction action);

struct UsbEvent {
  DeviceAction action;
  UsbDevice device;  // for Removed: as captured when it was added
};
struct PciEvent {
  DeviceAction action;
  PciDevice device;
};
struct EvdevEvent {
  DeviceAction action;
  EvdevDevice device;
};
using DeviceEvent = std::variant<UsbEvent, PciEvent, EvdevEvent>;

class DeviceRegistry {
 public:
  using Listener = Listeners<DeviceEvent>::Listener;
  using Subscription = vhp::Subscription;

  [[nodiscard]] Subscription subscribe(Listener listener) { return listeners_.subscribe(std::move(listener)); }

  std::vector<UsbDevice> usb_devices() const;  // ordered by sysfs path: parents before children
  std::vector<PciDevice> pci_devices() const;  // ordered by address
  std::vector<EvdevDevice> evdev_devices() const;  // ordered by sysfs path
  template <class F>
  void for_each_usb(F&& f) const {  // the same order as usb_devices(), without copying them
    for (const auto& [path, d] : usb_) f(d);
  }
  const UsbDevice* find_usb(const std::string& sys_path) const;
  const PciDevice* find_pci(const std::string& address) const;
  const EvdevDevice* find_evdev(const std::string& sys_path) const;

  // Record a device that is present: Added if new, Changed if its data changed, nothing if identical.
  // A USB device whose bus/device number changed at the same path was replugged: Removed, then Added.
  void upsert(UsbDevice device);
  void upsert(PciDevice device);
  void upsert(EvdevDevice device);
  // Forget a device: Removed, with the data captured earlier. Unknown paths are ignored.
  void erase_usb(const std::string& sys_path);
  void erase_pci(const std::string& address);
  void erase_evdev(const std::string& sys_path);
  // Counts the changes so far: the same number, the same devices (what a cached answer is keyed by).
  std::uint64_t version() const { return version_; }

 private:
  void publish(const DeviceEvent& event) {
    ++version_;  // before the listeners, who may read the registry
    listeners_.publish(event);
  }

  std::map<std::string, UsbDevice> usb_;  // by sys_path
  std::map<std::string, PciDevice> pci_;  // by address
  std::map<std::string, EvdevDevice> evdev_;  // by sys_path
  Listeners<DeviceEvent> listeners_;
  std::uint64_t version_ = 0;
};

}  // namespace vhp
