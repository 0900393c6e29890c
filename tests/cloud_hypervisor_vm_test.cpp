// CloudHypervisorVm against cloud-hypervisor's REST API as its OpenAPI description has it
// (tests/support/fake_cloud_hypervisor.h): real HTTP over a real Unix socket, slow and malformed
// answers included.
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "support/coroutine.h"
#include "support/fake_cloud_hypervisor.h"
#include "support/temp_dir.h"
#include "vmm/cloud_hypervisor_vm.h"

namespace vhp::cloud_hypervisor_vm_test {
namespace {

using test::complete;
using test::run_until;

CloudHypervisorTimeouts quick() {
  CloudHypervisorTimeouts t;
  t.request = std::chrono::milliseconds(500);
  t.not_running_recheck = std::chrono::milliseconds(50);
  return t;
}

PciDevice nic() {
  PciDevice d;
  d.address = "0000:00:14.3";
  return d;
}

class CloudHypervisorVmTest : public testing::Test {
 protected:
  void up() {
    vm.on_up = [this] { ++ups; };
    vm.on_down = [this] { ++downs; };
    vm.start();
    ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  }
  std::string error_of(boost::asio::awaitable<void> op) {
    try {
      complete(io, std::move(op));
    } catch (const VmError& e) {
      return e.what();
    }
    return "";
  }

  test::TempDir dir;
  std::string socket_path = dir / "ch.sock";
  test::FakeCloudHypervisor ch{socket_path};
  boost::asio::io_context io;
  CloudHypervisorVm vm{io, "storage-vm", socket_path, quick()};
  int ups = 0, downs = 0;
};

TEST_F(CloudHypervisorVmTest, PciAddListRemoveOverItsApi) {
  up();
  complete(io, vm.attach_pci(nic(), false));
  EXPECT_EQ(ch.devices(), (std::map<std::string, std::string>{{"vhp-pci-0000-00-14.3", "/sys/bus/pci/devices/0000:00:14.3/"}}));
  auto held = complete(io, vm.list_pci());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].id, "vhp-pci-0000-00-14.3");
  EXPECT_EQ(held[0].host, "0000:00:14.3");
  complete(io, vm.detach_pci({"", "0000:00:14.3"}));
  EXPECT_TRUE(ch.devices().empty());
  complete(io, vm.detach_pci({"", "0000:00:14.3"}));  // 404: not there, detached already
}

TEST_F(CloudHypervisorVmTest, ItsRefusalsAreTheAnswerWithStatusAndMessage) {
  up();
  ch.answer_next("/api/v1/vm.add-device", 500, "Error from API: The VM could not add the device: VFIO device open failed\n");
  EXPECT_EQ(error_of(vm.attach_pci(nic(), false)),
            "VM storage-vm: cloud-hypervisor answered 500 Internal Server Error: Error from API: The VM could not add the device: VFIO device open failed");
  ch.answer_next("/api/v1/vm.add-device", 400, "");
  EXPECT_EQ(error_of(vm.attach_pci(nic(), false)), "VM storage-vm: cloud-hypervisor answered 400 Bad Request");
  complete(io, vm.attach_pci(nic(), false));
  EXPECT_EQ(error_of(vm.attach_pci(nic(), false)).substr(0, 62), "VM storage-vm: cloud-hypervisor answered 500 Internal Server E");
}

TEST_F(CloudHypervisorVmTest, ASlowOrMalformedAnswerFailsWithinTheDeadline) {
  up();
  ch.garble_next("/api/v1/vm.add-device");
  auto garbled = error_of(vm.attach_pci(nic(), false));
  EXPECT_TRUE(garbled.starts_with("VM storage-vm: cloud-hypervisor API PUT /api/v1/vm.add-device: answer: ")) << garbled;
  ch.delay_next("/api/v1/vm.add-device", std::chrono::milliseconds(1500));  // the stand-in is busy that long: last
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of(vm.attach_pci(nic(), false)), "VM storage-vm: cloud-hypervisor API PUT /api/v1/vm.add-device: no answer within 500 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1400));
}

TEST_F(CloudHypervisorVmTest, UpOnceItsVmRunsAndNoUsbOrInputHotPlug) {
  ch.set_state("Created");  // created, not booted: the socket is there, the VM not yet
  vm.start();
  EXPECT_FALSE(vm.running());
  EXPECT_EQ(error_of(vm.attach_pci(nic(), false)), "VM storage-vm is not running");
  ch.set_state("Running");  // booted: nothing changes on the socket
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  EXPECT_EQ(error_of(vm.attach_usb(UsbDevice{})), "USB passthrough is not supported by cloud-hypervisor (no USB hot-plug in its API)");
  EXPECT_TRUE(complete(io, vm.list_usb()).empty());
  EXPECT_EQ(error_of(vm.attach_evdev(EvdevDevice{})), "Unsupported vm type: cloud-hypervisor");
}

}  // namespace
}  // namespace vhp::cloud_hypervisor_vm_test
