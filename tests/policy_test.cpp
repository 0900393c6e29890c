// Rule semantics, exactly the reference's (reference-vhotplug §2.3-2.4), each on its own.
#include <gtest/gtest.h>

#include "support/policy.h"

namespace vhp::policy_test {
namespace {

using test::make_policy;

const char* kVms = R"("vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}, {"name": "vm2", "type": "qemu", "socket": "/b"},
                               {"name": "vm3", "type": "crosvm", "socket": "/c"}])";

// One group to vm1 with these allow entries (and deny entries).
std::shared_ptr<const Policy> usb_rule(const std::string& allow, const std::string& deny = "[]",
                                       std::shared_ptr<ModuleResolver> modules = std::make_shared<test::FakeModules>()) {
  return make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [{"targetVm": "vm1", "allow": )" + allow +
                         R"(, "deny": )" + deny + "}]}",
                     std::move(modules));
}

std::optional<std::string> vm_for(const Policy& p, const UsbDevice& d) {
  auto m = p.match_usb(d);
  if (!m) return std::nullopt;
  return m->target_vm ? *m->target_vm : "[" + m->allowed_vms.front() + "…]";
}

struct Usb {
  UsbDevice d;
  Usb() {
    d.vid = "1050", d.pid = "0407", d.busnum = 1, d.devnum = 5, d.ports = {2};
    d.sys_name = "1-2";
    d.removable = "removable";
  }
  Usb& ids(const char* v, const char* p) { return d.vid = v, d.pid = p, *this; }
  Usb& names(std::optional<std::string> v, std::optional<std::string> p) { return d.vendor_name = v, d.product_name = p, *this; }
  Usb& at(int bus, std::vector<int> ports) { return d.busnum = bus, d.ports = std::move(ports), *this; }
  Usb& cls(int c, int s, int p) { return d.device_class = c, d.device_subclass = s, d.device_protocol = p, *this; }
  Usb& interfaces(const char* i) { return d.interfaces = i, *this; }
  Usb& removable(const char* r) { return d.removable = r, *this; }
  Usb& hub() { return d.is_hub = true, *this; }
  operator const UsbDevice&() const { return d; }
};

TEST(UsbRules, VendorAndProductIdMatchOnlyTogether) {
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorId": "1050", "productId": "0407"}])"), Usb()), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorId": "1050", "productId": "0408"}])"), Usb()), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorId": "1050"}])"), Usb()), std::nullopt);  // alone: never
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorId": "046D", "productId": "C52B"}])"), Usb().ids("046d", "c52b")), "vm1");
}

TEST(UsbRules, NamesAreCaseInsensitiveRegexesAnchoredAtTheStartOnly) {
  Usb nic;
  nic.names("Realtek", "USB 10/100/1000 LAN Ethernet");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": ".*ethernet.*"}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": "usb 10"}])"), nic), "vm1");          // prefix is enough
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": "ethernet"}])"), nic), std::nullopt);  // not at the start
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": "REAL"}])"), nic), "vm1");              // either name alone
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": "^Realtek$"}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": ".*"}])"), Usb()), "vm1");  // no name: matched as ""
}

// A pattern a backtracking engine takes exponential time on (2^40 steps here), against a name the
// device chose: RE2 answers in time linear in the name. Python's syntax (named groups, inline
// flags) is taken.
TEST(UsbRules, NoDeviceStringCanStallARule) {
  Usb evil;
  evil.names("Vendor", std::string(40, 'a') + "!");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": "(a*)*b"}])"), evil), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": "(a|aa)+$"}])"), evil), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"productName": "(?P<run>a+)!"}])"), evil), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": "(?i)VENDOR"}])"), evil), "vm1");
}

TEST(UsbRules, BusAndPortMatchTheRootPortTogether) {
  auto rule = usb_rule(R"([{"bus": 1, "port": 2}])");
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2})), "vm1");
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2, 1})), "vm1");  // behind a hub on root port 2
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {3, 2})), std::nullopt);
  EXPECT_EQ(vm_for(*rule, Usb().at(2, {2})), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"bus": 1}])"), Usb().at(1, {2})), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"port": 2}])"), Usb().at(1, {2})), std::nullopt);
}

TEST(UsbRules, AStringPortIsAnExactPortPath) {  // ours
  auto rule = usb_rule(R"([{"bus": 1, "port": "2.1"}])");
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2, 1})), "vm1");
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2})), std::nullopt);
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2, 1, 3})), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"bus": 1, "port": "2"}])"), Usb().at(1, {2, 1})), std::nullopt);
}

TEST(UsbRules, DeviceClassWithZeroAsWildcard) {
  Usb bt;
  bt.cls(224, 1, 1);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"deviceClass": 224}])"), bt), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"deviceClass": 224, "deviceSubclass": 1, "deviceProtocol": 1}])"), bt), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"deviceClass": 224, "deviceSubclass": 0, "deviceProtocol": 1}])"), bt), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"deviceClass": 224, "deviceProtocol": 2}])"), bt), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"deviceClass": 0}])"), Usb().cls(0, 0, 0)), std::nullopt);  // class 0: never
}

TEST(UsbRules, InterfaceClassMatchesAnyInterface) {
  Usb cam;
  cam.interfaces(":0e0100:0e0200:010100:010200:");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 1}])"), cam), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 14, "interfaceSubclass": 2}])"), cam), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 14, "interfaceSubclass": 3}])"), cam), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 3}])"), cam), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 3, "interfaceProtocol": 2}])"), Usb().interfaces(":030101:")), std::nullopt);  // a keyboard, not a mouse
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 3, "interfaceProtocol": 1}])"), Usb().interfaces(":030000:030101:")), "vm1");
}

TEST(UsbRules, CriteriaInOneEntryAreOred) {
  // Ghaf's static devices: {bus, port, vendorId, productId} matches on either pair.
  auto rule = usb_rule(R"([{"bus": 3, "port": 4, "vendorId": "1050", "productId": "0407"}])");
  EXPECT_EQ(vm_for(*rule, Usb().at(1, {2})), "vm1");                    // ids only
  EXPECT_EQ(vm_for(*rule, Usb().ids("046d", "c52b").at(3, {4})), "vm1");  // place only
  EXPECT_EQ(vm_for(*rule, Usb().ids("046d", "c52b").at(1, {2})), std::nullopt);
}

TEST(UsbRules, RemovableIsAnAndGateThatNeverMatchesAlone) {
  Usb stick;
  stick.interfaces(":080650:");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 8, "removable": ["removable"]}])"), stick), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 8, "removable": ["Fixed", "REMOVABLE"]}])"), stick), "vm1");
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 8, "removable": ["fixed"]}])"), stick), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"removable": ["removable"]}])"), stick), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 8, "removable": "removable"}])"), stick), std::nullopt);  // not a list
  EXPECT_EQ(vm_for(*usb_rule(R"([{"interfaceClass": 8, "removable": ["fixed"]}])"), Usb(stick).removable("fixed")), "vm1");
}

TEST(UsbRules, DriverPathOnlyForDevicesWithoutAValidInterfaceClass) {
  auto modules = std::make_shared<test::FakeModules>();
  modules->table["usb:v0B95p1790"] = {"/lib/modules/6.1.0/kernel/drivers/net/usb/ax88179_178a.ko"};
  auto rule = usb_rule(R"([{"driverPath": ".*/kernel/drivers/net/usb/.*"}])", "[]", modules);
  Usb nic;
  nic.ids("0b95", "1790").cls(0xff, 0xff, 0).interfaces(":ff0000:");
  EXPECT_EQ(vm_for(*rule, nic), "vm1");
  ASSERT_EQ(modules->asked.size(), 1u);
  EXPECT_EQ(modules->asked[0], "usb:v0B95p1790d0000dcFFdscFFdp00icFFisc00ip00in00");
  modules->asked.clear();
  EXPECT_EQ(vm_for(*rule, Usb(nic).interfaces(":ff0000:030101:")), std::nullopt);  // has a HID interface
  EXPECT_TRUE(modules->asked.empty());
  EXPECT_EQ(vm_for(*rule, Usb().ids("0b95", "1791").interfaces(":ff0000:")), std::nullopt);  // no module
}

// One modalias per interface read from the descriptors, numbered as the device numbers them (here 0
// and 2), the way the kernel writes an interface's modalias.
TEST(UsbRules, DriverPathAsksForEachInterfacesModalias) {
  auto modules = std::make_shared<test::FakeModules>();
  auto rule = usb_rule(R"([{"driverPath": ".*/kernel/drivers/net/usb/.*"}])", "[]", modules);
  Usb nic;
  nic.ids("0b95", "1790").cls(0xff, 0xff, 0).interfaces(":ff0000:ffff00:");
  nic.d.bcd_device = 0x0200;
  nic.d.interface_list = {{0, 0xff, 0, 0}, {2, 0xff, 0xff, 0}};
  EXPECT_EQ(vm_for(*rule, nic), std::nullopt);
  EXPECT_EQ(modules->asked, (std::vector<std::string>{"usb:v0B95p1790d0200dcFFdscFFdp00icFFisc00ip00in00",
                                                      "usb:v0B95p1790d0200dcFFdscFFdp00icFFiscFFip00in02"}));
}

TEST(UsbRules, DisabledEntriesAndGroupsAreSkipped) {
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": ".*", "disable": true}])"), Usb()), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": ".*", "enable": false}])"), Usb()), std::nullopt);
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": ".*", "disable": false, "enable": false}])"), Usb()), "vm1");  // disable decides
  auto groups = make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [
      {"targetVm": "vm1", "disable": true, "allow": [{"vendorName": ".*"}]},
      {"targetVm": "vm2", "enable": false, "allow": [{"vendorName": ".*"}]},
      {"targetVm": "vm3", "allow": [{"vendorName": ".*"}]}]})");
  EXPECT_EQ(vm_for(*groups, Usb()), "vm3");
}

TEST(UsbRules, ADenyClearsAMatchOnlyInItsOwnGroup) {
  auto p = make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [
      {"targetVm": "vm1", "allow": [{"interfaceClass": 14}], "deny": [{"vendorId": "046d", "productId": "0825"}]},
      {"targetVm": "vm2", "allow": [{"interfaceClass": 14}]}]})");
  Usb cam;
  cam.interfaces(":0e0100:");
  EXPECT_EQ(vm_for(*p, cam), "vm1");
  EXPECT_EQ(vm_for(*p, Usb(cam).ids("046d", "0825")), "vm2");  // denied in group 1, taken by group 2
}

TEST(UsbRules, TheFirstGroupWithAMatchWins) {
  auto p = make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [
      {"targetVm": "vm2", "allow": [{"vendorId": "1050", "productId": "0407"}]},
      {"targetVm": "vm1", "allow": [{"vendorName": ".*"}]}]})");
  EXPECT_EQ(vm_for(*p, Usb()), "vm2");
  EXPECT_EQ(vm_for(*p, Usb().ids("046d", "c52b")), "vm1");
}

TEST(UsbRules, AGroupWithoutVmsSendsTheDeviceOnToTheNextGroup) {
  auto p = make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [
      {"description": "no VM", "allow": [{"vendorName": ".*"}]},
      {"targetVm": "vm3", "allow": [{"vendorName": ".*"}]}]})");
  EXPECT_EQ(vm_for(*p, Usb()), "vm3");
}

TEST(UsbRules, HubsNeverPassThrough) {
  EXPECT_EQ(vm_for(*usb_rule(R"([{"vendorName": ".*"}, {"deviceClass": 9}])"), Usb().cls(9, 0, 0).hub()), std::nullopt);
}

TEST(UsbRules, AllowedVmsTagAndSkipOnSuspendAreCarried) {
  auto p = make_policy(std::string("{") + kVms + R"(, "usbPassthrough": [
      {"allowedVms": ["vm2", "vm1"], "tag": "cam", "skipOnSuspend": true, "allow": [{"vendorName": ".*"}]}]})");
  auto m = p->match_usb(Usb());
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->target_vm);
  EXPECT_EQ(m->vms(), (std::vector<std::string>{"vm2", "vm1"}));
  EXPECT_EQ(m->tag, "cam");
  EXPECT_TRUE(m->skip_on_suspend);
  auto t = usb_rule(R"([{"vendorName": ".*"}])")->match_usb(Usb());
  EXPECT_EQ(t->vms(), std::vector<std::string>{"vm1"});
  EXPECT_EQ(t->tag, std::nullopt);
}

// ---- PCI ----

PciDevice pci(const char* address, int vendor, int device, int cls, int sub, int prog_if) {
  PciDevice d;
  d.address = address, d.vendor_id = vendor, d.device_id = device;
  d.pci_class = cls, d.pci_subclass = sub, d.pci_prog_if = prog_if;
  return d;
}

std::shared_ptr<const Policy> pci_rules(const std::string& groups) {
  return make_policy(std::string("{") + kVms + R"(, "pciPassthrough": )" + groups + "}");
}

std::optional<std::string> vm_for(const Policy& p, const PciDevice& d) {
  auto m = p.match_pci(d);
  return m ? std::optional(m->target_vm) : std::nullopt;
}

TEST(PciRules, AddressIdsAndClass) {
  auto nic = pci("0000:00:14.3", 0x8086, 0xa0f0, 2, 0x80, 0);
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"address": "0000:00:14.3"}]}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"address": "0000:00:14.3"}]}])"),
                   pci("0000:00:14.3", 1, 1, 0, 0, 0)), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"vendorId": "8086", "deviceId": "A0F0"}]}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"vendorId": "0x8086", "deviceId": "0a0f0"}]}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"vendorId": "8086"}]}])"), nic), std::nullopt);
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"deviceClass": 2}]}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"deviceClass": 2, "deviceSubclass": 0}]}])"), nic), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"deviceClass": 2, "deviceSubclass": 1}]}])"), nic), std::nullopt);
}

TEST(PciRules, ProgIfIsTheWholeByte) {  // the reference's & 0xF made prog-if rules >= 0x10 unmatchable
  auto xhci = pci("0000:00:14.0", 0x8086, 0xa0ed, 0x0c, 0x03, 0x30);
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"deviceClass": 12, "deviceSubclass": 3, "deviceProgIf": 48}]}])"), xhci), "vm1");
  EXPECT_EQ(vm_for(*pci_rules(R"([{"targetVm": "vm1", "allow": [{"deviceClass": 12, "deviceProgIf": 32}]}])"), xhci), std::nullopt);
}

TEST(PciRules, DenyFlagsOrderAndFallThrough) {
  auto p = pci_rules(R"([
      {"targetVm": "vm1", "disable": true, "allow": [{"deviceClass": 3}]},
      {"description": "no target", "allow": [{"deviceClass": 9}, {"deviceClass": 3}]},
      {"targetVm": "vm1", "allow": [{"deviceClass": 3}], "deny": [{"vendorId": "10de", "deviceId": "2504"}]},
      {"targetVm": "vm2", "tag": "gpu", "skipOnSuspend": true, "pciIommuAddAll": true, "pciIommuSkipIfShared": true,
       "autoOvmf": true, "qemuUseRootBus": true, "allow": [{"deviceClass": 1}, {"deviceClass": 3}]}])");
  auto intel = pci("0000:00:02.0", 0x8086, 0x9a49, 3, 0, 0);
  auto m = p->match_pci(intel);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->target_vm, "vm1");
  EXPECT_EQ(m->order, 3);  // 2 entries looked at in the target-less group, then the first of this one
  auto nvidia = pci("0000:01:00.0", 0x10de, 0x2504, 3, 0, 0);
  m = p->match_pci(nvidia);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->target_vm, "vm2");  // denied in the third group only
  EXPECT_EQ(m->order, 5);
  EXPECT_EQ(m->tag, "gpu");
  EXPECT_TRUE(m->skip_on_suspend && m->iommu_add_all && m->iommu_skip_if_shared && m->auto_ovmf && m->qemu_use_root_bus);
}

}  // namespace
}  // namespace vhp::policy_test
