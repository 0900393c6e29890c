// Hotplug through real uevents: umockdev's netlink emulation feeding libudev's monitor on our loop.
#include <fstream>
#include <map>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "device/udev_watcher.h"
#include "support/event_loop.h"
#include "support/host_fixture.h"

namespace vhp::hotplug_test {
namespace {

using test::run_until;

// Counts what the registry publishes, per device path and action.
struct EventLog {
  std::map<std::string, std::map<DeviceAction, int>> counts;
  std::vector<UsbDevice> removed;
  void operator()(const DeviceEvent& e) {
    if (auto* u = std::get_if<UsbEvent>(&e)) {
      ++counts[u->device.sys_path][u->action];
      if (u->action == DeviceAction::Removed) removed.push_back(u->device);
    } else {
      const auto& p = std::get<PciEvent>(e);
      ++counts[p.device.sys_path][p.action];
    }
  }
  int count(const std::string& path, DeviceAction a) { return counts[path][a]; }
};

class Hotplug : public testing::Test {
 protected:
  void SetUp() override { host = test::add_realistic_host(tb); }

  // A real plug: sysfs entries appear, then udev announces the device.
  std::string plug(const test::UsbSpec& spec) {
    return tb.plug(spec);
  }
  bool has_interfaces(const std::string& path, size_t n) {
    auto* d = registry.find_usb(path);
    return d && d->interface_list.size() == n;
  }

  test::Testbed tb;
  test::HostPaths host;
  boost::asio::io_context io;
  DeviceRegistry registry;
  EventLog log;
  DeviceRegistry::Subscription sub = registry.subscribe(std::ref(log));
  UdevWatcher watcher{io, registry};
};

TEST_F(Hotplug, PlugAndUnplug) {
  watcher.start();
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40, spec.serial = "9001";
  auto path = plug(spec);
  ASSERT_TRUE(run_until(io, [&] { return has_interfaces(path, 3); }));
  EXPECT_EQ(registry.find_usb(path)->serial, "9001");
  EXPECT_EQ(log.count(path, DeviceAction::Added), 1);

  tb.unplug(path);
  ASSERT_TRUE(run_until(io, [&] { return registry.find_usb(path) == nullptr; }));
  EXPECT_EQ(log.count(path, DeviceAction::Removed), 1);
  ASSERT_EQ(log.removed.size(), 1u);
  // Captured at add time: sysfs is gone by now.
  EXPECT_EQ(log.removed[0].product_name, "Yubikey 4/5 OTP+U2F+CCID");
  EXPECT_EQ(log.removed[0].device_node, "/dev/bus/usb/001/040");
  EXPECT_EQ(log.removed[0].interface_list.size(), 3u);
}

TEST_F(Hotplug, EventsDuringTheStartupScanAreNeitherMissedNorDoubled) {
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40;
  std::string added;
  watcher.start([&] {  // subscribed, not yet enumerated
    added = plug(spec);
    tb.unplug(host.stick);
  });
  // The plugged device was both enumerated and announced: one Added.
  ASSERT_NE(registry.find_usb(added), nullptr);
  EXPECT_EQ(log.count(added, DeviceAction::Added), 1);
  // The unplugged stick was never seen: no Added, and its late remove event is harmless.
  EXPECT_EQ(registry.find_usb(host.stick), nullptr);
  EXPECT_EQ(log.count(host.stick, DeviceAction::Added), 0);
  EXPECT_EQ(log.count(host.stick, DeviceAction::Removed), 0);
  // Everything else was announced exactly once.
  EXPECT_EQ(registry.usb_devices().size(), 9u);
  for (const auto& d : registry.usb_devices()) EXPECT_EQ(log.count(d.sys_path, DeviceAction::Added), 1) << d.sys_path;
  // And nothing was left queued to double up later: uevents are handled in order, so once a marker
  // sent now has been handled, everything queued before it has been too.
  auto marker = test::security_key_spec(host.hub);
  marker.name = "1-2.3", marker.devnum = 41;
  auto marker_path = plug(marker);
  ASSERT_TRUE(run_until(io, [&] { return registry.find_usb(marker_path) != nullptr; }));
  EXPECT_EQ(log.count(added, DeviceAction::Added), 1);
}

TEST_F(Hotplug, BindAndChangeUpdateTheDevice) {
  watcher.start();
  tb.set_link(host.serial_adapter, "driver", "../../../bus/usb/drivers/usbip-host");  // from "usb"
  tb.uevent(host.serial_adapter, "bind");
  ASSERT_TRUE(run_until(io, [&] { return registry.find_usb(host.serial_adapter)->driver == "usbip-host"; }));
  EXPECT_EQ(log.count(host.serial_adapter, DeviceAction::Changed), 1);

  tb.set_link(host.wifi, "driver", "../../bus/pci/drivers/vfio-pci");
  tb.uevent(host.wifi, "bind");
  ASSERT_TRUE(run_until(io, [&] { return registry.find_pci("0000:00:14.3")->driver == "vfio-pci"; }));

  tb.uevent(host.keyboard_a, "change");  // nothing differs: nothing published
  // A marker after it: once that is handled, the change before it has been too (uevents are in order).
  tb.set_link(host.serial_adapter, "driver", "../../../bus/usb/drivers/usb");
  tb.uevent(host.serial_adapter, "bind");
  ASSERT_TRUE(run_until(io, [&] { return registry.find_usb(host.serial_adapter)->driver == "usb"; }));
  EXPECT_EQ(log.count(host.keyboard_a, DeviceAction::Changed), 0);
}

TEST_F(Hotplug, PciAddAndRemove) {
  watcher.start();
  auto path = tb.add_pci({.address = "0000:05:00.0", .vendor = "10ec", .device = "8168", .class_code = 0x020000,
                          .driver = "r8169", .iommu_group = 14});
  tb.uevent(path, "add");
  ASSERT_TRUE(run_until(io, [&] { return registry.find_pci("0000:05:00.0") != nullptr; }));
  EXPECT_EQ(registry.find_pci("0000:05:00.0")->iommu_group, 14);
  tb.unplug(path);
  ASSERT_TRUE(run_until(io, [&] { return registry.find_pci("0000:05:00.0") == nullptr; }));
  EXPECT_EQ(log.count(path, DeviceAction::Removed), 1);
}

TEST_F(Hotplug, MalformedEventIsSkippedAndTheWatcherGoesOn) {
  watcher.start();
  auto bad = test::security_key_spec(host.hub);
  bad.name = "1-2.2", bad.devnum = 40;
  bad.attribute_overrides = {{"idVendor", "nope"}};
  bad.extra_properties["ID_VENDOR_ID"] = "nope";
  auto bad_path = plug(bad);
  auto good = test::security_key_spec(host.hub);
  good.name = "1-2.3", good.devnum = 41;
  auto good_path = plug(good);
  ASSERT_TRUE(run_until(io, [&] { return has_interfaces(good_path, 3); }));
  EXPECT_EQ(registry.find_usb(bad_path), nullptr);
  EXPECT_EQ(log.count(bad_path, DeviceAction::Added), 0);
}

TEST_F(Hotplug, RemoveOfADeviceThatWasNeverRegisteredIsIgnored) {
  watcher.start();
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.2", spec.devnum = 40;
  spec.attribute_overrides = {{"busnum", "x"}};
  spec.extra_properties["BUSNUM"] = "x";
  auto path = plug(spec);  // skipped as malformed
  tb.unplug(path);
  tb.uevent(host.keyboard_b, "remove");  // a known one, to know when the first was processed
  ASSERT_TRUE(run_until(io, [&] { return registry.find_usb(host.keyboard_b) == nullptr; }));
  EXPECT_EQ(log.count(path, DeviceAction::Added), 0);
  EXPECT_EQ(log.count(path, DeviceAction::Removed), 0);
  EXPECT_EQ(registry.usb_devices().size(), 8u);
}

int unix_datagram_queue_length() {
  int n = 0;
  std::ifstream("/proc/sys/net/unix/max_dgram_qlen") >> n;
  return n;
}

TEST_F(Hotplug, BurstOfTwoHundredPlugsWithoutDraining) {
  if (unix_datagram_queue_length() < 1000) GTEST_SKIP() << "needs root for a private netns (umockdev queue limit)";
  watcher.start();
  std::vector<std::string> paths;
  for (int n = 0; n < 200; ++n) {  // all queued before the loop runs once
    paths.push_back(plug({.parent = host.root_hub, .name = "1-" + std::to_string(10 + n), .busnum = 1,
                          .devnum = 100 + n, .vid = "0781", .pid = "5581", .serial = std::to_string(n),
                          .interfaces = {{8, 6, 0x50, "usb-storage"}}}));
  }
  ASSERT_TRUE(run_until(io, [&] { return registry.usb_devices().size() == 209; }));
  for (const auto& p : paths) EXPECT_EQ(log.count(p, DeviceAction::Added), 1) << p;
}

}  // namespace
}  // namespace vhp::hotplug_test
