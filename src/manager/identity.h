#pragma once
// How a device is named in logs, errors and the state file.
#include <string>
#include <vector>

#include "common/log_fields.h"
#include "device/evdev_device.h"
#include "device/usb_device.h"

namespace vhp {

// "vid:pid (vendor product)", as the reference's error texts show devices.
std::string friendly_name(const UsbDevice& d);

// Identity in the state file. The reference's form "usb-<vid>:<pid>:<serial>" when the device has a
// serial; without one, identical devices would share "usb-<vid>:<pid>:None", so we use the port
// instead: "usb-<vid>:<pid>:port-<bus>-<devpath>". Read-only fallbacks, best first, for state
// files the reference wrote: the "None" form.
std::string persistent_id(const UsbDevice& d);
std::vector<std::string> persistent_id_fallbacks(const UsbDevice& d);

// The log fields of a line about a device: its persistent id (USB, PCI) or its node (input).
inline LogFields about(const UsbDevice& d) { return LogFields().device(persistent_id(d)); }
inline LogFields about(const EvdevDevice& d) { return LogFields().device(d.device_node); }

}  // namespace vhp
