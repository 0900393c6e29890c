// The host side of PCI passthrough on a umockdev host, with the kernel's side of the sysfs writes
// played by FakeVfioKernel: the IOMMU group to vfio-pci and back, the wait for /dev/vfio/<group>,
// and the refusal to unbind a controller that holds a mounted filesystem of the host.
#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "device/vfio_binding.h"
#include "support/coroutine.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::vfio_binding_test {
namespace {

namespace fs = std::filesystem;
using Strings = std::map<std::string, std::string>;

class Vfio : public testing::Test {
 protected:
  Vfio() {
    host = test::add_realistic_host(tb);
    // An NVMe controller holding the host's /boot, and a second disk nobody mounted.
    nvme = tb.add_pci({.address = "0000:02:00.0", .vendor = "144d", .device = "a808", .class_code = 0x010802, .driver = "nvme", .iommu_group = 14});
    auto disk = tb.add_device("block", "nvme0n1", nvme, {{"dev", "259:0"}}, {{"DEVTYPE", "disk"}});
    tb.add_device("block", "nvme0n1p1", disk, {{"dev", "259:1"}, {"partition", "1"}}, {{"DEVTYPE", "partition"}});
    spare = tb.add_pci({.address = "0000:03:00.0", .vendor = "144d", .device = "a808", .class_code = 0x010802, .driver = "nvme", .iommu_group = 15});
    tb.add_device("block", "nvme1n1", spare, {{"dev", "259:2"}}, {{"DEVTYPE", "disk"}});
    std::ofstream(dir / "mountinfo") << "22 1 259:3 / / rw,relatime - ext4 /dev/sda2 rw\n"
                                        "36 22 259:1 / /boot rw,relatime - vfat /dev/nvme0n1p1 rw\n";
    std::ofstream(dir / "swaps") << "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
    root = fs::path(tb.sys_dir()).parent_path();
  }

  VfioBinding binding(std::chrono::milliseconds node_timeout = std::chrono::seconds(3)) {
    return VfioBinding(io, {"/sys", "/dev", dir / "mountinfo", dir / "swaps"}, node_timeout);
  }

  test::Testbed tb;
  test::HostPaths host;
  std::string nvme, spare;
  test::TempDir dir;
  std::string root;
  boost::asio::io_context io;
};

TEST_F(Vfio, BindsTheWholeGroupAndWaitsForTheNode) {
  test::FakeVfioKernel kernel(root, {"iwlwifi", "xhci_hcd"});
  auto vfio = binding();
  // The xHCI controller shares group 5 with the SMBus controller, which has no driver.
  auto previous = test::complete(io, vfio.bind_group("0000:00:14.0"));
  EXPECT_EQ(previous, (std::map<std::string, std::string>{{"0000:00:14.0", "xhci_hcd"}, {"0000:00:14.2", ""}}));
  EXPECT_EQ(kernel.driver("0000:00:14.0"), "vfio-pci");
  EXPECT_EQ(kernel.driver("0000:00:14.2"), "vfio-pci");
  EXPECT_EQ(kernel.override_of("0000:00:14.0"), "vfio-pci");
  EXPECT_EQ(kernel.writes(), (std::vector<std::string>{"xhci_hcd/unbind 0000:00:14.0", "drivers_probe 0000:00:14.0",
                                                       "drivers_probe 0000:00:14.2"}));
  EXPECT_TRUE(fs::exists(root + "/dev/vfio/5"));
  // Bound already: nothing to do, nothing written.
  EXPECT_TRUE(test::complete(io, vfio.bind_group("0000:00:14.2")).empty());
  EXPECT_EQ(kernel.writes().size(), 3u);
}

TEST_F(Vfio, GivesTheDeviceBackToItsDriver) {
  test::FakeVfioKernel kernel(root, {"iwlwifi"});
  auto vfio = binding();
  ASSERT_EQ(test::complete(io, vfio.bind_group("0000:00:14.3")), (std::map<std::string, std::string>{{"0000:00:14.3", "iwlwifi"}}));
  ASSERT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");
  vfio.give_back("0000:00:14.3", "iwlwifi");
  ASSERT_TRUE(test::eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  EXPECT_EQ(kernel.override_of("0000:00:14.3"), "");
  EXPECT_FALSE(fs::exists(root + "/dev/vfio/6"));  // the group's last member left vfio-pci
  EXPECT_EQ(kernel.writes().back(), "iwlwifi/bind 0000:00:14.3");
}

TEST_F(Vfio, ANodeThatNeverAppearsIsAnErrorWithinTheDeadline) {
  test::FakeVfioKernel kernel(root, {"iwlwifi"}, false);
  auto vfio = binding(std::chrono::milliseconds(300));
  try {
    test::complete(io, vfio.bind_group("0000:00:14.3"));
    FAIL() << "bound without a VFIO node";
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "VFIO node /dev/vfio/6 did not appear within 300 ms");
  }
  // What it had touched is given back: the card is not left without a driver.
  ASSERT_TRUE(test::eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  EXPECT_EQ(kernel.override_of("0000:00:14.3"), "");
}

// A group with its PCIe root port (a common layout for a GPU): the bridge keeps pcieport, which
// VFIO accepts, and vfio-pci (which does not take bridges) is not asked to.
TEST_F(Vfio, BridgesInTheGroupKeepTheirDriver) {
  tb.add_pci({.address = "0000:00:1c.0", .class_code = 0x060400, .driver = "pcieport", .iommu_group = 20});
  tb.add_pci({.address = "0000:05:00.0", .vendor = "10de", .device = "2204", .class_code = 0x030000, .driver = "nouveau", .iommu_group = 20});
  test::FakeVfioKernel kernel(root, {"pcieport", "nouveau"});
  auto vfio = binding();
  EXPECT_EQ(vfio.plan("0000:05:00.0"), (std::map<std::string, std::string>{{"0000:05:00.0", "nouveau"}}));
  EXPECT_EQ(test::complete(io, vfio.bind_group("0000:05:00.0")), (std::map<std::string, std::string>{{"0000:05:00.0", "nouveau"}}));
  EXPECT_EQ(kernel.driver("0000:00:1c.0"), "pcieport");
  EXPECT_EQ(kernel.driver("0000:05:00.0"), "vfio-pci");
}

// btrfs shows an anonymous device number in mountinfo: its source names the partition. Swap counts.
TEST_F(Vfio, ABtrfsRootAndActiveSwapCountAsHostMounts) {
  std::ofstream(dir / "mountinfo") << "22 1 0:25 / / rw,relatime shared:1 - btrfs /dev/nvme0n1p1 rw,ssd\n";
  std::ofstream(dir / "swaps", std::ios::app) << "/dev/nvme1n1                            partition\t8388604\t\t0\t\t-2\n";
  test::FakeVfioKernel kernel(root, {"nvme"});
  auto vfio = binding();
  try {
    vfio.plan("0000:02:00.0");
    FAIL();
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "PCI device 0000:02:00.0 holds the host's mounted filesystems: / (nvme0n1p1); it stays on the host");
  }
  try {
    vfio.plan("0000:03:00.0");
    FAIL();
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "PCI device 0000:03:00.0 holds the host's mounted filesystems: swap (nvme1n1); it stays on the host");
  }
}

// Native NVMe multipath (Debian's default): the namespace's block device lives under the virtual
// nvme-subsystem, whose controller links lead to the PCI device.
TEST_F(Vfio, AnNvmeNamespaceBehindASubsystemCounts) {
  auto controller = tb.add_pci({.address = "0000:06:00.0", .vendor = "144d", .device = "a80a", .class_code = 0x010802, .driver = "nvme", .iommu_group = 21});
  auto sys = fs::path(tb.sys_dir());
  auto ctrl_dir = sys / fs::path(controller).relative_path().lexically_relative("sys") / "nvme" / "nvme2";
  fs::create_directories(ctrl_dir);
  auto subsys = sys / "devices/virtual/nvme-subsystem/nvme-subsys2";
  fs::create_directories(subsys / "nvme2n1");
  std::ofstream(subsys / "nvme2n1" / "dev") << "259:9\n";
  fs::create_symlink(fs::relative(ctrl_dir, subsys), subsys / "nvme2");
  fs::create_symlink("../../devices/virtual/nvme-subsystem/nvme-subsys2/nvme2n1", sys / "class/block/nvme2n1");
  std::ofstream(dir / "mountinfo") << "40 22 259:9 / /home rw,relatime - ext4 /dev/nvme2n1 rw\n";
  test::FakeVfioKernel kernel(root, {"nvme"});
  auto vfio = binding();
  try {
    vfio.plan("0000:06:00.0");
    FAIL();
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "PCI device 0000:06:00.0 holds the host's mounted filesystems: /home (nvme2n1); it stays on the host");
  }
}

TEST_F(Vfio, NeverUnbindsAControllerHoldingAHostMount) {
  test::FakeVfioKernel kernel(root, {"nvme"});
  auto vfio = binding();
  try {
    test::complete(io, vfio.bind_group("0000:02:00.0"));
    FAIL() << "unbound the boot disk's controller";
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "PCI device 0000:02:00.0 holds the host's mounted filesystems: /boot (nvme0n1p1); it stays on the host");
  }
  EXPECT_EQ(kernel.driver("0000:02:00.0"), "nvme");
  EXPECT_TRUE(kernel.writes().empty());
  // A disk nobody mounted is no reason to refuse.
  EXPECT_EQ(test::complete(io, vfio.bind_group("0000:03:00.0")), (std::map<std::string, std::string>{{"0000:03:00.0", "nvme"}}));
}

TEST_F(Vfio, AMountBehindAHolderCountsToo) {
  // / on LVM on the first partition: nvme0n1p1 → dm-0, mounted.
  tb.add_device("block", "dm-0", "", {{"dev", "253:0"}}, {{"DEVTYPE", "disk"}});
  fs::create_directories(tb.sys_dir() + "/class/block/nvme0n1p1/holders");
  fs::create_symlink("../../dm-0", tb.sys_dir() + "/class/block/nvme0n1p1/holders/dm-0");
  std::ofstream(dir / "mountinfo") << "22 1 253:0 / / rw,relatime - ext4 /dev/mapper/root rw\n";
  test::FakeVfioKernel kernel(root, {"nvme"});
  auto vfio = binding();
  EXPECT_THROW(test::complete(io, vfio.bind_group("0000:02:00.0")), VfioError);
  EXPECT_EQ(kernel.driver("0000:02:00.0"), "nvme");
}

TEST_F(Vfio, ADeviceWithoutAGroupOrWithoutVfioPciIsRefused) {
  tb.add_pci({.address = "0000:04:00.0", .driver = "e1000e"});
  {
    test::FakeVfioKernel kernel(root, {"e1000e"});
    auto vfio = binding();
    try {
      test::complete(io, vfio.bind_group("0000:04:00.0"));
      FAIL();
    } catch (const VfioError& e) {
      EXPECT_STREQ(e.what(), "PCI device 0000:04:00.0 has no IOMMU group (is the IOMMU enabled?)");
    }
  }
  fs::remove_all(tb.sys_dir() + "/bus/pci/drivers/vfio-pci");
  auto vfio = binding();
  try {
    test::complete(io, vfio.bind_group("0000:00:14.3"));
    FAIL();
  } catch (const VfioError& e) {
    EXPECT_STREQ(e.what(), "the vfio-pci driver is not loaded (load the vfio-pci module)");
  }
}

}  // namespace
}  // namespace vhp::vfio_binding_test
