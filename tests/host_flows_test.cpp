// The host's own flows in-process (real Daemon, umockdev host, fake VMs, FakeVfioKernel): the boot
// disk that no path gives away, suspend and resume of USB and PCI as Ghaf's power scripts call
// them, and the burst of uevents a host resume brings.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/fake_vfio_kernel.h"
#include "support/in_process_daemon.h"

namespace vhp::host_flows_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_until;

constexpr const char* kRules = R"({
  "usbPassthrough": [
    {"targetVm": "vm1", "tag": "cam", "allow": [{"vendorId": "046d", "productId": "0825"}]},
    {"targetVm": "vm1", "tag": "key", "skipOnSuspend": true, "allow": [{"vendorId": "1050", "productId": "0407"}]},
    {"targetVm": "vm2", "tag": "storage", "allow": [{"interfaceClass": 8}]}],
  "pciPassthrough": [
    {"targetVm": "vm1", "tag": "net", "allow": [{"address": "0000:00:14.3"}]},
    {"targetVm": "vm2", "tag": "audio", "skipOnSuspend": true, "allow": [{"deviceClass": 4}]}]})";

constexpr const char* kStickNode = "/dev/bus/usb/001/004";  // the SanDisk stick at 1-3
constexpr const char* kCamNode = "/dev/bus/usb/001/005";    // the webcam at 1-4

class HostFlows : public test::InProcessDaemon {
 protected:
  HostFlows() {
    write_config(json::parse(kRules));
    host_files.mountinfo = dir / "mountinfo";
    host_files.swaps = dir / "swaps";
    std::ofstream(dir / "mountinfo") << "22 1 259:3 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n";
    std::ofstream(dir / "swaps") << "Filename\tType\tSize\tUsed\tPriority\n";
  }

  // The stick as the host's disk: sda with partitions sda1 (the mount in `mountinfo_line`) and sda2
  // (LUKS: dm-0 above it).
  void stick_has_a_disk() {
    auto disk = tb.add_device("block", "sda", host.stick, {{"dev", "8:0"}}, {{"DEVTYPE", "disk"}});
    tb.add_device("block", "sda1", disk, {{"dev", "8:1"}, {"partition", "1"}}, {{"DEVTYPE", "partition"}});
    tb.add_device("block", "sda2", disk, {{"dev", "8:2"}, {"partition", "2"}}, {{"DEVTYPE", "partition"}});
    tb.add_device("block", "dm-0", "", {{"dev", "253:0"}}, {{"DEVTYPE", "disk"}});
    fs::create_directories(tb.sys_dir() + "/class/block/sda2/holders");
    fs::create_symlink("../../dm-0", tb.sys_dir() + "/class/block/sda2/holders/dm-0");
  }
  void mounted(const std::string& lines) { std::ofstream(dir / "mountinfo", std::ios::app) << lines; }

  std::optional<UsbDevice> usb(const std::string& node) {
    for (const auto& d : daemon->registry().usb_devices())
      if (d.device_node == node) return d;
    return std::nullopt;
  }
  std::optional<std::string> usb_vm(const std::string& node) {
    auto d = usb(node);
    const auto* a = d ? daemon->manager().placements().attachment(*d) : nullptr;
    return a ? std::optional<std::string>(a->vm) : std::nullopt;
  }
  bool usb_listed(const std::string& node) {
    auto list = daemon->manager().usb_list({});
    return std::ranges::any_of(list, [&](const UsbListing& l) { return l.device.device_node == node; });
  }
  std::optional<std::string> pci_vm(const std::string& address) { return daemon->manager().pci_placements().vm_of(address); }
  static Command attach_node(const std::string& node, std::optional<std::string> vm = std::nullopt) {
    DeviceSelector s;
    s.device_node = node;
    return UsbAttach{s, std::move(vm)};
  }
  static Command tag(bool attach, const std::string& t) {
    DeviceSelector s;
    s.tag = t;
    if (attach) return UsbAttach{s, std::nullopt};
    return UsbDetach{s};
  }
  // Everything -a attaches has arrived.
  bool settled() {
    return usb_vm(kCamNode) == "vm1" && usb_vm("/dev/bus/usb/001/003") == "vm1" && usb_vm(kStickNode) == "vm2" &&
           pci_vm("0000:00:14.3") == "vm1" && pci_vm("0000:00:1f.3") == "vm2";
  }

  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi", "snd_hda_intel"}};
};

TEST_F(HostFlows, TheBootDiskIsNeverGivenAwayNorListed) {
  stick_has_a_disk();
  mounted("36 22 8:1 / /boot rw,relatime - vfat /dev/sda1 rw\n");
  start(true);  // -a, and its rule sends every mass-storage device to vm2, as Ghaf's does
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1" && pci_vm("0000:00:1f.3") == "vm2"; }));
  EXPECT_FALSE(vm("vm2").holds(1, 4));
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);
  EXPECT_FALSE(usb_listed(kStickNode));
  EXPECT_EQ(request(attach_node(kStickNode, "vm2")).error, "Device 0781:5581 (SanDisk Ultra) is used as a boot device");
  EXPECT_EQ(request(tag(true, "storage")).error, std::nullopt);  // the kill switch's unblock: ok, and still on the host
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  vm("vm2").go_down();
  vm("vm2").come_up();  // a VM restart re-attaches what belongs there: not this
  ASSERT_TRUE(run_until(io(), [&] { return pci_vm("0000:00:1f.3") == "vm2"; }));  // its PCI card is back: vm_up ran
  EXPECT_FALSE(vm("vm2").holds(1, 4));
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);
}

TEST_F(HostFlows, AnyHostMountKeepsTheDiskThroughItsHolders) {
  stick_has_a_disk();
  mounted("40 22 253:0 / /home rw,relatime - ext4 /dev/mapper/home rw\n");  // LUKS on sda2
  start();
  EXPECT_FALSE(usb_listed(kStickNode));
  EXPECT_EQ(request(attach_node(kStickNode)).error,
            "Device 0781:5581 (SanDisk Ultra) holds the host's mounted filesystems: /home (dm-0); it stays on the host");
}

// A disk nobody mounted goes where its rule says; one the host mounts later is refused from then on.
TEST_F(HostFlows, TheCheckIsMadeAtEachAttach) {
  stick_has_a_disk();
  start();
  EXPECT_TRUE(usb_listed(kStickNode));
  ASSERT_EQ(request(attach_node(kStickNode)).error, std::nullopt);
  ASSERT_EQ(request(tag(false, "storage")).error, std::nullopt);
  mounted("36 22 8:1 / /boot/efi rw,relatime - vfat /dev/sda1 rw\n");
  EXPECT_EQ(request(attach_node(kStickNode)).error, "Device 0781:5581 (SanDisk Ultra) is used as a boot device");
}

// A host resume re-enumerates USB devices: the boot disk comes back before its block devices do.
// In that window it must stay the host's.
TEST_F(HostFlows, AReEnumeratedBootDiskStaysWithTheHost) {
  stick_has_a_disk();
  mounted("36 22 8:1 / /boot rw,relatime - vfat /dev/sda1 rw\n");
  start();
  ASSERT_FALSE(usb_listed(kStickNode));  // seen as the host's
  tb.unplug(host.stick);
  ASSERT_TRUE(run_until(io(), [&] { return !usb(kStickNode); }));
  tb.plug({.parent = host.root_hub, .name = "1-3", .busnum = 1, .devnum = 4, .vid = "0781", .pid = "5581", .manufacturer = "SanDisk",
           .product = "Ultra", .serial = "4C530001230509115384", .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
  ASSERT_TRUE(run_until(io(), [&] {
    return std::ranges::count_if(seen, [](const ManagerEvent& e) { return std::holds_alternative<UsbConnected>(e); }) >= 1;
  }));
  EXPECT_FALSE(vm("vm2").holds(1, 4));  // decided with the plug, synchronously: it was not sent to vm2
  EXPECT_EQ(std::ranges::count_if(seen, [](const ManagerEvent& e) { return std::holds_alternative<UsbAttached>(e); }), 0);
  EXPECT_EQ(request(attach_node(kStickNode)).error, "Device 0781:5581 (SanDisk Ultra) is used as a boot device");
}

TEST_F(HostFlows, UsbSuspendTakesDevicesOutAndResumePutsThemBack) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  EXPECT_EQ(request(UsbSuspend{}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kCamNode), std::nullopt);
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);
  EXPECT_EQ(usb_vm("/dev/bus/usb/001/003"), "vm1");  // the key's group has skipOnSuspend
  EXPECT_FALSE(daemon->manager().placements().is_disconnected(*usb(kCamNode)));  // not the user's detach
  EXPECT_FALSE(vm("vm1").holds(1, 5));
  EXPECT_EQ(pci_vm("0000:00:14.3"), "vm1");  // USB only
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kCamNode), "vm1");
  EXPECT_EQ(usb_vm(kStickNode), "vm2");
  EXPECT_TRUE(vm("vm1").holds(1, 5));
}

// A device whose rule offers several VMs and that -a placed (no saved choice): re-enumerated under a
// new address during the sleep, its plug asks the user; resume puts it back where it was instead.
TEST_F(HostFlows, ResumeFindsASuspendedDeviceUnderItsNewAddress) {
  write_config(json::parse(R"({"usbPassthrough": [{"allowedVms": ["vm2", "vm1"], "tag": "storage", "allow": [{"interfaceClass": 8}]}]})"));
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kStickNode) == "vm2"; }));  // the first allowed VM
  ASSERT_EQ(request(UsbSuspend{}).error, std::nullopt);
  tb.unplug(host.stick);
  tb.plug({.parent = host.root_hub, .name = "1-3", .busnum = 1, .devnum = 14, .vid = "0781", .pid = "5581", .manufacturer = "SanDisk",
           .product = "Ultra", .serial = "4C530001230509115384", .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
  ASSERT_TRUE(run_until(io(), [&] { return std::ranges::any_of(seen, [](const ManagerEvent& e) { return std::holds_alternative<UsbSelectVm>(e); }); }));
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  EXPECT_EQ(usb_vm("/dev/bus/usb/001/014"), "vm2");
  EXPECT_TRUE(vm("vm2").holds(1, 14));
  EXPECT_TRUE(daemon->manager().pending_selections().empty());  // answered by the resume
}

// A suspend while an attach is on its way: the attach is undone when it ends, and resume brings
// the device back.
TEST_F(HostFlows, ASuspendDuringAnAttachWins) {
  start();
  vm("vm1").hold_attaches();
  std::optional<CommandResult> attaching;
  request(attach_node(kCamNode), attaching);
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1; }));
  EXPECT_EQ(request(UsbSuspend{}).error, std::nullopt);
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return attaching.has_value(); }));
  EXPECT_FALSE(vm("vm1").holds(1, 5));
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kCamNode), "vm1");
}

// The user detaches a device between suspend and resume (the kill switch while the lid is shut):
// the detach is kept, and resume leaves the device on the host.
TEST_F(HostFlows, ADetachBetweenSuspendAndResumeIsKept) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  ASSERT_EQ(request(UsbSuspend{}).error, std::nullopt);
  EXPECT_EQ(request(tag(false, "cam")).error, std::nullopt);
  DeviceSelector s;
  s.device_node = kStickNode;
  EXPECT_EQ(request(UsbDetach{s}).error, std::nullopt);  // not attached, but taken out for the suspend: it counts
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kCamNode), std::nullopt);
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);
  EXPECT_TRUE(daemon->manager().placements().is_disconnected(*usb(kStickNode)));
}

// A VM that is down when the host wakes is not a failed resume: its devices arrive when it starts.
TEST_F(HostFlows, ResumeWithAVmDownSucceedsAndTheVmGetsItsDevicesLater) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  ASSERT_EQ(request(UsbSuspend{}).error, std::nullopt);
  ASSERT_EQ(request(PciSuspend{}).error, std::nullopt);
  vm("vm1").go_down();
  EXPECT_EQ(request(UsbResume{}).error, std::nullopt);
  EXPECT_EQ(request(PciResume{}).error, std::nullopt);
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return usb_vm(kCamNode) == "vm1" && pci_vm("0000:00:14.3") == "vm1"; }));
}

TEST_F(HostFlows, SuspendAndResumeOfOneVm) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  EXPECT_EQ(request(UsbSuspend{"vm2"}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);
  EXPECT_EQ(usb_vm(kCamNode), "vm1");
  EXPECT_EQ(request(UsbResume{"vm1"}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kStickNode), std::nullopt);  // not vm1's
  EXPECT_EQ(request(UsbResume{"vm2"}).error, std::nullopt);
  EXPECT_EQ(usb_vm(kStickNode), "vm2");
}

// What the user detached stays detached over a suspend; a failed attach on resume is the answer.
TEST_F(HostFlows, ResumeHonoursTheUsersDetachAndReportsFailures) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  ASSERT_EQ(request(tag(false, "cam")).error, std::nullopt);  // the kill switch blocked the camera
  ASSERT_EQ(request(UsbSuspend{}).error, std::nullopt);
  vm("vm2").fail_next_attach("failed to find host usb device 1:4");
  EXPECT_EQ(request(UsbResume{}).error, "failed to find host usb device 1:4");
  EXPECT_EQ(usb_vm(kCamNode), std::nullopt);
}

// Resume brings a burst of remove and add uevents for every USB device: handled in order, each
// device attached once, no device left behind in the registry.
TEST_F(HostFlows, AResumeBurstOfUeventsLeavesNoGhostsAndNoDoubleAttach) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  ASSERT_EQ(request(UsbSuspend{}).error, std::nullopt);
  auto devices_before = daemon->registry().usb_devices().size();
  auto from = seen.size();
  for (const auto& path : {host.webcam, host.stick}) tb.uevent(path, "remove");
  for (const auto& path : {host.webcam, host.stick}) tb.uevent(path, "add");
  std::optional<CommandResult> resumed;
  request(UsbResume{}, resumed);
  ASSERT_TRUE(run_until(io(), [&] { return resumed && usb_vm(kCamNode) == "vm1" && usb_vm(kStickNode) == "vm2"; }));
  EXPECT_EQ(resumed->error, std::nullopt);
  EXPECT_EQ(daemon->registry().usb_devices().size(), devices_before);
  // Announcements add up: however the resume and the re-plug interleaved, each device ends attached
  // exactly once (an attach of the old instance is announced detached when it goes).
  auto net_attached_since = [&](int devnum) {
    long n = 0;
    for (auto it = seen.begin() + static_cast<std::ptrdiff_t>(from); it != seen.end(); ++it) {
      if (const auto* a = std::get_if<UsbAttached>(&*it); a && a->device.devnum == devnum) ++n;
      if (const auto* d = std::get_if<UsbDetached>(&*it); d && d->device.devnum == devnum) --n;
    }
    return n;
  };
  EXPECT_EQ(net_attached_since(5), 1);
  EXPECT_EQ(net_attached_since(4), 1);
  EXPECT_EQ(vm("vm1").held().size(), 2u);  // the key and the camera, nothing twice
  EXPECT_EQ(vm("vm2").held().size(), 1u);
}

TEST_F(HostFlows, PciSuspendGivesCardsBackAndResumeReattaches) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return settled(); }));
  EXPECT_EQ(request(PciSuspend{"vm1"}).error, std::nullopt);
  EXPECT_EQ(pci_vm("0000:00:14.3"), std::nullopt);
  EXPECT_TRUE(run_until(io(), [&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  EXPECT_FALSE(daemon->manager().pci_placements().is_disconnected("0000:00:14.3"));
  EXPECT_EQ(request(PciSuspend{}).error, std::nullopt);
  EXPECT_EQ(pci_vm("0000:00:1f.3"), "vm2");  // skipOnSuspend
  EXPECT_EQ(request(PciResume{"vm1"}).error, std::nullopt);
  EXPECT_EQ(pci_vm("0000:00:14.3"), "vm1");
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");
  // A card that cannot come back: the answer says why (Ghaf then restarts the VM).
  ASSERT_EQ(request(PciSuspend{"vm1"}).error, std::nullopt);
  vm("vm1").fail_next_attach("vfio 0000:00:14.3: error getting device from group 6: Device or resource busy");
  EXPECT_EQ(request(PciResume{"vm1"}).error, "vfio 0000:00:14.3: error getting device from group 6: Device or resource busy");
}

}  // namespace
}  // namespace vhp::host_flows_test
