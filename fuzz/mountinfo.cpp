// libFuzzer: arbitrary bytes as lines of /proc/self/mountinfo (the boot-disk check reads it).
// Each line is read or skipped; a line read has its device and mount point.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "device/block_devices.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  for (std::string line; std::getline(in, line);)
    if (auto m = vhp::parse_mountinfo_line(line); m && (m->dev.empty() || m->mount_point.empty())) std::abort();
  return 0;
}
