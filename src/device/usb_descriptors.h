#pragma once
// USB interfaces read from the raw sysfs `descriptors` file, which the kernel fills even for a device it
// never configured (unauthorized): the device descriptor, then each configuration with all it contains.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "device/usb_device.h"

namespace vhp {

// Alternate setting 0 of each interface of the first configuration, sorted by number; driver and
// modalias empty. Malformed input yields what was found before the fault (nothing without a device
// descriptor); never reads out of bounds, never throws.
std::vector<UsbInterface> interfaces_from_descriptors(std::span<const std::uint8_t> bytes);

// `<sys_path>/descriptors`, up to the device descriptor plus the largest configuration; nullopt
// when absent or unreadable.
std::optional<std::vector<std::uint8_t>> read_descriptors_file(const std::string& sys_path);

}  // namespace vhp
