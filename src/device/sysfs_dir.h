#pragma once
// One sysfs directory opened once and its attributes read relative to it: an attribute is one
// openat and one read, where libudev's sysattr lookup stats, opens and fstats its whole path.
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace vhp {

class SysfsDir {
 public:
  explicit SysfsDir(const std::string& path);  // a directory that cannot be opened reads as empty
  ~SysfsDir();
  SysfsDir(const SysfsDir&) = delete;
  SysfsDir& operator=(const SysfsDir&) = delete;

  // A text attribute (up to a page, one read), its trailing newline kept; nullopt when absent,
  // unreadable or a directory.
  // `name` may reach a neighbour ("../devnum"); symlinks are not followed for the last component.
  std::optional<std::string> read(const char* name) const;
  // Up to `buffer.size()` bytes of a binary attribute; nullopt when absent or unreadable.
  std::optional<std::size_t> read_bytes(const char* name, std::span<std::uint8_t> buffer) const;
  // The last component of a symlink's target ("driver" → "usb"); nullopt when there is no link.
  std::optional<std::string> link_name(const char* name) const;

 private:
  int open_attribute(const char* name) const;
  int fd_ = -1;
};

}  // namespace vhp
