#pragma once
// A laptop-like host for tests, benchmarks and the demo: an xHCI controller with a hub, a composite
// HID+CCID security key behind the hub (devpath 2.1), a USB stick, a webcam, a device with no strings
// or serial, two identical keyboards, a SuperSpeed root hub, and PCI devices in IOMMU groups.
#include <string>

#include "support/testbed.h"

namespace vhp::test {

struct HostPaths {
  std::string xhci, gpu, audio, wifi, smbus;          // PCI
  std::string root_hub, hub, security_key, stick, webcam, serial_adapter, keyboard_a, keyboard_b, root_hub3;  // USB
};

HostPaths add_realistic_host(Testbed& tb);

// An input device as the kernel and udev show it: inputN (which carries its name) under `parent`,
// and its eventN node (/dev/input/eventN) with `properties` (ID_INPUT=1 added). Returns eventN's path.
std::string add_input(Testbed& tb, const std::string& parent, int n, const std::string& name, Strings properties);

// The security key behind the hub, as a spec a test can vary.
UsbSpec security_key_spec(const std::string& hub_path);

}  // namespace vhp::test
