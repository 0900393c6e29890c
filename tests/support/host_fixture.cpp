#include "support/host_fixture.h"

namespace vhp::test {

UsbSpec security_key_spec(const std::string& hub_path) {
  UsbSpec s;
  s.parent = hub_path;
  s.name = "1-2.1";
  s.busnum = 1, s.devnum = 3;
  s.vid = "1050", s.pid = "0407";
  s.manufacturer = "Yubico", s.product = "YubiKey OTP+FIDO+CCID";
  s.speed = "12";
  s.interfaces = {{3, 1, 1, "usbhid"}, {3, 0, 0, "usbhid"}, {0x0b, 0, 0, ""}};
  s.extra_properties = {{"ID_VENDOR_FROM_DATABASE", "Yubico.com"},
                        {"ID_MODEL_FROM_DATABASE", "Yubikey 4/5 OTP+U2F+CCID"}};
  return s;
}

HostPaths add_realistic_host(Testbed& tb) {
  HostPaths p;
  p.xhci = tb.add_pci({.address = "0000:00:14.0", .vendor = "8086", .device = "a0ed", .class_code = 0x0c0330,
                       .driver = "xhci_hcd", .iommu_group = 5,
                       .extra_properties = {{"ID_VENDOR_FROM_DATABASE", "Intel Corporation"},
                                            {"ID_MODEL_FROM_DATABASE", "Tiger Lake-LP USB 3.2 Gen 2x1 xHCI Host Controller"}}});
  p.smbus = tb.add_pci({.address = "0000:00:14.2", .vendor = "8086", .device = "a0ef", .class_code = 0x050000,
                        .iommu_group = 5});
  p.gpu = tb.add_pci({.address = "0000:00:02.0", .vendor = "8086", .device = "9a49", .class_code = 0x030000,
                      .driver = "i915", .iommu_group = 0,
                      .extra_properties = {{"ID_VENDOR_FROM_DATABASE", "Intel Corporation"},
                                           {"ID_MODEL_FROM_DATABASE", "TigerLake-LP GT2 [Iris Xe Graphics]"}}});
  p.audio = tb.add_pci({.address = "0000:00:1f.3", .vendor = "8086", .device = "a0c8", .class_code = 0x040380,
                        .driver = "snd_hda_intel", .iommu_group = 12});
  p.wifi = tb.add_pci({.address = "0000:00:14.3", .vendor = "8086", .device = "a0f0", .class_code = 0x028000,
                       .driver = "iwlwifi", .iommu_group = 6});

  p.root_hub = tb.add_usb({.parent = p.xhci, .name = "usb1", .busnum = 1, .devnum = 1, .vid = "1d6b", .pid = "0002",
                           .manufacturer = "Linux 6.1.0 xhci-hcd", .product = "xHCI Host Controller",
                           .serial = "0000:00:14.0", .cls = 9, .removable = "unknown", .self_powered = true,
                           .interfaces = {{9, 0, 0, "hub"}}});
  p.root_hub3 = tb.add_usb({.parent = p.xhci, .name = "usb2", .busnum = 2, .devnum = 1, .vid = "1d6b", .pid = "0003",
                            .manufacturer = "Linux 6.1.0 xhci-hcd", .product = "xHCI Host Controller",
                            .serial = "0000:00:14.0", .cls = 9, .protocol = 3, .speed = "5000",
                            .removable = "unknown", .self_powered = true, .interfaces = {{9, 0, 0, "hub"}}});
  p.hub = tb.add_usb({.parent = p.root_hub, .name = "1-2", .busnum = 1, .devnum = 2, .vid = "05e3", .pid = "0610",
                      .manufacturer = "GenesysLogic", .product = "USB2.0 Hub", .cls = 9, .protocol = 2,
                      .interfaces = {{9, 0, 2, "hub"}}});
  p.security_key = tb.add_usb(security_key_spec(p.hub));
  p.stick = tb.add_usb({.parent = p.root_hub, .name = "1-3", .busnum = 1, .devnum = 4, .vid = "0781", .pid = "5581",
                        .manufacturer = "SanDisk", .product = "Ultra", .serial = "4C530001230509115384",
                        .interfaces = {{8, 6, 0x50, "usb-storage"}}});
  p.webcam = tb.add_usb({.parent = p.root_hub, .name = "1-4", .busnum = 1, .devnum = 5, .vid = "046d", .pid = "0825",
                         .serial = "2CA1B3E0", .cls = 0xef, .subclass = 2, .protocol = 1,
                         .interfaces = {{0x0e, 1, 0, "uvcvideo"}, {0x0e, 2, 0, "uvcvideo"},
                                        {1, 1, 0, "snd-usb-audio"}, {1, 2, 0, "snd-usb-audio"}},
                         .extra_properties = {{"ID_VENDOR_FROM_DATABASE", "Logitech, Inc."},
                                              {"ID_MODEL_FROM_DATABASE", "Webcam C270"}}});
  p.serial_adapter = tb.add_usb({.parent = p.root_hub, .name = "1-5", .busnum = 1, .devnum = 6, .vid = "1a86",
                                 .pid = "7523", .cls = 0xff, .speed = "12", .removable = "fixed",
                                 .interfaces = {{0xff, 1, 2, "ch341"}}});
  UsbSpec keyboard{.parent = p.root_hub, .name = "1-6", .busnum = 1, .devnum = 7, .vid = "413c", .pid = "2113",
                   .manufacturer = "Dell", .product = "Dell KB216 Wired Keyboard", .speed = "1.5",
                   .interfaces = {{3, 1, 1, "usbhid"}, {3, 0, 0, "usbhid"}}};
  p.keyboard_a = tb.add_usb(keyboard);
  keyboard.name = "1-7", keyboard.devnum = 8;
  p.keyboard_b = tb.add_usb(keyboard);
  return p;
}

std::string add_input(Testbed& tb, const std::string& parent, int n, const std::string& name, Strings properties) {
  auto input = tb.add_device("input", "input" + std::to_string(n), parent, {{"name", name}}, {{"NAME", "\"" + name + "\""}});
  properties["ID_INPUT"] = "1";
  properties["DEVNAME"] = "/dev/input/event" + std::to_string(n);
  return tb.add_device("input", "event" + std::to_string(n), input, {{"dev", "13:" + std::to_string(64 + n)}}, properties);
}

}  // namespace vhp::test
