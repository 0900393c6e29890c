#pragma once
// Block devices and the host's mounts, as sysfs and mountinfo show them.
#include <optional>
#include <string>
#include <vector>

namespace vhp {

// "/dev/sdX" for the whole-disk block device below a USB device's sysfs path, if it has one.
std::optional<std::string> block_device_node(const std::string& usb_sys_path);

// Where the kernel's interfaces are; tests point them into a umockdev testbed or scratch files.
struct HostInterfaces {
  std::string sys = "/sys";
  std::string dev = "/dev";
  std::string mountinfo = "/proc/self/mountinfo";
  std::string swaps = "/proc/swaps";
};

// A filesystem the host has mounted (or swap it uses) on a block device.
struct HostMount {
  std::string mount_point;  // "/boot", or "swap"
  std::string device;       // the kernel's name: "nvme0n1p1", "dm-0"
  std::string describe() const { return mount_point + " (" + device + ")"; }
  // What the host boots and runs from: /, /boot and below, /usr, /nix (NixOS, Ghaf's base).
  bool boots_the_host() const;
};

// The host's mounted filesystems and active swap that live on block devices below `sys_path` (a
// disk controller, a USB disk), directly, through an NVMe subsystem's namespace heads, or through
// holders (device-mapper, LUKS, LVM, md). A mount is matched by its device number, or by its
// source device where the number is anonymous (btrfs shows 0:N).
std::vector<HostMount> mounts_behind(const std::string& sys_path, const HostInterfaces& host = {});

// The host's block devices with their resolved sysfs paths, read once for many questions: a device
// list asks of every storage device in turn what it holds mounted and (any_below) whether its block
// devices are there at all (a USB disk's appear a moment after the device).
class BlockDevices {
 public:
  explicit BlockDevices(HostInterfaces host);
  std::vector<HostMount> mounts_behind(const std::string& sys_path) const;
  bool any_below(const std::string& sys_path) const;

 private:
  std::vector<std::string> below(const std::string& sys_path) const;  // the names of those below it

  HostInterfaces host_;
  std::vector<std::pair<std::string, std::string>> resolved_;  // (name, canonical sysfs path)
};
// What held_by_host's answers depend on, as one string: the mount table, the active swap and the
// names of the block devices. The same string, the same answers: a cached list is still right.
// Cheap next to BlockDevices (three reads, no path resolution).
std::string storage_fingerprint(const HostInterfaces& host);

// "/boot (nvme0n1p1), swap (nvme0n1p3)".
std::string describe(const std::vector<HostMount>& mounts);

// One line of /proc/self/mountinfo: "36 35 259:1 / /boot rw,… - vfat /dev/nvme0n1p1 rw" → its
// device (major:minor), mount point and source; nothing for a line too short. Pure: fuzzed.
struct MountinfoLine {
  std::string dev, mount_point, source;
};
std::optional<MountinfoLine> parse_mountinfo_line(const std::string& line);

}  // namespace vhp
