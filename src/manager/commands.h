#pragma once
// API requests that act on devices, parsed and type-checked by the protocol, run by Passthrough.
#include <optional>
#include <string>
#include <variant>

namespace vhp {

// Which device(s) a request means. Precedence, as the reference: device_node, bus+port, tag, vid+pid.
struct DeviceSelector {
  std::optional<std::string> device_node;
  std::optional<int> bus;
  std::optional<std::string> port;  // "2" is the root port (as the reference); "2.1" a full port path (ours)
  std::optional<std::string> tag;
  std::optional<std::string> vid, pid;  // lowercase

  enum class Kind { None, Node, Place, Tag, Ids };
  // The criterion that applies, by the precedence above.
  Kind kind() const {
    if (device_node) return Kind::Node;
    if (bus && port) return Kind::Place;
    if (tag) return Kind::Tag;
    if (vid && pid) return Kind::Ids;
    return Kind::None;
  }
};

struct UsbAttach {
  DeviceSelector selector;
  std::optional<std::string> vm;
};

struct UsbDetach {
  DeviceSelector selector;
};

// Which PCI device(s) a request means. Precedence, as the reference: address, tag, vid+did.
struct PciDeviceSelector {
  std::optional<std::string> address;   // 0000:00:14.3, lowercase
  std::optional<std::string> tag;
  std::optional<std::string> vid, did;  // hex, as the request gave them (the reference's error texts show them so)

  enum class Kind { None, Address, Tag, Ids };
  Kind kind() const {
    if (address) return Kind::Address;
    if (tag) return Kind::Tag;
    if (vid && did) return Kind::Ids;
    return Kind::None;
  }
};

struct PciAttach {
  PciDeviceSelector selector;
  std::optional<std::string> vm;
};

struct PciDetach {
  PciDeviceSelector selector;
};

// Before the host sleeps: attached devices leave their VMs (all VMs, or `vm`), except those of
// skipOnSuspend groups; not a user's detach. After it wakes: devices are attached by rule again.
struct UsbSuspend {
  std::optional<std::string> vm;
};
struct UsbResume {
  std::optional<std::string> vm;
};
struct PciSuspend {
  std::optional<std::string> vm;
};
struct PciResume {
  std::optional<std::string> vm;
};

// A VM's start-up arguments for the devices it gets at boot; the PCI ones are bound to vfio-pci first.
struct VmmArgs {
  std::string vm;
  std::optional<std::string> qemu_bus_prefix;
  int qemu_bus_start_index = 0;
  bool require_pci = false;  // fail unless the VM has PCI rules and the devices they name are present
};

using Command = std::variant<UsbAttach, UsbDetach, PciAttach, PciDetach, UsbSuspend, UsbResume, PciSuspend, PciResume, VmmArgs>;

}  // namespace vhp
