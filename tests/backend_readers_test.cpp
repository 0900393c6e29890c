// The VM backends' readers of what crosvm prints and what cloud-hypervisor answers: members of
// unexpected types count as absent instead of throwing on the event loop (found writing their fuzz
// targets: a vm.info whose `config` or `state` had another type threw out of the VM's probe).
#include <gtest/gtest.h>

#include "vmm/cloud_hypervisor_info.h"
#include "vmm/crosvm_output.h"

namespace vhp::backend_readers_test {
namespace {

TEST(CloudHypervisorInfo, MembersOfOtherTypesCountAsAbsent) {
  auto info = parse_vm_info(R"({"state": 3, "config": "none"})");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, "");
  EXPECT_TRUE(info->devices.empty());
  info = parse_vm_info(R"({"state": "Running", "config": {"devices": [7, {"path": 1}, {"path": "/dev/x"},
                          {"path": "/sys/bus/pci/devices/0000:00:14.3/", "id": 5}, {"path": "/sys/bus/pci/devices/0000:00:1f.3", "id": "mine"}]}})");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->state, "Running");
  ASSERT_EQ(info->devices.size(), 2u);
  EXPECT_EQ(info->devices[0].address, "0000:00:14.3");
  EXPECT_EQ(info->devices[0].id, "");
  EXPECT_EQ(info->devices[1].id, "mine");
  EXPECT_FALSE(parse_vm_info("[1]"));
  EXPECT_FALSE(parse_vm_info("not json"));
}

TEST(CrosvmOutput, PortsAreCrosvmsU8AndListsWellFormed) {
  EXPECT_EQ(parse_usb_list("devices 1 1050 0407 2 0781 5581\n"),
            (std::vector<std::pair<int, std::string>>{{1, "1050:0407"}, {2, "0781:5581"}}));
  EXPECT_EQ(parse_usb_list("devices"), (std::vector<std::pair<int, std::string>>{}));
  EXPECT_FALSE(parse_usb_list("devices 1 1050"));
  EXPECT_FALSE(parse_usb_list("devices 256 1050 0407"));
  EXPECT_FALSE(parse_usb_list("devices -1 1050 0407"));
  EXPECT_FALSE(parse_usb_list("ok 1"));
  EXPECT_EQ(parse_usb_attached("ok 3\n"), 3);
  EXPECT_FALSE(parse_usb_attached("ok 999"));
  EXPECT_FALSE(parse_usb_attached("no_available_port"));
  EXPECT_EQ(parse_vfio_list("devices /sys/bus/pci/devices/0000:00:14.3"), (std::vector<std::string>{"/sys/bus/pci/devices/0000:00:14.3"}));
  EXPECT_FALSE(parse_vfio_list(""));
}

}  // namespace
}  // namespace vhp::backend_readers_test
