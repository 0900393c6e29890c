#pragma once
// Turns libudev devices into UsbDevice / PciDevice. Reads udev properties first, sysfs attributes second.
#include <stdexcept>

#include <libudev.h>

#include "device/pci_device.h"
#include "device/usb_device.h"

namespace vhp {

// The device's data is missing or malformed; the message says which field and why.
struct DeviceReadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool is_usb_device(udev_device* dev);  // subsystem usb, devtype usb_device
bool is_pci_device(udev_device* dev);

UsbDevice read_usb_device(udev_device* dev);  // throws DeviceReadError
PciDevice read_pci_device(udev_device* dev);  // throws DeviceReadError

}  // namespace vhp
