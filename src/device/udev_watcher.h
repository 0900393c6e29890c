#pragma once
// Keeps a DeviceRegistry in step with the host's USB, PCI and input (evdev) devices through libudev,
// driven by the event loop: no polling, no extra thread.
#include <functional>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "device/device_registry.h"
#include "device/udev_ptr.h"

namespace vhp {

class UdevWatcher {
 public:
  UdevWatcher(boost::asio::io_context& io, DeviceRegistry& registry);
  ~UdevWatcher();
  UdevWatcher(const UdevWatcher&) = delete;
  UdevWatcher& operator=(const UdevWatcher&) = delete;

  // Subscribes to udev events first, then enumerates, then applies the events that arrived during
  // the scan, so that nothing is missed or doubled. `after_subscribe` is a seam for tests.
  // Throws std::runtime_error when libudev cannot be set up.
  void start(const std::function<void()>& after_subscribe = {});
  void stop();

  // Re-reads every device and reconciles the registry (used at start and after lost events).
  void rescan();

 private:
  void wait_for_events();
  void drain();
  void handle(udev_device* dev);
  // The devices of a bus's or a class's sysfs directory, by path; nullopt when it cannot be listed.
  std::optional<std::vector<UdevDevicePtr>> devices_in(const char* dir);

  DeviceRegistry& registry_;
  UdevPtr udev_;
  UdevMonitorPtr monitor_;
  boost::asio::posix::stream_descriptor monitor_fd_;
};

}  // namespace vhp
