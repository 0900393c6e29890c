// `vhotplugd --list-devices` run as a child on a umockdev host prints the reference's shapes exactly.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/host_fixture.h"
#include "support/process.h"

namespace vhp::list_devices_test {
namespace {

TEST(ListDevices, PrintsTheReferenceShapes) {
  test::Testbed tb;
  test::add_realistic_host(tb);
  auto result = test::run_capture({VHOTPLUGD_BINARY, "--list-devices"});
  ASSERT_EQ(result.exit_code, 0);
  auto printed = nlohmann::ordered_json::parse(result.out);

  const char* usb_line =
      R"({"device_node":"/dev/bus/usb/001/%03d","vid":"%s","pid":"%s","vendor_name":%s,"product_name":%s,)"
      R"("interfaces":"%s","device_class":%d,"device_subclass":%d,"device_protocol":%d,"busnum":1,"devnum":%d,)"
      R"("portnum":%d,"serial":%s,"sys_name":"%s"})";
  auto usb = [&](int devnum, const char* vid, const char* pid, const char* vendor, const char* product,
                 const char* interfaces, int cls, int sub, int proto, int port, const char* serial, const char* name) {
    char buf[1024];
    std::snprintf(buf, sizeof buf, usb_line, devnum, vid, pid, vendor, product, interfaces, cls, sub, proto, devnum,
                  port, serial, name);
    return std::string(buf);
  };
  std::string expected_usb =
      "[" +
      usb(3, "1050", "0407", R"("Yubico.com")", R"("Yubikey 4/5 OTP+U2F+CCID")", ":030101:030000:0b0000:", 0, 0, 0, 2,
          "null", "1-2.1") + "," +
      usb(4, "0781", "5581", R"("SanDisk")", R"("Ultra")", ":080650:", 0, 0, 0, 3, R"("4C530001230509115384")", "1-3") + "," +
      usb(5, "046d", "0825", R"("Logitech, Inc.")", R"("Webcam C270")", ":0e0100:0e0200:010100:010200:", 239, 2, 1, 4,
          R"("2CA1B3E0")", "1-4") + "," +
      usb(6, "1a86", "7523", "null", "null", ":ff0102:", 255, 0, 0, 5, "null", "1-5") + "," +
      usb(7, "413c", "2113", R"("Dell")", R"("Dell_KB216_Wired_Keyboard")", ":030101:030000:", 0, 0, 0, 6, "null", "1-6") + "," +
      usb(8, "413c", "2113", R"("Dell")", R"("Dell_KB216_Wired_Keyboard")", ":030101:030000:", 0, 0, 0, 7, "null", "1-7") +
      "]";
  EXPECT_EQ(printed["usb_devices"].dump(), expected_usb);

  std::string expected_pci =
      R"([{"address":"0000:00:02.0","driver":"i915","vendor_id":32902,"device_id":39497,"vid":"8086","did":"9A49",)"
      R"("vendor_name":"Intel Corporation","device_name":"TigerLake-LP GT2 [Iris Xe Graphics]","pci_class":3,)"
      R"("pci_subclass":0,"pci_prog_if":0,"pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"},)"
      R"({"address":"0000:00:14.0","driver":"xhci_hcd","vendor_id":32902,"device_id":41197,"vid":"8086","did":"A0ED",)"
      R"("vendor_name":"Intel Corporation","device_name":"Tiger Lake-LP USB 3.2 Gen 2x1 xHCI Host Controller",)"
      R"("pci_class":12,"pci_subclass":3,"pci_prog_if":48,"pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"},)"
      R"({"address":"0000:00:14.2","driver":null,"vendor_id":32902,"device_id":41199,"vid":"8086","did":"A0EF",)"
      R"("vendor_name":null,"device_name":null,"pci_class":5,"pci_subclass":0,"pci_prog_if":0,)"
      R"("pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"},)"
      R"({"address":"0000:00:14.3","driver":"iwlwifi","vendor_id":32902,"device_id":41200,"vid":"8086","did":"A0F0",)"
      R"("vendor_name":null,"device_name":null,"pci_class":2,"pci_subclass":128,"pci_prog_if":0,)"
      R"("pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"},)"
      R"({"address":"0000:00:1f.3","driver":"snd_hda_intel","vendor_id":32902,"device_id":41160,"vid":"8086","did":"A0C8",)"
      R"("vendor_name":null,"device_name":null,"pci_class":4,"pci_subclass":3,"pci_prog_if":128,)"
      R"("pci_subsystem_vendor_id":"17AA","pci_subsystem_id":"22D8"}])";
  EXPECT_EQ(printed["pci_devices"].dump(), expected_pci);
}

TEST(ListDevices, WarningsGoToStderrSoStdoutStaysJson) {
  test::Testbed tb;
  auto host = test::add_realistic_host(tb);
  auto bad = test::security_key_spec(host.hub);
  bad.name = "1-2.3", bad.devnum = 30;
  bad.attribute_overrides = {{"idVendor", "zz"}};
  bad.extra_properties["ID_VENDOR_ID"] = "zz";
  tb.add_usb(bad);
  auto result = test::run_capture({VHOTPLUGD_BINARY, "--list-devices"});
  ASSERT_EQ(result.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(result.out)["usb_devices"].size(), 6u);
}

}  // namespace
}  // namespace vhp::list_devices_test
