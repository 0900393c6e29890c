#include <gtest/gtest.h>

#include "device/device_registry.h"

namespace vhp::registry_test {
namespace {

UsbDevice usb(const std::string& name, int devnum) {
  UsbDevice d;
  d.sys_path = "/sys/devices/usb1/" + name;
  d.sys_name = name;
  d.busnum = 1, d.devnum = devnum;
  d.vid = "1050", d.pid = "0407";
  return d;
}

struct Recorder {
  std::vector<std::string> lines;
  void operator()(const DeviceEvent& e) {
    std::visit([&](const auto& ev) {
      using T = std::decay_t<decltype(ev)>;
      if constexpr (std::is_same_v<T, UsbEvent>)
        lines.push_back(std::string(to_string(ev.action)) + " " + ev.device.sys_name + "/" + std::to_string(ev.device.devnum));
      else if constexpr (std::is_same_v<T, PciEvent>)
        lines.push_back(std::string(to_string(ev.action)) + " " + ev.device.address);
      else
        lines.push_back(std::string(to_string(ev.action)) + " " + ev.device.sys_name);
    }, e);
  }
};

TEST(DeviceRegistry, PublishesAddChangeRemoveOnce) {
  DeviceRegistry r;
  Recorder rec;
  auto sub = r.subscribe(std::ref(rec));
  r.upsert(usb("1-2", 3));
  r.upsert(usb("1-2", 3));  // identical: nothing
  auto changed = usb("1-2", 3);
  changed.driver = "usb";
  r.upsert(changed);
  r.erase_usb("/sys/devices/usb1/1-2");
  r.erase_usb("/sys/devices/usb1/1-2");  // unknown now: nothing
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"added 1-2/3", "changed 1-2/3", "removed 1-2/3"}));
  EXPECT_TRUE(r.usb_devices().empty());
}

TEST(DeviceRegistry, ReplugAtTheSamePathIsRemoveThenAdd) {
  DeviceRegistry r;
  Recorder rec;
  auto sub = r.subscribe(std::ref(rec));
  r.upsert(usb("1-2", 3));
  r.upsert(usb("1-2", 9));  // remove event lost, device came back with a new address
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"added 1-2/3", "removed 1-2/3", "added 1-2/9"}));
  ASSERT_EQ(r.usb_devices().size(), 1u);
  EXPECT_EQ(r.usb_devices()[0].devnum, 9);
}

TEST(DeviceRegistry, RemovedEventCarriesTheCapturedData) {
  DeviceRegistry r;
  auto d = usb("1-2", 3);
  d.product_name = "YubiKey";
  r.upsert(d);
  std::optional<UsbDevice> removed;
  auto sub = r.subscribe([&](const DeviceEvent& e) { removed = std::get<UsbEvent>(e).device; });
  r.erase_usb(d.sys_path);
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->product_name, "YubiKey");
}

TEST(DeviceRegistry, ListenersMayUnsubscribeThemselvesAndOthersDuringDispatch) {
  DeviceRegistry r;
  int first = 0, second = 0;
  DeviceRegistry::Subscription a, b;
  a = r.subscribe([&](const DeviceEvent&) {
    ++first;
    b = {};  // drop the other listener mid-dispatch: it must not be called with this event
    a = {};
  });
  b = r.subscribe([&](const DeviceEvent&) { ++second; });
  r.upsert(usb("1-2", 3));
  r.upsert(usb("1-3", 4));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
}

TEST(DeviceRegistry, PciUpsertAndErase) {
  DeviceRegistry r;
  Recorder rec;
  auto sub = r.subscribe(std::ref(rec));
  PciDevice p;
  p.address = "0000:00:14.3";
  r.upsert(p);
  p.driver = "vfio-pci";  // rebinding is a change
  r.upsert(p);
  r.erase_pci("0000:00:14.3");
  EXPECT_EQ(rec.lines, (std::vector<std::string>{"added 0000:00:14.3", "changed 0000:00:14.3", "removed 0000:00:14.3"}));
  EXPECT_EQ(r.find_pci("0000:00:14.3"), nullptr);
}

}  // namespace
}  // namespace vhp::registry_test
