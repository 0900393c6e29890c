#pragma once
// What the testbed itself costs, with no daemon: a bare libudev monitor on a thread of the bench
// (when a uevent reaches a process under umockdev's preload), and a bare QMP client (one command on a
// fresh connection, as any daemon that borrows a VM's monitor must send it). bench_table's "floor"
// column is made of these.
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
#include <nlohmann/json.hpp>

#include "device/udev_ptr.h"
#include "support/sockets.h"

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

// One QMP command on a fresh connection to `socket`: the greeting read, capabilities negotiated (with
// `oob`, as the daemon does), the command sent; its answer (events skipped), or throws.
inline nlohmann::json qmp_once(const std::string& socket, const nlohmann::json& command) {
  vhp::test::Fd fd(vhp::test::connect_unix(socket));
  auto send = [&](const std::string& text) {
    std::string line = text + "\n";
    if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) throw std::runtime_error("QMP write failed");
  };
  auto answer = [&] {
    for (;;) {
      auto line = vhp::test::read_line_fd(fd.get(), std::chrono::seconds(10));
      if (line.empty()) throw std::runtime_error("no QMP answer from " + socket);
      auto reply = nlohmann::json::parse(line);
      if (reply.contains("return") || reply.contains("error") || reply.contains("QMP")) return reply;
    }
  };
  if (fd.get() < 0) throw std::runtime_error("cannot connect to " + socket);
  answer();  // the greeting
  send(R"({"execute":"qmp_capabilities","arguments":{"enable":["oob"]}})");
  answer();
  send(command.dump());
  return answer();
}

}  // namespace vhp::bench
