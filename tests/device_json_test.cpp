// The device objects must be the reference's, byte for byte: key order, types, nulls.
#include <gtest/gtest.h>

#include "device/pci_device.h"
#include "device/usb_device.h"

namespace vhp::device_json_test {
namespace {

UsbDevice reference_yubikey() {
  UsbDevice d;
  d.device_node = "/dev/bus/usb/003/012";
  d.vid = "1050", d.pid = "0407";
  d.vendor_name = "Yubico.com", d.product_name = "Yubikey_4_OTP+U2F+CCID";
  d.interfaces = ":030101:030000:0b0000:";
  d.busnum = 3, d.devnum = 12;
  d.ports = {2, 1};
  d.serial = "123";
  d.sys_name = "3-2.1";
  return d;
}

TEST(UsbDeviceJson, MatchesTheReferenceHarnessOutput) {
  // reference-vhotplug §3.3, less the list-only allowed_vms/vm.
  EXPECT_EQ(to_json(reference_yubikey()).dump(),
            R"({"device_node":"/dev/bus/usb/003/012","vid":"1050","pid":"0407","vendor_name":"Yubico.com",)"
            R"("product_name":"Yubikey_4_OTP+U2F+CCID","interfaces":":030101:030000:0b0000:","device_class":0,)"
            R"("device_subclass":0,"device_protocol":0,"busnum":3,"devnum":12,"portnum":2,"serial":"123","sys_name":"3-2.1"})");
}

TEST(UsbDeviceJson, AbsentStringsAreNull) {
  auto d = reference_yubikey();
  d.vendor_name.reset(), d.product_name.reset(), d.interfaces.reset(), d.serial.reset();
  auto j = to_json(d);
  EXPECT_TRUE(j["vendor_name"].is_null());
  EXPECT_TRUE(j["product_name"].is_null());
  EXPECT_TRUE(j["interfaces"].is_null());
  EXPECT_TRUE(j["serial"].is_null());
}

TEST(UsbDeviceJson, LeavesOutWhatTheReferenceLeavesOut) {
  auto j = to_json(reference_yubikey());
  for (const char* key : {"removable", "sys_path", "bcd_device", "allowed_vms", "vm"}) EXPECT_FALSE(j.contains(key)) << key;
  EXPECT_EQ(j.size(), 14u);
}

TEST(UsbDevice, PortHelpers) {
  auto d = reference_yubikey();
  EXPECT_EQ(d.root_port(), 2);
  EXPECT_EQ(d.port_number(), 1);
  EXPECT_EQ(d.level(), 2);
  EXPECT_EQ(d.device_name(), "003/012");
  d.ports.clear();  // a root hub
  EXPECT_EQ(d.root_port(), 0);
  EXPECT_EQ(d.level(), 0);
}

TEST(UsbSpeed, MapsSysfsValues) {
  EXPECT_EQ(usb_speed_from_sysfs("1.5"), UsbSpeed::Low);
  EXPECT_EQ(usb_speed_from_sysfs("12"), UsbSpeed::Full);
  EXPECT_EQ(usb_speed_from_sysfs("480"), UsbSpeed::High);
  EXPECT_EQ(usb_speed_from_sysfs("5000"), UsbSpeed::Super);
  EXPECT_EQ(usb_speed_from_sysfs("10000"), UsbSpeed::SuperPlus);
  EXPECT_EQ(usb_speed_from_sysfs("20000"), UsbSpeed::SuperPlusX2);
  EXPECT_EQ(usb_speed_from_sysfs(""), UsbSpeed::Unknown);
  EXPECT_EQ(usb_speed_from_sysfs("fast"), UsbSpeed::Unknown);
}

TEST(PciDeviceJson, MatchesTheReferenceShape) {
  PciDevice d;
  d.address = "0000:00:1f.3";
  d.driver = "snd_hda_intel";
  d.vendor_id = 0x8086, d.device_id = 0xa0c8;
  d.vid = "8086", d.did = "A0C8";
  d.vendor_name = "Intel Corporation";
  d.pci_class = 4, d.pci_subclass = 3, d.pci_prog_if = 0x80;
  d.subsystem_vendor_id = "17AA", d.subsystem_id = "22D8";
  d.iommu_group = 12;
  EXPECT_EQ(to_json(d).dump(),
            R"({"address":"0000:00:1f.3","driver":"snd_hda_intel","vendor_id":32902,"device_id":41160,"vid":"8086",)"
            R"("did":"A0C8","vendor_name":"Intel Corporation","device_name":null,"pci_class":4,"pci_subclass":3,)"
            R"("pci_prog_if":128,"pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"})");
}

TEST(PciDeviceJson, UnboundDriverIsNull) {
  PciDevice d;
  d.address = "0000:00:14.2";
  EXPECT_TRUE(to_json(d)["driver"].is_null());
}

}  // namespace
}  // namespace vhp::device_json_test
