#pragma once
// IUSBHub's DeviceMetadata for a USB device (docs/THUNDER.md says how each field is derived).
#include <string>

#include <nlohmann/json.hpp>

#include "device/usb_device.h"

namespace vhp::thunder {

// The 20 members, always all present; productInfo2..4 are zeros and empty strings.
// `switchable`: a rule lets the device pass through to a VM (FLAGS_SWITCHABLE).
nlohmann::ordered_json device_metadata(const UsbDevice& d, bool switchable, const std::string& device_path);

const char* bus_speed(UsbSpeed speed);
const char* status(const UsbDevice& d);

}  // namespace vhp::thunder
