#pragma once
// What the testbed itself costs, with no daemon: a bare libudev monitor on a thread of the bench,
// for when a uevent reaches a process under umockdev's preload. bench_table's "floor" column is made
// of it and of bare QMP sessions (test::qmp_session).
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <libudev.h>

#include "device/udev_ptr.h"

namespace vhp::bench {

// USB device uevents as they arrive, each stamped the moment its monitor became readable.
class UeventProbe {
 public:
  using clock_type = std::chrono::steady_clock;

  UeventProbe() : udev_(udev_new()) {
    monitor_.reset(udev_monitor_new_from_netlink(udev_.get(), "udev"));
    if (!monitor_ || udev_monitor_filter_add_match_subsystem_devtype(monitor_.get(), "usb", "usb_device") < 0 ||
        udev_monitor_enable_receiving(monitor_.get()) < 0 || ::pipe(stop_) != 0)
      throw std::runtime_error("cannot open a udev monitor");
    thread_ = std::thread([this] { run(); });
  }
  ~UeventProbe() {
    ::close(stop_[1]);
    thread_.join();
    ::close(stop_[0]);
  }
  UeventProbe(const UeventProbe&) = delete;
  UeventProbe& operator=(const UeventProbe&) = delete;

  // When `action` for `sys_path` arrived (taken: the next wait needs the next one), within `limit`.
  std::optional<clock_type::time_point> wait(const std::string& action, const std::string& sys_path,
                                             std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    auto key = std::pair{action, sys_path};
    if (!arrived_.wait_for(lock, limit, [&] { return seen_.contains(key); })) return std::nullopt;
    auto at = seen_.at(key);
    seen_.erase(key);
    return at;
  }

 private:
  void run() {
    pollfd fds[2] = {{udev_monitor_get_fd(monitor_.get()), POLLIN, 0}, {stop_[0], POLLIN, 0}};
    while (::poll(fds, 2, -1) >= 0 && !(fds[1].revents & (POLLIN | POLLHUP))) {
      auto now = clock_type::now();
      while (vhp::UdevDevicePtr dev{udev_monitor_receive_device(monitor_.get())}) {
        const char* action = udev_device_get_action(dev.get());
        std::lock_guard lock(mutex_);
        seen_[{action ? action : "", udev_device_get_syspath(dev.get())}] = now;
        arrived_.notify_all();
      }
    }
  }

  vhp::UdevPtr udev_;
  vhp::UdevMonitorPtr monitor_;
  int stop_[2] = {-1, -1};
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::map<std::pair<std::string, std::string>, clock_type::time_point> seen_;
  std::thread thread_;
};

}  // namespace vhp::bench
