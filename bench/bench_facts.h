#pragma once
// Small facts the benchmarks share: an integer option from the command line, a process's resident
// memory, and the device node an event names.
#include <sys/types.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace vhp::bench {

// "--name N" clamped to [low, high], or fallback when absent.
inline int option(int argc, char** argv, const std::string& name, int fallback, int low, int high) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::clamp(std::atoi(argv[i + 1]), low, high);
  return fallback;
}

// VmRSS of a process in KiB, -1 when it cannot be read.
inline long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

// The device node the API reports for a USB device: /dev/bus/usb/BBB/DDD.
inline std::string node_of(int busnum, int devnum) {
  char node[32];
  std::snprintf(node, sizeof node, "/dev/bus/usb/%03d/%03d", busnum, devnum);
  return node;
}

}  // namespace vhp::bench
