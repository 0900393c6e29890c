// The request protocol, without sockets: every error text, the list shapes, the session flag.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "api/protocol.h"
#include "api/wire.h"
#include "support/policy.h"
#include "support/temp_dir.h"

namespace vhp::protocol_test {
namespace {

class ProtocolTest : public testing::Test {
 protected:
  void SetUp() override {
    UsbDevice key;
    key.sys_path = "/sys/devices/usb3/3-2/3-2.1";
    key.sys_name = "3-2.1";
    key.device_node = "/dev/bus/usb/003/012";
    key.vid = "1050", key.pid = "0407";
    key.vendor_name = "Yubico.com", key.product_name = "Yubikey_4_OTP+U2F+CCID";
    key.interfaces = ":030101:030000:0b0000:";
    key.busnum = 3, key.devnum = 12, key.ports = {2, 1};
    key.serial = "123";
    registry.upsert(key);
    UsbDevice hub = key;
    hub.sys_path = "/sys/devices/usb3/3-2", hub.sys_name = "3-2", hub.is_hub = true, hub.devnum = 2;
    registry.upsert(hub);
    PciDevice nic;
    nic.address = "0000:00:14.3";
    nic.vid = "8086", nic.did = "A0F0", nic.vendor_id = 0x8086, nic.device_id = 0xa0f0;
    registry.upsert(nic);
  }
  nlohmann::ordered_json respond(std::string_view line) { return nlohmann::ordered_json::parse(protocol.handle(line, session).response_line()); }
  std::string handle(std::string_view line) { return respond(line).dump(); }

  DeviceRegistry registry;
  StateStore store{""};
  DeviceManager manager{registry, test::make_policy(R"({
    "vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}, {"name": "vm2", "type": "qemu", "socket": "/b"}],
    "usbPassthrough": [{"allowedVms": ["vm1", "vm2"], "allow": [{"vendorId": "1050", "productId": "0407"}]}],
    "pciPassthrough": [{"targetVm": "vm1", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})"), store};
  Protocol protocol{manager};
  Session session;
};

TEST_F(ProtocolTest, UsbListHasTheDevicesRulesAllowWithAllowedVmsAndVm) {
  EXPECT_EQ(handle(R"({"action":"usb_list"})"),
            R"({"result":"ok","usb_devices":[{"device_node":"/dev/bus/usb/003/012","vid":"1050","pid":"0407",)"
            R"("vendor_name":"Yubico.com","product_name":"Yubikey_4_OTP+U2F+CCID","interfaces":":030101:030000:0b0000:",)"
            R"("device_class":0,"device_subclass":0,"device_protocol":0,"busnum":3,"devnum":12,"portnum":2,"serial":"123",)"
            R"("sys_name":"3-2.1","allowed_vms":["vm1","vm2"],"vm":null}]})");
}

TEST_F(ProtocolTest, PciList) {
  auto r = respond(R"({"action":"pci_list"})");
  ASSERT_EQ(r["pci_devices"].size(), 1u);
  EXPECT_EQ(r["pci_devices"][0]["address"], "0000:00:14.3");
  EXPECT_EQ(r["pci_devices"][0]["allowed_vms"], nlohmann::ordered_json::array({"vm1"}));
  EXPECT_TRUE(r["pci_devices"][0]["vm"].is_null());
}

TEST_F(ProtocolTest, ListFilters) {
  // Nothing was detached by the user yet; only the PCI rule has a tag.
  EXPECT_EQ(respond(R"({"action":"usb_list","disconnected":false})")["usb_devices"].size(), 1u);
  EXPECT_EQ(respond(R"({"action":"usb_list","disconnected":null,"tag":null})")["usb_devices"].size(), 1u);
  EXPECT_EQ(respond(R"({"action":"usb_list","disconnected":true})")["usb_devices"].size(), 0u);
  EXPECT_EQ(respond(R"({"action":"usb_list","tag":"net"})")["usb_devices"].size(), 0u);
  EXPECT_EQ(respond(R"({"action":"pci_list","tag":"net"})")["pci_devices"].size(), 1u);
  EXPECT_EQ(respond(R"({"action":"pci_list","tag":"gpu"})")["pci_devices"].size(), 0u);
}

// usb_list's answer is kept between requests: each thing it depends on must show at the next one.
TEST_F(ProtocolTest, UsbListFollowsEveryChangeItDependsOn) {
  auto listed = [&](const char* request = R"({"action":"usb_list"})") { return respond(request)["usb_devices"]; };
  ASSERT_EQ(listed().size(), 1u);
  const UsbDevice key = *registry.find_usb("/sys/devices/usb3/3-2/3-2.1");
  manager.placements().record_attached(key, "vm2", Cause::plug());
  EXPECT_EQ(listed()[0]["vm"], "vm2");
  manager.placements().record_detached(key, Cause::unplug());
  EXPECT_TRUE(listed()[0]["vm"].is_null());
  EXPECT_EQ(listed(R"({"action":"usb_list","disconnected":true})").size(), 0u);
  manager.placements().set_disconnected(key, true, Cause::plug());
  EXPECT_EQ(listed(R"({"action":"usb_list","disconnected":true})").size(), 1u);
  UsbDevice other = key;
  other.sys_path = "/sys/devices/usb3/3-3", other.sys_name = "3-3", other.devnum = 13, other.device_node = "/dev/bus/usb/003/013";
  registry.upsert(other);
  EXPECT_EQ(listed().size(), 2u);
  registry.erase_usb(other.sys_path);
  EXPECT_EQ(listed().size(), 1u);
  manager.set_policy(test::make_policy(R"({"vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}],
    "usbPassthrough": [{"targetVm": "vm1", "allow": [{"vendorId": "1050", "productId": "0407"}]}]})"));
  EXPECT_EQ(listed()[0]["allowed_vms"], nlohmann::ordered_json::array({"vm1"}));
}

// A caller limited to some VMs gets the kept answer's entries for those VMs only.
TEST_F(ProtocolTest, UsbListForACallerWithAGrantShowsOnlyItsVms) {
  manager.set_policy(test::make_policy(R"({"vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}, {"name": "vm2", "type": "qemu", "socket": "/b"}],
    "usbPassthrough": [{"targetVm": "vm2", "allow": [{"vendorId": "1050", "productId": "0407"}]},
                       {"targetVm": "vm1", "allow": [{"vendorId": "0781", "productId": "5581"}]}]})"));
  UsbDevice stick = *registry.find_usb("/sys/devices/usb3/3-2/3-2.1");
  stick.sys_path = "/sys/devices/usb3/3-3", stick.sys_name = "3-3", stick.devnum = 13, stick.vid = "0781", stick.pid = "5581";
  registry.upsert(stick);
  ASSERT_EQ(respond(R"({"action":"usb_list"})")["usb_devices"].size(), 2u);  // kept, then asked with a grant
  session.grant = std::make_shared<const Grant>(Grant{"permissions[0]", {"list"}, std::set<std::string>{"vm1"}});
  auto list = respond(R"({"action":"usb_list"})")["usb_devices"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["vid"], "0781");
  session.grant = std::make_shared<const Grant>(Grant{"permissions[0]", {"list"}, std::set<std::string>{"vm3"}});
  EXPECT_EQ(handle(R"({"action":"usb_list"})"), R"({"result":"ok","usb_devices":[]})");
}

// The list leaves out a disk the host has mounted, and mounts come and go without an event: the kept
// answer must still follow them (a scratch sysfs: a stick with sda and its partition sda1).
TEST(UsbListOfStorage, FollowsTheHostsMounts) {
  namespace fs = std::filesystem;
  test::TempDir dir;
  std::string stick_path = dir / "sys/devices/usb1/1-3", partition = stick_path + "/1-3:1.0/host0/block/sda/sda1";
  fs::create_directories(partition);
  std::ofstream(stick_path + "/1-3:1.0/host0/block/sda/dev") << "8:0\n";
  std::ofstream(partition + "/dev") << "8:1\n";
  std::ofstream(partition + "/partition") << "1\n";
  fs::create_directories(dir / "sys/class/block");
  fs::create_symlink(stick_path + "/1-3:1.0/host0/block/sda", dir / "sys/class/block/sda");
  fs::create_symlink(partition, dir / "sys/class/block/sda1");
  std::ofstream(dir / "mountinfo") << "22 1 259:3 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n";
  std::ofstream(dir / "swaps") << "Filename\tType\tSize\tUsed\tPriority\n";

  DeviceRegistry registry;
  UsbDevice stick;
  stick.sys_path = stick_path, stick.sys_name = "1-3", stick.device_node = "/dev/bus/usb/001/004";
  stick.vid = "0781", stick.pid = "5581", stick.interfaces = ":080650:", stick.busnum = 1, stick.devnum = 4, stick.ports = {3};
  registry.upsert(stick);
  StateStore store{""};
  DeviceManager manager{registry, test::make_policy(R"({"vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}],
    "usbPassthrough": [{"targetVm": "vm1", "allow": [{"interfaceClass": 8}]}]})"), store,
                        HostInterfaces{dir / "sys", dir / "dev", dir / "mountinfo", dir / "swaps"}};
  Protocol protocol{manager};
  Session session;
  auto listed = [&] { return nlohmann::json::parse(protocol.handle(R"({"action":"usb_list"})", session).response_line())["usb_devices"].size(); };
  EXPECT_EQ(listed(), 1u);
  std::ofstream(dir / "mountinfo", std::ios::app) << "36 22 8:1 / /boot rw,relatime - vfat /dev/sda1 rw\n";
  EXPECT_EQ(listed(), 0u);  // now the host's boot disk
  std::ofstream(dir / "mountinfo") << "22 1 259:3 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n";
  EXPECT_EQ(listed(), 1u);  // unmounted again
  std::ofstream(dir / "swaps", std::ios::app) << "/dev/sda1\tpartition\t1024\t0\t-2\n";
  EXPECT_EQ(listed(), 0u);  // the host swaps on it
}

TEST_F(ProtocolTest, PciAttachAndDetachBecomeCommands) {
  auto attach = protocol.handle(R"({"action":"pci_attach","address":"0000:00:14.3","vm":"vm1"})", session);
  ASSERT_TRUE(attach.command);
  const auto& a = std::get<PciAttach>(*attach.command);
  EXPECT_EQ(a.selector.address, "0000:00:14.3");
  EXPECT_EQ(a.vm, "vm1");
  auto upper = protocol.handle(R"({"action":"pci_attach","address":"0000:3B:00.0"})", session);  // any case, as sysfs is lowercase
  EXPECT_EQ(std::get<PciAttach>(*upper.command).selector.address, "0000:3b:00.0");
  auto vmd = protocol.handle(R"({"action":"pci_attach","address":"10000:E1:00.0"})", session);  // behind Intel VMD
  EXPECT_EQ(std::get<PciAttach>(*vmd.command).selector.address, "10000:e1:00.0");
  auto by_ids = protocol.handle(R"({"action":"pci_detach","vid":"0x10DE","did":"2204"})", session);
  const auto& d = std::get<PciDetach>(*by_ids.command);
  EXPECT_EQ(d.selector.kind(), PciDeviceSelector::Kind::Ids);
  EXPECT_EQ(d.selector.vid, "0x10DE");  // kept as given: the reference's "not found" text shows it so
  auto by_tag = protocol.handle(R"({"action":"pci_detach","tag":"net","address":null})", session);
  EXPECT_EQ(std::get<PciDetach>(*by_tag.command).selector.kind(), PciDeviceSelector::Kind::Tag);
}

TEST(Wire, PciEventsAreTheReferencesPayloads) {
  PciDevice nic;
  nic.address = "0000:00:14.3", nic.driver = "vfio-pci";
  nic.vid = "8086", nic.did = "A0F0", nic.vendor_id = 0x8086, nic.device_id = 0xa0f0, nic.pci_class = 2, nic.pci_subclass = 0x80;
  EXPECT_EQ(to_wire(ManagerEvent{PciAttached{nic, "net-vm"}})->dump(),
            R"({"event":"pci_attached","pci_device":{"address":"0000:00:14.3","driver":"vfio-pci","vendor_id":32902,)"
            R"("device_id":41200,"vid":"8086","did":"A0F0","vendor_name":null,"device_name":null,"pci_class":2,)"
            R"("pci_subclass":128,"pci_prog_if":0,"pci_subsystem_vendor_id":null,"pci_subsystem_id":null},"vm":"net-vm"})");
  EXPECT_EQ((*to_wire(ManagerEvent{PciDetached{nic, "net-vm"}}))["event"], "pci_detached");
  EXPECT_EQ((*to_wire(ManagerEvent{PciDetached{nic, "net-vm"}}))["pci_device"].size(), 13u);  // the whole object, unlike usb_detached
}

TEST_F(ProtocolTest, EnableNotificationsMarksTheSession) {
  EXPECT_FALSE(session.notifications);
  EXPECT_EQ(handle(R"({"action":"enable_notifications"})"), R"({"result":"ok"})");
  EXPECT_TRUE(session.notifications);
  EXPECT_EQ(handle(R"({"action":"enable_notifications"})"), R"({"result":"ok"})");  // idempotent
}

struct BadInput {
  const char* line;
  const char* error;  // exact, or a prefix when it ends with "…"
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << testing::PrintToString(std::string(b.line)); }

class BadRequests : public ProtocolTest, public testing::WithParamInterface<BadInput> {};

TEST_P(BadRequests, GetAFailedResponse) {
  auto r = respond(GetParam().line);
  EXPECT_EQ(r["result"], "failed");
  std::string expected = GetParam().error, error = r["error"];
  if (expected.ends_with("…")) EXPECT_TRUE(error.starts_with(expected.substr(0, expected.size() - 3))) << error;
  else EXPECT_EQ(error, expected);
  EXPECT_FALSE(session.notifications);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadRequests,
    testing::Values(BadInput{"not json", "Invalid JSON: …"},
                    BadInput{"", "Invalid JSON: …"},
                    BadInput{"{\"action\":\"usb_list\"", "Invalid JSON: …"},
                    BadInput{"{\"action\":\"usb_list\"} trailing", "Invalid JSON: …"},
                    BadInput{"\"\xff\xfe\"", "Invalid JSON: …"},
                    BadInput{"{\"action\":\"usb_\xc3\"}", "Invalid JSON: …"},
                    BadInput{"{\"action\":\"usb_list\",\"x\":1e999999}", "Invalid JSON: …"},
                    BadInput{"[1,2]", "Invalid message: expected a JSON object"},
                    BadInput{"42", "Invalid message: expected a JSON object"},
                    BadInput{"null", "Invalid message: expected a JSON object"},
                    BadInput{"{}", "No action specified"},
                    BadInput{"{\"action\":null}", "No action specified"},
                    BadInput{"{\"action\":5}", "Invalid message: action must be a string"},
                    BadInput{"{\"action\":[\"usb_list\"]}", "Invalid message: action must be a string"},
                    BadInput{"{\"action\":\"usb_lists\"}", "Unknown message: usb_lists"},
                    BadInput{"{\"action\":\"\"}", "Unknown message: "},
                    BadInput{"{\"action\":\"usb_list\",\"disconnected\":\"yes\"}",
                             "Invalid message: disconnected must be true, false or null"},
                    BadInput{"{\"action\":\"pci_list\",\"tag\":7}", "Invalid message: tag must be a string or null"},
                    BadInput{"{\"action\":\"pci_attach\",\"vm\":\"vm1\"}", "Invalid message: name the device by address, vid and did, or tag"},
                    BadInput{"{\"action\":\"pci_attach\",\"vid\":\"8086\"}", "Invalid message: name the device by address, vid and did, or tag"},
                    BadInput{"{\"action\":\"pci_attach\",\"address\":\"00:14.3\"}", "Invalid message: address must be a PCI address such as 0000:00:14.3"},
                    BadInput{"{\"action\":\"pci_detach\",\"address\":\"0000:00:14.9\"}", "Invalid message: address must be a PCI address such as 0000:00:14.3"},
                    BadInput{"{\"action\":\"pci_detach\",\"address\":\"000:00:14.3\"}", "Invalid message: address must be a PCI address such as 0000:00:14.3"},
                    BadInput{"{\"action\":\"pci_detach\",\"address\":\"0000:00:14.3 \"}", "Invalid message: address must be a PCI address such as 0000:00:14.3"},
                    BadInput{"{\"action\":\"pci_detach\",\"address\":3}", "Invalid message: address must be a string or null"},
                    BadInput{"{\"action\":\"pci_attach\",\"vid\":\"zz\",\"did\":\"1\"}", "Invalid message: vid must be a hex id such as 8086"},
                    BadInput{"{\"action\":\"pci_attach\",\"vid\":\"8086\",\"did\":\"123456\"}", "Invalid message: did must be a hex id such as 8086"}));

TEST(ProtocolLines, OneLineEachWithUtf8Kept) {
  auto line = Protocol::to_line(Protocol::failed("Unknown message: café"));
  EXPECT_EQ(line, "{\"result\":\"failed\",\"error\":\"Unknown message: café\"}\n");
  EXPECT_EQ(Protocol::to_line(Protocol::line_too_long(1048576)),
            "{\"result\":\"failed\",\"error\":\"Message too long: the limit is 1048576 bytes per line\"}\n");
}

}  // namespace
}  // namespace vhp::protocol_test

namespace vhp::protocol_test {
namespace {

class VmmArgsRequest : public ProtocolTest {
 protected:
  VmmArgs parsed(std::string_view line) {
    auto outcome = protocol.handle(line, session);
    EXPECT_TRUE(outcome.command) << (outcome.command ? "" : outcome.response_line());
    return outcome.command ? std::get<VmmArgs>(*outcome.command) : VmmArgs{};
  }
};

TEST_F(VmmArgsRequest, TheReferenceClisNullsAreDefaults) {
  // vhotplugcli sends null for options not given; the reference then fails in int(None).
  auto a = parsed(R"({"action":"vmm_args","vm":"vm1","qemu_bus_prefix":null,"qemu_bus_start_index":null})");
  EXPECT_EQ(a.vm, "vm1");
  EXPECT_EQ(a.qemu_bus_prefix, std::nullopt);
  EXPECT_EQ(a.qemu_bus_start_index, 0);
  EXPECT_FALSE(a.require_pci);
  auto b = parsed(R"({"action":"vmm_args","vm":"vm1","qemu_bus_prefix":"pci_hotplug_","qemu_bus_start_index":1,"require_pci":true})");
  EXPECT_EQ(b.qemu_bus_prefix, "pci_hotplug_");
  EXPECT_EQ(b.qemu_bus_start_index, 1);
  EXPECT_TRUE(b.require_pci);
  EXPECT_EQ(parsed(R"({"action":"vmm_args","vm":"vm1","qemu_bus_start_index":"7"})").qemu_bus_start_index, 7);  // int("7")
}

TEST_F(VmmArgsRequest, BadFieldsAreAnsweredNotRun) {
  EXPECT_EQ(handle(R"({"action":"vmm_args"})"), R"({"result":"failed","error":"VM name is required"})");
  EXPECT_EQ(handle(R"({"action":"vmm_args","vm":""})"), R"({"result":"failed","error":"VM name is required"})");
  for (const char* index : {"-1", "1.5", "\"x\"", "[]", "99999999999"})
    EXPECT_EQ(handle(std::string(R"({"action":"vmm_args","vm":"vm1","qemu_bus_start_index":)") + index + "}"),
              R"({"result":"failed","error":"Invalid message: qemu_bus_start_index must be an integer from 0 to 1000000"})")
        << index;
  EXPECT_EQ(handle(R"({"action":"vmm_args","vm":"vm1","require_pci":"yes"})"),
            R"({"result":"failed","error":"Invalid message: require_pci must be true, false or null"})");
}

TEST_F(VmmArgsRequest, TheAnswerCarriesTheArguments) {
  CommandResult r;
  r.vmm_args = std::vector<std::string>{"-device", "vfio-pci,host=0000:00:14.3"};
  EXPECT_EQ(to_wire(r).dump(), R"({"result":"ok","vmm_args":["-device","vfio-pci,host=0000:00:14.3"]})");
  r.vmm_args = std::vector<std::string>{};
  EXPECT_EQ(to_wire(r).dump(), R"({"result":"ok","vmm_args":[]})");
  EXPECT_EQ(to_wire(CommandResult::failed("VM x is not found in the config file")).dump(),
            R"({"result":"failed","error":"VM x is not found in the config file"})");
}

TEST_F(ProtocolTest, EvdevListHasTheInputDevicesRulesSendSomewhere) {
  DeviceRegistry r;
  EvdevDevice kbd;
  kbd.sys_path = "/sys/devices/platform/i8042/serio0/input/input3/event3";
  kbd.sys_name = "event3", kbd.name = "AT Translated Set 2 keyboard", kbd.bus = "i8042", kbd.device_node = "/dev/input/event3";
  kbd.properties = {{"ID_INPUT_KEYBOARD", "1"}};
  EvdevDevice lid = kbd;
  lid.sys_path = "/sys/devices/LNXSYSTM:00/PNP0C0D:00/input/input2/event2", lid.sys_name = "event2", lid.name = "Lid Switch";
  lid.properties = {};
  r.upsert(kbd);
  r.upsert(lid);
  StateStore s{""};
  DeviceManager m{r, test::make_policy(R"({"vms": [{"name": "gui-vm", "type": "qemu", "socket": "/a"}],
    "evdevPassthrough": [{"targetVm": "gui-vm", "tag": "input", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "1"}]}]})"), s};
  m.evdev_attachments()[kbd.sys_path] = "gui-vm";
  Protocol p{m};
  EXPECT_EQ(nlohmann::ordered_json::parse(p.handle(R"({"action":"evdev_list"})", session).response_line()).dump(),
            R"({"result":"ok","evdev_devices":[{"name":"AT Translated Set 2 keyboard","sys_name":"event3","bus":"i8042",)"
            R"("device_node":"/dev/input/event3","path_tag":null,"allowed_vms":["gui-vm"],"vm":"gui-vm","tag":"input"}]})");
}

}  // namespace
}  // namespace vhp::protocol_test
