#include "vmm/socket_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace vhp {

std::string socket_identity(const std::string& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_TYPE | STATX_INO | STATX_BTIME, &sx) != 0 || !S_ISSOCK(sx.stx_mode)) return "";
  // The birth time where the filesystem keeps one: an inode number can come back at once, a change
  // time moves with a chmod.
  std::string born;
  if (sx.stx_mask & STATX_BTIME) born = std::to_string(sx.stx_btime.tv_sec) + "." + std::to_string(sx.stx_btime.tv_nsec);
  return std::to_string(makedev(sx.stx_dev_major, sx.stx_dev_minor)) + ":" + std::to_string(sx.stx_ino) + ":" + born;
}

}  // namespace vhp
