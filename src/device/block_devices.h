#pragma once
#include <optional>
#include <string>

namespace vhp {

// "/dev/sdX" for the whole-disk block device below a USB device's sysfs path, if it has one.
std::optional<std::string> block_device_node(const std::string& usb_sys_path);

}  // namespace vhp
