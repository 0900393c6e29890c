#include "device/sysfs_dir.h"

#include <array>
#include <cerrno>
#include <climits>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

namespace vhp {

SysfsDir::SysfsDir(const std::string& path) : fd_(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}

SysfsDir::~SysfsDir() {
  if (fd_ >= 0) ::close(fd_);
}

// -1 when absent, a symlink, or not readable (or the directory itself could not be opened).
int SysfsDir::open_attribute(const char* name) const {
  return fd_ < 0 ? -1 : ::openat(fd_, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
}

std::optional<std::size_t> SysfsDir::read_bytes(const char* name, std::span<std::uint8_t> buffer) const {
  int fd = open_attribute(name);
  if (fd < 0) return std::nullopt;
  std::size_t filled = 0;
  bool failed = false;
  while (filled < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = n < 0;  // EISDIR for a directory, EIO or EACCES for an attribute the kernel will not show
      break;
    }
    filled += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (failed) return std::nullopt;
  return filled;
}

// One read: the kernel hands a text attribute (at most a page) over whole in the first.
std::optional<std::string> SysfsDir::read(const char* name) const {
  int fd = open_attribute(name);
  if (fd < 0) return std::nullopt;
  std::array<char, 4096> buffer;
  ssize_t n;
  do n = ::read(fd, buffer.data(), buffer.size());
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n < 0) return std::nullopt;
  return std::string(buffer.data(), static_cast<std::size_t>(n));
}

std::optional<std::string> SysfsDir::link_name(const char* name) const {
  if (fd_ < 0) return std::nullopt;
  std::array<char, PATH_MAX> target;
  ssize_t n = ::readlinkat(fd_, name, target.data(), target.size());
  if (n <= 0 || static_cast<std::size_t>(n) == target.size()) return std::nullopt;
  std::string_view text(target.data(), static_cast<std::size_t>(n));
  return std::string(text.substr(text.rfind('/') + 1));
}

}  // namespace vhp
