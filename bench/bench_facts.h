#pragma once
// Small facts the benchmarks share: an integer option from the command line, a process's resident
// memory and CPU time, and the device node an event names.
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

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

// The CPU time a process's threads have run, in ns (each thread's schedstat); 0 once it is gone.
inline long long cpu_ns(pid_t pid) {
  long long sum = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    long long ns = 0;
    if (std::ifstream(task.path() / "schedstat") >> ns) sum += ns;
  }
  return sum;
}

// Waits until the processes, together, ran under 1 ms in the last 100 ms (a QEMU whose monitor
// already accepts is still initializing its machine for tens of ms, on the cores a measured start
// needs); gives up after `limit`. Returns whether they went quiet.
inline bool wait_until_quiet(const std::vector<pid_t>& pids, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto total = [&] {
    long long sum = 0;
    for (pid_t pid : pids) sum += cpu_ns(pid);
    return sum;
  };
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (long long before = total(); std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    long long now = total();
    if (now - before < 1'000'000) return true;
    before = now;
  }
  return false;
}

// The device node the API reports for a USB device: /dev/bus/usb/BBB/DDD.
inline std::string node_of(int busnum, int devnum) {
  char node[32];
  std::snprintf(node, sizeof node, "/dev/bus/usb/%03d/%03d", busnum, devnum);
  return node;
}

}  // namespace vhp::bench
