// usbAuthorization in-process: the real Daemon on a umockdev host, its writes landing in the
// testbed's sysfs (authorized_default, authorized), its VMs in-process fakes.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/in_process_daemon.h"

namespace vhp::usb_authorization_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_until;

constexpr const char* kCamNode = "/dev/bus/usb/001/005";

class UsbAuthorization : public test::InProcessDaemon {
 protected:
  UsbAuthorization() {
    config = json::parse(R"({
      "usbPassthrough": [{"targetVm": "vm1", "allow": [{"vendorId": "046d", "productId": "0825"}]},
                         {"targetVm": "vm2", "allow": [{"interfaceClass": 8}]}],
      "usbAuthorization": {"enable": true, "deauthorizeUnmatched": true,
                           "hostAllow": [{"vendorId": "413c", "productId": "2113", "description": "the keyboards"}]}})");
    write_config(config);
    fs::create_directories(sys("/sys/module/usbcore/parameters"));
    put("/sys/module/usbcore/parameters/authorized_default", "-1");
    for (const auto& path : {host.root_hub, host.root_hub3}) put(path + "/authorized_default", "1");
    for (const auto& path : {host.root_hub, host.root_hub3, host.hub, host.security_key, host.stick, host.webcam, host.serial_adapter,
                             host.keyboard_a, host.keyboard_b})
      put(path + "/authorized", path == host.hub ? "0" : "1");  // the hub as one that came up after authorized_default=0
    host_files.mountinfo = dir / "mountinfo";
    host_files.swaps = dir / "swaps";
    std::ofstream(dir / "mountinfo") << "22 1 259:3 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n";
    std::ofstream(dir / "swaps") << "Filename\tType\tSize\tUsed\tPriority\n";
  }
  std::string sys(const std::string& path) { return fs::path(tb.sys_dir()).parent_path().string() + path; }
  void put(const std::string& path, const std::string& value) { std::ofstream(sys(path)) << value << "\n"; }
  std::string get(const std::string& path) {
    std::ifstream in(sys(path));
    std::string v;
    in >> v;
    return v;
  }
  std::optional<std::string> usb_vm(const std::string& node) {
    for (const auto& d : daemon->registry().usb_devices())
      if (const auto* a = daemon->manager().placements().attachment(d); a && d.device_node == node) return a->vm;
    return std::nullopt;
  }
  static Command detach_node(const std::string& node) {
    DeviceSelector s;
    s.device_node = node;
    return UsbDetach{s};
  }

  json config;
};

TEST_F(UsbAuthorization, AtStartNewDevicesAreDeniedHubsAndHostDevicesAllowedTheRestDeauthorized) {
  start();
  EXPECT_EQ(get("/sys/module/usbcore/parameters/authorized_default"), "0");
  EXPECT_EQ(get(host.root_hub + "/authorized_default"), "0");
  EXPECT_EQ(get(host.root_hub3 + "/authorized_default"), "0");
  EXPECT_EQ(get(host.hub + "/authorized"), "1");           // a hub: what is behind it must appear
  EXPECT_EQ(get(host.keyboard_a + "/authorized"), "1");    // hostAllow
  EXPECT_EQ(get(host.keyboard_b + "/authorized"), "1");
  EXPECT_EQ(get(host.security_key + "/authorized"), "0");  // no rule, not the host's
  EXPECT_EQ(get(host.serial_adapter + "/authorized"), "0");
  EXPECT_EQ(get(host.webcam + "/authorized"), "1");        // a rule's device: left for its VM
}

TEST_F(UsbAuthorization, TheHostsOwnDiskStaysAuthorizedWhateverTheSweep) {
  config["usbPassthrough"] = json::array();  // no rule for the stick: the sweep looks at it
  write_config(config);
  auto disk = tb.add_device("block", "sda", host.stick, {{"dev", "8:0"}}, {{"DEVTYPE", "disk"}});
  tb.add_device("block", "sda1", disk, {{"dev", "8:1"}, {"partition", "1"}}, {{"DEVTYPE", "partition"}});
  std::ofstream(dir / "mountinfo", std::ios::app) << "36 22 8:1 / /boot rw,relatime - vfat /dev/sda1 rw\n";
  start();
  EXPECT_EQ(get(host.stick + "/authorized"), "1");
  EXPECT_EQ(get(host.security_key + "/authorized"), "0");
}

TEST_F(UsbAuthorization, ADeviceIsAuthorizedForItsVmAndDeauthorizedWhenItLeaves) {
  put(host.webcam + "/authorized", "0");  // plugged after authorized_default=0
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1"; }));
  EXPECT_EQ(get(host.webcam + "/authorized"), "1");
  ASSERT_EQ(request(detach_node(kCamNode)).error, std::nullopt);
  EXPECT_EQ(get(host.webcam + "/authorized"), "0");
}

TEST_F(UsbAuthorization, AnAttachTheVmRefusesLeavesTheDeviceDeauthorized) {
  put(host.webcam + "/authorized", "0");
  start();
  vm("vm1").fail_next_attach("failed to find host usb device");
  std::string when_attached;
  vm("vm1").on_usb_attach = [&](const UsbDevice&) { when_attached = get(host.webcam + "/authorized"); };
  DeviceSelector s;
  s.device_node = kCamNode;
  EXPECT_EQ(request(UsbAttach{s, "vm1"}).error, "failed to find host usb device");
  EXPECT_EQ(when_attached, "1");  // authorized for the attempt, and not any more

  EXPECT_EQ(get(host.webcam + "/authorized"), "0");
  EXPECT_EQ(usb_vm(kCamNode), std::nullopt);
}

TEST_F(UsbAuthorization, AVmStoppingWithTheDeviceDeauthorizesIt) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1"; }));
  vm("vm1").go_down();
  EXPECT_EQ(get(host.webcam + "/authorized"), "0");
  vm("vm1").come_up();  // and back in it when it restarts
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1"; }));
  EXPECT_EQ(get(host.webcam + "/authorized"), "1");
}

// The reference's blocking defect (Ghaf PR #2084): an unauthorized device has no interfaces in
// sysfs and no ID_USB_INTERFACES, so interface-class rules never matched it. Its descriptors do.
TEST_F(UsbAuthorization, AnUnauthorizedDeviceIsMatchedByInterfaceClassFromItsDescriptors) {
  auto stick = tb.add_usb({.parent = host.root_hub, .name = "1-8", .busnum = 1, .devnum = 9, .vid = "0951", .pid = "1666",
                           .manufacturer = "Kingston", .product = "DataTraveler 3.0", .serial = "E0D55EA5", .udev_properties = false});
  tb.set_binary_attribute(stick, "descriptors",
                          {0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x51, 0x09, 0x66, 0x16, 0x00, 0x01, 0x01, 0x02, 0x03, 0x01,  // device
                           0x09, 0x02, 0x20, 0x00, 0x01, 0x01, 0x00, 0x80, 0x32,                                                      // configuration
                           0x09, 0x04, 0x00, 0x00, 0x02, 0x08, 0x06, 0x50, 0x00,  // interface 0: mass storage, SCSI, bulk-only
                           0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00, 0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00});
  put(stick + "/authorized", "0");
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm("/dev/bus/usb/001/009") == "vm2"; }));
  EXPECT_EQ(get(stick + "/authorized"), "1");
}

TEST_F(UsbAuthorization, OffByDefaultNothingIsWritten) {
  config.erase("usbAuthorization");
  write_config(config);
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1"; }));
  EXPECT_EQ(get("/sys/module/usbcore/parameters/authorized_default"), "-1");
  EXPECT_EQ(get(host.security_key + "/authorized"), "1");
  EXPECT_EQ(get(host.hub + "/authorized"), "0");
}

}  // namespace
}  // namespace vhp::usb_authorization_test
