#pragma once
// USB interfaces read from the raw sysfs `descriptors` file: the device descriptor, then each
// configuration with all it contains. The kernel fills it before the device's add uevent, before it
// configures the device (and never does for an unauthorized one), so it tells the interfaces where
// the interface directories may not exist yet, in one read.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "device/sysfs_dir.h"
#include "device/usb_device.h"

namespace vhp {

// Alternate setting 0 of each interface of the configuration whose bConfigurationValue is
// `configuration` (the active one), else of the first (the one the kernel chooses by default for
// nearly all devices), sorted by number. Malformed input yields what was found before the fault
// (nothing without a device descriptor); never reads out of bounds, never throws.
std::vector<UsbInterface> interfaces_from_descriptors(std::span<const std::uint8_t> bytes,
                                                      std::optional<int> configuration = std::nullopt);

// The device directory's `descriptors`, up to the device descriptor plus the largest configuration;
// nullopt when absent, unreadable or a symlink.
std::optional<std::vector<std::uint8_t>> read_descriptors_file(const SysfsDir& device);

}  // namespace vhp
