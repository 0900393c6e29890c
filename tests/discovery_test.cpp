// Enumeration of a realistic host through real libudev reading a umockdev sysfs.
#include <algorithm>
#include <cctype>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "device/udev_watcher.h"
#include "support/host_fixture.h"

namespace vhp::discovery_test {
namespace {

using test::Testbed;

class Discovery : public testing::Test {
 protected:
  void scan() { watcher.rescan(); }
  const UsbDevice& usb(const std::string& path) {
    auto* d = registry.find_usb(path);
    if (!d) throw std::runtime_error("not discovered: " + path);
    return *d;
  }
  const PciDevice& pci(const std::string& address) {
    auto* d = registry.find_pci(address);
    if (!d) throw std::runtime_error("not discovered: " + address);
    return *d;
  }

  Testbed tb;
  boost::asio::io_context io;
  DeviceRegistry registry;
  UdevWatcher watcher{io, registry};
};

TEST_F(Discovery, FindsEveryUsbDeviceOfARealisticHost) {
  auto host = test::add_realistic_host(tb);
  scan();
  EXPECT_EQ(registry.usb_devices().size(), 9u);  // interfaces are not devices
  EXPECT_EQ(registry.pci_devices().size(), 5u);
  for (const auto* path : {&host.root_hub, &host.root_hub3, &host.hub}) EXPECT_TRUE(usb(*path).is_hub) << *path;
  for (const auto* path : {&host.security_key, &host.stick, &host.webcam, &host.serial_adapter, &host.keyboard_a})
    EXPECT_FALSE(usb(*path).is_hub) << *path;
}

// A rescan (after lost uevents) forgets a device that left unseen and keeps the rest, on a host
// without input devices (no /sys/class/input at all).
TEST_F(Discovery, ARescanForgetsWhatLeftUnseen) {
  auto host = test::add_realistic_host(tb);
  scan();
  ASSERT_TRUE(registry.find_usb(host.stick));
  tb.unplug(host.stick);  // its remove uevent reaches no monitor: none is open
  scan();
  EXPECT_FALSE(registry.find_usb(host.stick));
  EXPECT_EQ(registry.usb_devices().size(), 8u);
  EXPECT_EQ(registry.pci_devices().size(), 5u);
}

TEST_F(Discovery, CompositeKeyBehindAHub) {
  auto host = test::add_realistic_host(tb);
  scan();
  const auto& d = usb(host.security_key);
  EXPECT_EQ(d.sys_path, host.security_key);
  EXPECT_EQ(d.sys_name, "1-2.1");
  EXPECT_EQ(d.devpath, "2.1");
  EXPECT_EQ(d.ports, (std::vector<int>{2, 1}));
  EXPECT_EQ(d.root_port(), 2);
  EXPECT_EQ(d.port_number(), 1);
  EXPECT_EQ(d.level(), 2);
  EXPECT_EQ(d.parent_sys_name, "1-2");
  EXPECT_EQ(d.device_node, "/dev/bus/usb/001/003");
  EXPECT_EQ(d.device_name(), "001/003");
  EXPECT_EQ(d.busnum, 1);
  EXPECT_EQ(d.devnum, 3);
  EXPECT_EQ(d.vid, "1050");
  EXPECT_EQ(d.pid, "0407");
  EXPECT_EQ(d.vendor_name, "Yubico.com");  // hwdb before the device's own "Yubico"
  EXPECT_EQ(d.product_name, "Yubikey 4/5 OTP+U2F+CCID");
  EXPECT_EQ(d.manufacturer, "Yubico");
  EXPECT_EQ(d.product, "YubiKey OTP+FIDO+CCID");
  EXPECT_EQ(d.serial, std::nullopt);
  EXPECT_EQ(d.interfaces, ":030101:030000:0b0000:");
  ASSERT_EQ(d.interface_list.size(), 3u);
  EXPECT_EQ(d.interface_list[0], (UsbInterface{0, 3, 1, 1}));
  EXPECT_EQ(d.interface_list[2], (UsbInterface{2, 0x0b, 0, 0}));
  EXPECT_EQ(d.speed, UsbSpeed::Full);
  EXPECT_EQ(d.driver, "usb");
  EXPECT_EQ(d.removable, "removable");
  EXPECT_TRUE(d.configured);
  EXPECT_FALSE(d.self_powered);
  EXPECT_EQ(d.language_id, 0x0409);
}

TEST_F(Discovery, RootHubAndSuperSpeed) {
  auto host = test::add_realistic_host(tb);
  scan();
  const auto& root = usb(host.root_hub3);
  EXPECT_EQ(root.devpath, "0");
  EXPECT_TRUE(root.ports.empty());
  EXPECT_EQ(root.level(), 0);
  EXPECT_EQ(root.parent_sys_name, "");
  EXPECT_EQ(root.speed, UsbSpeed::Super);
  EXPECT_TRUE(root.self_powered);
  EXPECT_EQ(usb(host.hub).parent_sys_name, "usb1");
}

TEST_F(Discovery, StickWebcamAndADeviceWithoutStrings) {
  auto host = test::add_realistic_host(tb);
  scan();
  const auto& stick = usb(host.stick);
  EXPECT_EQ(stick.serial, "4C530001230509115384");
  EXPECT_EQ(stick.interfaces, ":080650:");
  EXPECT_EQ(stick.vendor_name, "SanDisk");  // no hwdb entry: udev's ID_VENDOR
  EXPECT_EQ(stick.speed, UsbSpeed::High);

  const auto& cam = usb(host.webcam);
  EXPECT_EQ(cam.vendor_name, "Logitech, Inc.");
  EXPECT_EQ(cam.interfaces, ":0e0100:0e0200:010100:010200:");
  EXPECT_EQ(cam.device_class, 0xef);
  EXPECT_EQ(cam.device_subclass, 2);
  EXPECT_EQ(cam.device_protocol, 1);

  const auto& bare = usb(host.serial_adapter);
  EXPECT_EQ(bare.vendor_name, std::nullopt);
  EXPECT_EQ(bare.product_name, std::nullopt);
  EXPECT_EQ(bare.serial, std::nullopt);
  EXPECT_EQ(bare.language_id, 0);
  EXPECT_EQ(bare.removable, "fixed");
}

TEST_F(Discovery, IdenticalDevicesStayApart) {
  auto host = test::add_realistic_host(tb);
  scan();
  const auto& a = usb(host.keyboard_a);
  const auto& b = usb(host.keyboard_b);
  EXPECT_EQ(a.vid + a.pid, b.vid + b.pid);
  EXPECT_NE(a.device_node, b.device_node);
  EXPECT_EQ(a.root_port(), 6);
  EXPECT_EQ(b.root_port(), 7);
  EXPECT_EQ(a.product_name, "Dell_KB216_Wired_Keyboard");  // udev's encoded ID_MODEL, as the reference sends it
  EXPECT_EQ(a.speed, UsbSpeed::Low);
}

TEST_F(Discovery, WithoutUdevPropertiesFallsBackToSysfs) {
  auto host = test::add_realistic_host(tb);
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.4", spec.devnum = 20, spec.serial = "0012345";
  spec.udev_properties = false;
  spec.extra_properties.clear();
  auto path = tb.add_usb(spec);
  scan();
  const auto& d = usb(path);
  EXPECT_EQ(d.vid, "1050");
  EXPECT_EQ(d.vendor_name, "Yubico");  // the device's own string
  EXPECT_EQ(d.product_name, "YubiKey OTP+FIDO+CCID");
  EXPECT_EQ(d.serial, "0012345");
  EXPECT_EQ(d.interfaces, ":030101:030000:0b0000:");  // built from sysfs the way udev builds it
}

TEST_F(Discovery, PciDevicesWithIommuGroups) {
  test::add_realistic_host(tb);
  scan();
  const auto& xhci = pci("0000:00:14.0");
  EXPECT_EQ(xhci.driver, "xhci_hcd");
  EXPECT_EQ(xhci.vid, "8086");
  EXPECT_EQ(xhci.did, "A0ED");
  EXPECT_EQ(xhci.vendor_id, 0x8086);
  EXPECT_EQ(xhci.device_id, 0xa0ed);
  EXPECT_EQ(xhci.pci_class, 0x0c);
  EXPECT_EQ(xhci.pci_subclass, 0x03);
  EXPECT_EQ(xhci.pci_prog_if, 0x30);  // the whole byte: the reference's & 0xF would give 0
  EXPECT_EQ(xhci.subsystem_vendor_id, "17AA");
  EXPECT_EQ(xhci.subsystem_id, "22D8");
  EXPECT_EQ(xhci.iommu_group, 5);
  EXPECT_EQ(xhci.iommu_group_members, (std::vector<std::string>{"0000:00:14.0", "0000:00:14.2"}));
  EXPECT_EQ(xhci.device_name, "Tiger Lake-LP USB 3.2 Gen 2x1 xHCI Host Controller");

  EXPECT_EQ(pci("0000:00:14.2").driver, std::nullopt);
  EXPECT_EQ(pci("0000:00:1f.3").pci_prog_if, 0x80);
  EXPECT_EQ(pci("0000:00:02.0").iommu_group_members, (std::vector<std::string>{"0000:00:02.0"}));
}

TEST_F(Discovery, PciWithoutIommuAndWithoutUdevProperties) {
  auto path = tb.add_device("pci", "0000:03:00.0", "",
                            {{"vendor", "0x10de"}, {"device", "0x2504"}, {"class", "0x030000"},
                             {"subsystem_vendor", "0x1462"}, {"subsystem_device", "0x397d"}},
                            {});
  scan();
  const auto& gpu = pci("0000:03:00.0");
  EXPECT_EQ(gpu.sys_path, path);
  EXPECT_EQ(gpu.vid, "10DE");
  EXPECT_EQ(gpu.did, "2504");
  EXPECT_EQ(gpu.pci_class, 3);
  EXPECT_EQ(gpu.subsystem_vendor_id, "1462");
  EXPECT_EQ(gpu.iommu_group, std::nullopt);
  EXPECT_TRUE(gpu.iommu_group_members.empty());
}

struct Malformed {
  const char* what;
  test::Strings attributes;
  test::Strings properties;
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.what; }

class MalformedUsb : public Discovery, public testing::WithParamInterface<Malformed> {};

TEST_P(MalformedUsb, IsSkippedWhileOthersAreKept) {
  auto host = test::add_realistic_host(tb);
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.3", spec.devnum = 30;
  spec.attribute_overrides = GetParam().attributes;
  for (const auto& [k, v] : GetParam().properties) spec.extra_properties[k] = v;
  auto path = tb.add_usb(spec);
  scan();
  EXPECT_EQ(registry.find_usb(path), nullptr) << GetParam().what;
  EXPECT_EQ(registry.usb_devices().size(), 9u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedUsb,
    testing::Values(Malformed{"busnum", {{"busnum", "zz"}}, {{"BUSNUM", "x3"}}},
                    Malformed{"devnum missing", {{"devnum", ""}}, {{"DEVNUM", ""}}},
                    Malformed{"devnum zero", {{"devnum", "0"}}, {{"DEVNUM", "000"}}},
                    Malformed{"vendor id", {{"idVendor", "xyz1"}}, {{"ID_VENDOR_ID", "xyz1"}}},
                    Malformed{"product id too wide", {{"idProduct", "123456"}}, {{"ID_MODEL_ID", "123456"}}},
                    Malformed{"class", {{"bDeviceClass", "zz"}}, {}},
                    Malformed{"devpath", {{"devpath", "2..1"}}, {}}),
    [](const testing::TestParamInfo<Malformed>& info) {
      std::string name = info.param.what;
      for (auto& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

TEST_F(Discovery, UnknownSpeedIsNotFatal) {
  auto host = test::add_realistic_host(tb);
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.3", spec.devnum = 30;
  spec.attribute_overrides = {{"speed", "warp"}, {"removable", ""}};
  auto path = tb.add_usb(spec);
  scan();
  EXPECT_EQ(usb(path).speed, UsbSpeed::Unknown);
  EXPECT_EQ(usb(path).removable, "");
}

TEST_F(Discovery, MalformedPciIsSkipped) {
  test::add_realistic_host(tb);
  tb.add_device("pci", "0000:04:00.0", "", {{"vendor", "0xzzzz"}, {"device", "0x1"}}, {});
  tb.add_device("pci", "0000:05:00.0", "", {{"vendor", "0x8086"}, {"device", "0x1"}, {"class", "0x1234567"}}, {});
  scan();
  EXPECT_EQ(registry.find_pci("0000:04:00.0"), nullptr);
  EXPECT_EQ(registry.find_pci("0000:05:00.0"), nullptr);
  EXPECT_EQ(registry.pci_devices().size(), 5u);
}

TEST_F(Discovery, FiveHundredDevices) {
  auto xhci = tb.add_pci({.address = "0000:00:14.0", .class_code = 0x0c0330});
  auto root = tb.add_usb({.parent = xhci, .name = "usb1", .busnum = 1, .devnum = 1, .cls = 9, .interfaces = {{9, 0, 0, "hub"}}});
  for (int n = 0; n < 499; ++n) {
    int hub = n / 7, port = n % 7 + 1;  // 72 seven-port hubs' worth of devices behind root ports 1..72
    tb.add_usb({.parent = root, .name = "1-" + std::to_string(hub + 1) + "." + std::to_string(port), .busnum = 1,
                .devnum = n + 2, .vid = "0781", .pid = "5581", .serial = std::to_string(n),
                .interfaces = {{8, 6, 0x50, "usb-storage"}}});
  }
  scan();
  EXPECT_EQ(registry.usb_devices().size(), 500u);
  EXPECT_EQ(registry.find_usb(root + "/1-72.2")->serial, "498");
}

}  // namespace
}  // namespace vhp::discovery_test
