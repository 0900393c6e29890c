#include "device/udev_watcher.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string_view>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "device/udev_reader.h"

namespace vhp {
namespace {

constexpr int kReceiveBufferBytes = 16 * 1024 * 1024;  // room for a burst of uevents
constexpr int kMaxEventsPerWakeup = 256;                // then yield to other work on the loop
constexpr const char* kUsbDevices = "/sys/bus/usb/devices";  // its devices and their interfaces

// A USB interface's kernel name is "<device>:<configuration>.<interface>"; no USB device's has a colon.
bool is_usb_interface(std::string_view sys_path) {
  return sys_path.find(':', sys_path.rfind('/') + 1) != std::string_view::npos;
}

std::string_view action_of(udev_device* dev) {
  const char* action = udev_device_get_action(dev);
  return action ? action : "";
}

}  // namespace

UdevWatcher::UdevWatcher(boost::asio::io_context& io, DeviceRegistry& registry)
    : registry_(registry), udev_(udev_new()), monitor_fd_(io) {
  if (!udev_) throw std::runtime_error("udev_new failed");
}

UdevWatcher::~UdevWatcher() { stop(); }

void UdevWatcher::start(const std::function<void()>& after_subscribe) {
  monitor_.reset(udev_monitor_new_from_netlink(udev_.get(), "udev"));
  if (!monitor_) throw std::runtime_error("cannot open the udev monitor");
  udev_monitor_filter_add_match_subsystem_devtype(monitor_.get(), "usb", "usb_device");
  udev_monitor_filter_add_match_subsystem_devtype(monitor_.get(), "pci", nullptr);
  udev_monitor_filter_add_match_subsystem_devtype(monitor_.get(), "input", nullptr);
  if (udev_monitor_set_receive_buffer_size(monitor_.get(), kReceiveBufferBytes) < 0)
    spdlog::debug("udev: could not enlarge the monitor's receive buffer");
  if (udev_monitor_enable_receiving(monitor_.get()) < 0) throw std::runtime_error("cannot subscribe to udev events");
  int fd = ::dup(udev_monitor_get_fd(monitor_.get()));
  if (fd < 0) throw std::runtime_error("dup of the udev monitor fd failed");
  monitor_fd_.assign(fd);

  if (after_subscribe) after_subscribe();
  rescan();
  drain();
  wait_for_events();
}

void UdevWatcher::stop() {
  boost::system::error_code ignored;
  monitor_fd_.close(ignored);
  monitor_.reset();
}

void UdevWatcher::rescan() {
  std::set<std::string> usb_seen, pci_seen, evdev_seen;
  for (const char* dir : {kUsbDevices, "/sys/bus/pci/devices", "/sys/class/input"}) {
    auto devices = devices_in(dir);
    if (!devices) return;  // keep what we know rather than erase everything
    for (const auto& dev : *devices) {
      try {
        if (is_usb_device(dev.get())) {
          auto d = read_usb_device(dev.get());
          usb_seen.insert(d.sys_path);
          registry_.upsert(std::move(d));
        } else if (is_pci_device(dev.get())) {
          auto d = read_pci_device(dev.get());
          pci_seen.insert(d.address);
          registry_.upsert(std::move(d));
        } else if (is_evdev_device(dev.get())) {
          auto d = read_evdev_device(dev.get());
          evdev_seen.insert(d.sys_path);
          registry_.upsert(std::move(d));
        }
      } catch (const DeviceReadError& err) {
        spdlog::warn("udev: skipping {}: {}", udev_device_get_syspath(dev.get()), err.what());
      }
    }
  }
  for (const auto& d : registry_.usb_devices())
    if (!usb_seen.contains(d.sys_path)) registry_.erase_usb(d.sys_path);
  for (const auto& d : registry_.pci_devices())
    if (!pci_seen.contains(d.address)) registry_.erase_pci(d.address);
  for (const auto& d : registry_.evdev_devices())
    if (!evdev_seen.contains(d.sys_path)) registry_.erase_evdev(d.sys_path);
}

// Listed here rather than by udev_enumerate, which creates a libudev device for every entry to
// test its matches and hands back only names: each device was resolved twice, and every USB
// interface once for nothing (6–9 of a 25 ms start under umockdev, docs/BENCHMARKS.md).
std::optional<std::vector<UdevDevicePtr>> UdevWatcher::devices_in(const char* dir) {
  std::vector<UdevDevicePtr> devices;
  std::error_code ec;
  std::filesystem::directory_iterator entries(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return devices;  // a host without that bus or class
  for (; !ec && entries != std::filesystem::directory_iterator(); entries.increment(ec)) {
    auto path = entries->path().string();
    if (std::string_view(dir) == kUsbDevices && is_usb_interface(path)) continue;  // not worth a read: its device has it in its descriptors
    if (UdevDevicePtr dev{udev_device_new_from_syspath(udev_.get(), path.c_str())}) devices.push_back(std::move(dev));
    // else: vanished between listing and reading
  }
  if (ec) {
    spdlog::error("udev: listing {} failed: {}", dir, ec.message());
    return std::nullopt;
  }
  // By path, as udev_enumerate sorts: a hub before the devices behind it.
  std::ranges::sort(devices, {}, [](const UdevDevicePtr& d) { return std::string_view(udev_device_get_syspath(d.get())); });
  return devices;
}

void UdevWatcher::wait_for_events() {
  monitor_fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // closed by stop()
    drain();
    wait_for_events();
  });
}

void UdevWatcher::drain() {
  for (int n = 0; monitor_ && n < kMaxEventsPerWakeup; ++n) {
    errno = 0;
    UdevDevicePtr dev(udev_monitor_receive_device(monitor_.get()));
    if (dev) {
      handle(dev.get());
      continue;
    }
    if (errno == ENOBUFS) {  // the kernel dropped events: what we hold may be stale
      spdlog::warn("udev: event queue overflowed; rescanning all devices");
      rescan();
      continue;
    }
    return;  // nothing more for now
  }
}

void UdevWatcher::handle(udev_device* dev) {
  auto action = action_of(dev);
  bool usb = is_usb_device(dev), pci = !usb && is_pci_device(dev);
  bool evdev = !usb && !pci && is_evdev_device(dev);
  if (action == "remove" && !usb && !pci) {  // an input device's last uevent may lack the properties that named it
    registry_.erase_evdev(udev_device_get_syspath(dev));
    return;
  }
  if (!usb && !pci && !evdev) return;
  spdlog::debug("udev: {} {}", action, udev_device_get_syspath(dev));
  if (action == "remove") {
    if (usb) registry_.erase_usb(udev_device_get_syspath(dev));
    else registry_.erase_pci(udev_device_get_sysname(dev));
    return;
  }
  // add, change, bind, unbind, move: the device is (still) there; read what it is now.
  try {
    if (usb) registry_.upsert(read_usb_device(dev));
    else if (pci) registry_.upsert(read_pci_device(dev));
    else registry_.upsert(read_evdev_device(dev));
  } catch (const DeviceReadError& err) {
    spdlog::warn("udev: ignoring '{}' of {}: {}", action, udev_device_get_syspath(dev), err.what());
  }
}

}  // namespace vhp
