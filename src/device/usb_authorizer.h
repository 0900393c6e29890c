#pragma once
// The kernel's USB authorization switches in sysfs: `authorized_default` (usbcore's, for devices on
// every bus, and each root hub's) and each device's `authorized`. An unauthorized device is
// enumerated but never configured: no interfaces, no host driver, nothing the host can use.
#include <optional>
#include <string>

#include "device/block_devices.h"  // HostInterfaces
#include "device/usb_device.h"

namespace vhp {

class UsbAuthorizer {
 public:
  explicit UsbAuthorizer(HostInterfaces paths = {}) : paths_(std::move(paths)) {}

  // New devices start unauthorized: usbcore's parameter and every root hub's (`usbN/authorized_default`).
  // Returns the problems, one per line ("" when all went well).
  std::string deny_by_default() const;
  // Writes `authorized`; the error's text when it could not (the device left, no such attribute).
  std::optional<std::string> set(const UsbDevice& d, bool authorized) const;
  std::optional<bool> authorized(const UsbDevice& d) const;  // nothing when unreadable

 private:
  HostInterfaces paths_;
};

}  // namespace vhp
