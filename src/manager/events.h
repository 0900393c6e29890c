#pragma once
// What the manager tells its faces (the API, Thunder, logs): typed facts. Each face encodes them
// in its own wire format; nothing here knows one.
#include <string>
#include <variant>
#include <vector>

#include "device/evdev_device.h"
#include "device/pci_device.h"
#include "device/usb_device.h"

namespace vhp {

struct UsbConnected {
  UsbDevice device;
};
struct UsbDisconnected {
  UsbDevice device;  // as it was when plugged
};
struct UsbAttached {
  UsbDevice device;
  std::string vm;
};
struct UsbDetached {
  UsbDevice device;
  std::string vm;
};
// A device some rule lets go to one of several VMs, and the user has not chosen yet.
struct UsbSelectVm {
  UsbDevice device;
  std::vector<std::string> allowed_vms;
};
struct PciConnected {
  PciDevice device;
};
struct PciDisconnected {
  PciDevice device;
};
struct PciAttached {
  PciDevice device;
  std::string vm;
};
struct PciDetached {
  PciDevice device;
  std::string vm;
};
struct VmStarted {
  std::string vm;
};
struct VmStopped {
  std::string vm;
};

using ManagerEvent = std::variant<UsbConnected, UsbDisconnected, UsbAttached, UsbDetached, UsbSelectVm, PciConnected,
                                  PciDisconnected, PciAttached, PciDetached, VmStarted, VmStopped>;

// A device some rule lets pass through, as the lists show it.
struct UsbListing {
  UsbDevice device;
  std::vector<std::string> allowed_vms;
  std::optional<std::string> vm;  // where it is attached
};
struct PciListing {
  PciDevice device;
  std::vector<std::string> allowed_vms;
  std::optional<std::string> vm;
  bool iommu_member = false;  // listed because a pciIommuAddAll rule takes its IOMMU group along
};

// An input device some evdevPassthrough rule sends to a VM (our evdev_list; the reference has none).
struct EvdevListing {
  EvdevDevice device;
  std::string target_vm;
  std::optional<std::string> vm;  // where it is attached
  std::optional<std::string> tag;
};

// The outcome of a request: done, or why not (the reference's texts).
struct CommandResult {
  std::optional<std::string> error;
  std::optional<std::vector<std::string>> vmm_args;  // vmm_args' answer
  static CommandResult ok() { return {}; }
  static CommandResult failed(std::string why) { return {std::move(why), std::nullopt}; }
};

}  // namespace vhp
