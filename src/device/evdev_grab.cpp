#include "device/evdev_grab.h"

#include <cerrno>

#include <fcntl.h>
#include <linux/input.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace vhp {

bool evdev_grabbed_elsewhere(const std::string& device_node) {
  int fd = ::open(device_node.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  bool busy = false;
  if (::ioctl(fd, EVIOCGRAB, 1) == 0) ::ioctl(fd, EVIOCGRAB, 0);
  else busy = errno == EBUSY;
  ::close(fd);
  return busy;
}

}  // namespace vhp
