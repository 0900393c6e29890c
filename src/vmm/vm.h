#pragma once
// The one interface every hypervisor backend implements: a VM's lifecycle as seen from the host
// (up, down) and the operations that pass devices through. Operations run on the event loop, are
// serialised per VM by the backend, and fail with VmError (the text the API answers).
#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "device/evdev_device.h"
#include "device/pci_device.h"
#include "device/usb_device.h"

namespace vhp {

struct VmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A host USB device a VM holds, recognised by what it is (its host bus and address), whatever the
// backend calls it. `id` is the backend's handle for it; empty means "whatever holds this address".
struct VmUsbDevice {
  std::string id;
  int hostbus = 0, hostaddr = 0;
  bool attached = true;  // the VM really has the host device (not a placeholder left behind)
};

// A host PCI device a VM holds (a vfio-pci device), recognised by its host address. `id` is the
// backend's handle for it; empty means "whatever holds this address".
struct VmPciDevice {
  std::string id;
  std::string host;  // 0000:00:14.3
};

// The id every backend gives a host PCI device it adds ("vhp-pci-0000-00-14.3"): one name for it
// whatever the hypervisor, so that a VM coming up tells ours from others.
inline std::string pci_device_id(const std::string& address) {
  std::string id = "vhp-pci-" + address;
  std::ranges::replace(id, ':', '-');
  return id;
}

// Operations take their arguments by value: a coroutine starts later than the call that makes it.
class Vm {
 public:
  explicit Vm(std::string name) : name_(std::move(name)) {}
  virtual ~Vm() = default;
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  const std::string& name() const { return name_; }

  // Begins following the VM: on_up when it is (or comes) up, on_down when it goes. Called on the loop.
  virtual void start() = 0;
  // Stops following it; operations in flight fail soon after, none starts.
  virtual void stop() = 0;
  virtual bool running() const = 0;
  // Why this VM can never take devices at run time (no backend for its type), else nothing.
  virtual std::optional<std::string> unsupported() const { return std::nullopt; }
  // Why this VM can never take USB devices (its hypervisor has no USB hot-plug), else nothing.
  virtual std::optional<std::string> usb_unsupported() const { return std::nullopt; }

  virtual boost::asio::awaitable<void> attach_usb(UsbDevice device) = 0;
  // Removes what the VM holds at that host address; a device it does not hold counts as detached.
  virtual boost::asio::awaitable<void> detach_usb(VmUsbDevice device) = 0;
  // Every host USB device the VM holds, ours or not.
  virtual boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() = 0;

  // A host PCI device already bound to vfio-pci, into a free hot-plug port (`root_bus`: the root bus).
  virtual boost::asio::awaitable<void> attach_pci(PciDevice device, bool root_bus) = 0;
  // Removes what the VM holds of that host device and waits until the guest let it go.
  virtual boost::asio::awaitable<void> detach_pci(VmPciDevice device) = 0;
  // Every host PCI device the VM holds, ours or not.
  virtual boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() = 0;

  // A host input device (its evdev node), as a virtual input device of the guest.
  virtual boost::asio::awaitable<void> attach_evdev(EvdevDevice device) = 0;
  // Removes what attach_evdev added for it; one the VM does not have counts as detached.
  virtual boost::asio::awaitable<void> detach_evdev(EvdevDevice device) = 0;

  std::function<void()> on_up, on_down;

 protected:
  void announce_up() {
    if (on_up) on_up();
  }
  void announce_down() {
    if (on_down) on_down();
  }

 private:
  std::string name_;
};

}  // namespace vhp
