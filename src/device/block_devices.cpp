#include "device/block_devices.h"

#include <filesystem>

namespace vhp {

namespace fs = std::filesystem;

std::optional<std::string> block_device_node(const std::string& usb_sys_path) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/class/block", ec)) {
    if (fs::exists(entry.path() / "partition", ec)) continue;  // the disk, not its partitions
    auto target = fs::canonical(entry.path(), ec);
    if (!ec && target.string().starts_with(usb_sys_path + "/")) return "/dev/" + entry.path().filename().string();
  }
  return std::nullopt;
}

}  // namespace vhp
