#pragma once
// Block devices and the host's mounts, as sysfs and mountinfo show them.
#include <optional>
#include <string>
#include <vector>

namespace vhp {

// "/dev/sdX" for the whole-disk block device below a USB device's sysfs path, if it has one.
std::optional<std::string> block_device_node(const std::string& usb_sys_path);

// The host's mounted filesystems and active swap that live on block devices below `sys_path` (a
// disk controller), directly, through an NVMe subsystem's namespace heads, or through holders
// (device-mapper, md): "/boot (nvme0n1p1)", "swap (nvme0n1p3)". A mount is matched by its device
// number, or by its source device where the number is anonymous (btrfs shows 0:N).
std::vector<std::string> mounts_behind(const std::string& sys_path, const std::string& sys_root = "/sys",
                                       const std::string& mountinfo = "/proc/self/mountinfo",
                                       const std::string& swaps = "/proc/swaps");

}  // namespace vhp
