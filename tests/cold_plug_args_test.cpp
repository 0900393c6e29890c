// The start-up argument renderers, one hypervisor type at a time: the reference's vmm.py
// (vmm_args_pci 129-142, vmm_args_ovmf 145-160, vmm_args_evdev 163-173, vmm_args_acpi_table
// 176-184) for QEMU and cloud-hypervisor, ghaf-device-manager's manager.rs (vmm_args 806-890) for crosvm.
#include <gtest/gtest.h>

#include "vmm/cold_plug_args.h"
#include "vmm/vm.h"

namespace vhp::cold_plug_args_test {
namespace {

using Args = std::vector<std::string>;

ColdPlugPlan plan_with_two_devices() {
  ColdPlugPlan p;
  p.has_pci_rules = true;
  p.pci = {{"0000:00:14.3"}, {"0000:00:1f.3"}};
  return p;
}

TEST(QemuColdPlug, NumbersDevicesFromTheStartIndexWithTheirBuses) {
  auto p = plan_with_two_devices();
  p.qemu_bus_prefix = "pci_hotplug_";
  p.qemu_bus_start_index = 1;
  EXPECT_EQ(cold_plug_args("qemu", p),
            (Args{"-device", "vfio-pci,host=0000:00:14.3,multifunction=on,id=vhp-pci-1,bus=pci_hotplug_1", "-device",
                  "vfio-pci,host=0000:00:1f.3,multifunction=on,id=vhp-pci-2,bus=pci_hotplug_2"}));
}

TEST(QemuColdPlug, NoPrefixOrAnEmptyOneOrTheRootBusMeansNoBus) {
  auto p = plan_with_two_devices();
  EXPECT_EQ(cold_plug_args("qemu", p)[1], "vfio-pci,host=0000:00:14.3,multifunction=on,id=vhp-pci-0");
  p.qemu_bus_prefix = "";
  EXPECT_EQ(cold_plug_args("qemu", p)[1], "vfio-pci,host=0000:00:14.3,multifunction=on,id=vhp-pci-0");
  p.qemu_bus_prefix = "pci_hotplug_";
  p.pci[0].qemu_use_root_bus = true;  // the numbering still counts it
  EXPECT_EQ(cold_plug_args("qemu", p),
            (Args{"-device", "vfio-pci,host=0000:00:14.3,multifunction=on,id=vhp-pci-0", "-device",
                  "vfio-pci,host=0000:00:1f.3,multifunction=on,id=vhp-pci-1,bus=pci_hotplug_1"}));
}

TEST(QemuColdPlug, OvmfFirstThenDevicesTablesAndInputNumberedAgain) {
  ColdPlugPlan p;
  p.pci = {{"0000:01:00.0", true}};
  p.needs_ovmf = true;
  p.ovmf_code = "/ovmf/CODE.fd";
  p.ovmf_vars = "/ovmf/VARS.fd";
  p.acpi_tables = {"/sys/firmware/acpi/tables/NHLT"};
  p.evdev_nodes = {"/dev/input/event0", "/dev/input/event4"};
  p.qemu_bus_start_index = 3;
  EXPECT_EQ(cold_plug_args("qemu", p),
            (Args{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd", "-drive",
                  "if=pflash,format=raw,unit=1,readonly=on,file=/ovmf/VARS.fd", "-device",
                  "vfio-pci,host=0000:01:00.0,multifunction=on,id=vhp-pci-3", "-acpitable",
                  "file=/sys/firmware/acpi/tables/NHLT", "-device", "virtio-input-host-pci,evdev=/dev/input/event0,id=vhp-evdev-3",
                  "-device", "virtio-input-host-pci,evdev=/dev/input/event4,id=vhp-evdev-4"}));
}

TEST(QemuColdPlug, OvmfWithoutItsFilesIsTheReferencesError) {
  ColdPlugPlan p;
  p.needs_ovmf = true;
  try {
    cold_plug_args("qemu", p);
    FAIL() << "no error";
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "General ovmfCode is not defined");
  }
  p.ovmf_code = "/c";
  EXPECT_THROW(
      try { cold_plug_args("qemu", p); } catch (const VmError& e) {
        EXPECT_STREQ(e.what(), "General ovmfVars is not defined");
        throw;
      },
      VmError);
}

TEST(CrosvmColdPlug, IsolatesHotplugAndMarksDevicesRemovableUnlessOnTheRootBus) {
  auto p = plan_with_two_devices();
  p.pci[1].crosvm_use_root_bus = true;
  p.acpi_tables = {"/sys/firmware/acpi/tables/NHLT"};
  p.evdev_nodes = {"/dev/input/event2"};
  p.qemu_bus_prefix = "ignored_";
  EXPECT_EQ(cold_plug_args("crosvm", p),
            (Args{"--vfio-isolate-hotplug", "--vfio", "/sys/bus/pci/devices/0000:00:14.3,iommu=viommu,removable=true", "--vfio",
                  "/sys/bus/pci/devices/0000:00:1f.3,iommu=viommu", "--acpi-table", "/sys/firmware/acpi/tables/NHLT", "--input",
                  "evdev[path=/dev/input/event2]"}));
}

TEST(CrosvmColdPlug, PciRulesWithoutDevicesStillIsolateHotplug) {
  ColdPlugPlan p;
  p.has_pci_rules = true;
  EXPECT_EQ(cold_plug_args("crosvm", p), Args{"--vfio-isolate-hotplug"});
  p.has_pci_rules = false;
  EXPECT_EQ(cold_plug_args("crosvm", p), Args{});
}

TEST(CloudHypervisorColdPlug, PassesDevicesAndRefusesWhatItCannotDo) {
  auto p = plan_with_two_devices();
  EXPECT_EQ(cold_plug_args("cloud-hypervisor", p),
            (Args{"--device", "path=/sys/bus/pci/devices/0000:00:14.3", "--device", "path=/sys/bus/pci/devices/0000:00:1f.3"}));
  for (auto change : {+[](ColdPlugPlan& q) { q.evdev_nodes = {"/dev/input/event0"}; },
                      +[](ColdPlugPlan& q) { q.acpi_tables = {"/t"}; }, +[](ColdPlugPlan& q) { q.needs_ovmf = true; }}) {
    auto q = p;
    change(q);
    try {
      cold_plug_args("cloud-hypervisor", q);
      ADD_FAILURE() << "no error";
    } catch (const VmError& e) {
      EXPECT_STREQ(e.what(), "Unsupported vm type: cloud-hypervisor");
    }
  }
}

TEST(ColdPlug, AnUnknownTypeIsTheReferencesError) {
  try {
    cold_plug_args("firecracker", ColdPlugPlan{});
    FAIL() << "no error";
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "Unsupported vm type: firecracker");
  }
}

}  // namespace
}  // namespace vhp::cold_plug_args_test
