// general.api parsing: defaults, every key, and errors that name the JSON path.
#include <gtest/gtest.h>

#include "policy/config.h"
#include "support/policy.h"

namespace vhp::config_test {
namespace {

using json = nlohmann::json;

TEST(ApiConfig, ReferenceDefaultsWhenTheSectionIsAbsent) {
  auto c = parse_config(json::object(), "test");
  EXPECT_TRUE(c.general.api.enable);
  EXPECT_TRUE(c.general.api.transports.empty());  // the reference listens nowhere without transports
  EXPECT_EQ(c.general.api.host, "127.0.0.1");
  EXPECT_EQ(c.general.api.port, 2000);
  EXPECT_EQ(c.general.api.unix_socket, "/var/lib/vhotplug/vhotplug.sock");
  EXPECT_EQ(c.general.api.max_line_bytes, 1024u * 1024u);
  EXPECT_EQ(c.general.api.max_clients, 1024u);
}

TEST(ApiConfig, BuiltInDefaultListensOnTheUnixSocket) {
  auto c = builtin_config();
  EXPECT_EQ(c.general.api.transports, std::vector<std::string>{"unix"});
  EXPECT_EQ(c.source, "built-in default");
}

TEST(ApiConfig, EveryKey) {
  auto c = parse_config(json::parse(R"({"general":{"api":{"enable":true,"host":"0.0.0.0","port":2001,
      "transports":["tcp","vsock","unix","tcp"],"allowedCids":[3,4,5],"unixSocket":"/run/v.sock",
      "unixSocketUser":"microvm","unixSocketGroup":"kvm","unixSocketMode":"0660","allowedUsers":["root",1000],
      "allowedGroups":["kvm"],"maxLineBytes":4096,"maxClients":8,"sendQueueBytes":65536,"sendTimeoutMs":500}},
      "crosvmUseRootBus":true})"), "test");
  const auto& a = c.general.api;
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 2001);
  EXPECT_EQ(a.transports, (std::vector<std::string>{"tcp", "vsock", "unix"}));
  EXPECT_EQ(a.allowed_cids, (std::vector<unsigned>{3, 4, 5}));
  EXPECT_EQ(a.unix_socket, "/run/v.sock");
  EXPECT_EQ(a.unix_socket_user, "microvm");
  EXPECT_EQ(a.unix_socket_group, "kvm");
  EXPECT_EQ(a.unix_socket_mode, 0660u);
  ASSERT_EQ(a.allowed_users.size(), 2u);
  EXPECT_EQ(a.allowed_users[0].name, "root");
  EXPECT_EQ(a.allowed_users[1].id, 1000u);
  EXPECT_EQ(a.max_line_bytes, 4096u);
  EXPECT_EQ(a.max_clients, 8u);
  EXPECT_EQ(a.send_queue_bytes, 65536u);
  EXPECT_EQ(a.send_timeout_ms, 500);
  EXPECT_EQ(c.warnings, std::vector<std::string>{"(top level).crosvmUseRootBus: unknown key, ignored"});
}

TEST(ThunderConfig, OffWhenAbsentOnWhenPresent) {
  EXPECT_FALSE(parse_config(json::object(), "test").general.thunder.enable);
  auto c = parse_config(json::parse(R"({"general":{"thunder":{"port":9999,"callsign":"org.rdk.USBHub","maxClients":8}}})"), "test");
  EXPECT_TRUE(c.general.thunder.enable);
  EXPECT_EQ(c.general.thunder.host, "127.0.0.1");
  EXPECT_EQ(c.general.thunder.port, 9999);
  EXPECT_EQ(c.general.thunder.callsign, "org.rdk.USBHub");
  EXPECT_EQ(c.general.thunder.max_clients, 8u);
  EXPECT_FALSE(parse_config(json::parse(R"({"general":{"thunder":{"enable":false}}})"), "test").general.thunder.enable);
  EXPECT_THROW(parse_config(json::parse(R"({"general":{"thunder":{"callsign":"a/b"}}})"), "test"), ConfigError);
  EXPECT_THROW(parse_config(json::parse(R"({"general":{"thunder":{"port":0}}})"), "test"), ConfigError);
}

TEST(ApiConfig, NullAllowedCidsAllowsEveryCid) {
  auto c = parse_config(json::parse(R"({"general":{"api":{"allowedCids":null}}})"), "test");
  EXPECT_TRUE(c.general.api.allowed_cids.empty());
}

struct Bad {
  const char* config;
  const char* error;
};

void PrintTo(const Bad& b, std::ostream* os) { *os << b.config; }

class BadApiConfig : public testing::TestWithParam<Bad> {};

TEST_P(BadApiConfig, NamesThePathAndTheProblem) {
  try {
    parse_config(json::parse(GetParam().config), "test");
    FAIL() << "accepted " << GetParam().config;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), GetParam().error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadApiConfig,
    testing::Values(
        Bad{R"([])", R"((top level): expected an object, got [])"},
        Bad{R"({"general":[]})", R"(general: expected an object, got [])"},
        Bad{R"({"general":{"api":{"port":"2000"}}})", R"(general.api.port: expected an integer 1-65535, got "2000")"},
        Bad{R"({"general":{"api":{"port":70000}}})", R"(general.api.port: expected an integer 1-65535, got 70000)"},
        Bad{R"({"general":{"api":{"transports":["usb"]}}})",
            R"(general.api.transports[0]: expected "tcp", "vsock" or "unix", got "usb")"},
        Bad{R"({"general":{"api":{"transports":"tcp"}}})", R"(general.api.transports: expected a list, got "tcp")"},
        Bad{R"({"general":{"api":{"allowedCids":[3,"x"]}}})", R"(general.api.allowedCids[1]: expected a CID, got "x")"},
        Bad{R"({"general":{"api":{"unixSocketMode":"rw"}}})", R"(general.api.unixSocketMode: expected an octal mode such as "0660", got "rw")"},
        Bad{R"({"general":{"api":{"enable":"yes"}}})", R"(general.api.enable: expected true or false, got "yes")"},
        Bad{R"({"general":{"api":{"allowedUsers":[true]}}})", R"(general.api.allowedUsers[0]: expected a name or a numeric id, got true)"},
        Bad{R"({"general":{"api":{"maxLineBytes":10}}})", R"(general.api.maxLineBytes: expected an integer 256-67108864, got 10)"}));

Config load(const char* name) { return load_config_file(std::string(VHP_TEST_DATA) + "/" + name); }

TEST(FullConfigs, TheReferenceExampleWithEveryKeyLoads) {
  auto c = load("reference-example.json");
  EXPECT_EQ(c.vms.size(), 2u);
  EXPECT_EQ(c.usb.size(), 3u);
  EXPECT_EQ(c.pci.size(), 1u);
  EXPECT_EQ(c.evdev.size(), 1u);
  ASSERT_EQ(c.acpi.size(), 1u);
  EXPECT_EQ(c.acpi[0].tables[0].set_user, "microvm");
  EXPECT_EQ(c.usb_authorization.host_allow.size(), 1u);
  EXPECT_EQ(c.general.crosvm, "/usr/local/bin/crosvm");
  EXPECT_EQ(c.general.ovmf_code, "/usr/share/OVMF/OVMF_CODE.fd");
  EXPECT_EQ(c.general.api.unix_socket_mode, 0660u);
  EXPECT_TRUE(c.pci[0].iommu_add_all && c.pci[0].auto_ovmf && c.pci[0].qemu_use_root_bus && c.pci[0].skip_on_suspend);
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
}

TEST(FullConfigs, AGhafShapedConfigLoadsWithoutWarnings) {
  auto c = load("ghaf-like.json");
  EXPECT_EQ(c.vms.size(), 5u);
  EXPECT_EQ(c.usb.size(), 7u);
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();  // crosvmUseRootBus, which Ghaf writes (for ghaf-device-manager), is known
  EXPECT_TRUE(c.pci[0].crosvm_use_root_bus);
}

TEST(FullConfigs, RestoreHostDriverIsOnUnlessARuleSaysOtherwise) {
  auto c = parse_config(json::parse(R"({"pciPassthrough": [{"targetVm": "a", "allow": [{"address": "0000:00:14.3"}]},
                                                   {"targetVm": "a", "restoreHostDriver": false, "allow": [{"address": "0000:00:14.0"}]}]})"), "test");
  EXPECT_TRUE(c.pci[0].restore_host_driver);
  EXPECT_FALSE(c.pci[1].restore_host_driver);
}

// Which VM the Ghaf-shaped config picks, device by device.
TEST(FullConfigs, GhafShapedConfigPicksTheVmsGhafExpects) {
  Policy p(load("ghaf-like.json"), std::make_shared<test::FakeModules>());
  auto usb = [](const char* vid, const char* pid, const char* interfaces, int cls = 0, int sub = 0, int proto = 0) {
    UsbDevice d;
    d.vid = vid, d.pid = pid, d.interfaces = interfaces, d.busnum = 1, d.ports = {2};
    d.device_class = cls, d.device_subclass = sub, d.device_protocol = proto;
    return d;
  };
  auto vms = [&](const UsbDevice& d) {
    auto m = p.match_usb(d);
    return m ? m->vms() : std::vector<std::string>{};
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(vms(usb("413c", "2113", ":030101:030000:")), V{"gui-vm"});           // keyboard
  EXPECT_EQ(vms(usb("0781", "5581", ":080650:")), V{"gui-vm"});                  // stick
  EXPECT_EQ(vms(usb("0bda", "8153", ":020600:0a0000:")), V{"net-vm"});           // USB NIC
  EXPECT_EQ(vms(usb("0d8c", "0014", ":010100:010200:030000:")), V{"audio-vm"});  // headset
  EXPECT_EQ(vms(usb("8087", "0026", ":e00101:", 224, 1, 1)), V{"audio-vm"});     // Bluetooth
  // A webcam with a microphone: audio-vm's group denies video, so the later webcam groups decide.
  EXPECT_EQ(vms(usb("046d", "0825", ":0e0100:0e0200:010100:010200:")), (V{"chrome-vm", "business-vm"}));
  EXPECT_EQ(vms(usb("04f2", "b7b6", ":0e0100:0e0200:")), V{"business-vm"});      // internal webcam
  auto static_keyboard = usb("04f2", "b751", ":ffffff:");
  EXPECT_EQ(vms(static_keyboard), V{"gui-vm"});                                   // by ids
  static_keyboard.vid = "1111", static_keyboard.busnum = 3, static_keyboard.ports = {7, 1};
  EXPECT_EQ(vms(static_keyboard), V{"gui-vm"});                                   // by place
  EXPECT_EQ(vms(usb("1a86", "7523", ":ff0102:")), V{});                           // serial adapter: nobody
}

TEST(ConfigFile, AMissingFileIsAnError) {
  EXPECT_THROW(load_config_file("/nonexistent/vhotplug.conf"), ConfigError);
}

TEST(RuleValidation, EveryProblemIsReportedWithItsPath) {
  try {
    parse_config(json::parse(R"({
      "vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}, {"name": "vm1", "type": "kvm", "socket": "/b"},
              {"type": "qemu", "socket": "/c"}],
      "usbPassthrough": [
        {"targetVm": "vm1", "allow": [{"vendorId": "1050", "productId": "0407"}]},
        {"targetVm": "vm9", "allow": [{"bus": 1, "port": "2..1"}]},
        {"allowedVms": ["vm1", "ghost"], "allow": [{"vendorId": "zz", "productId": "0407"}, {"productName": "(unclosed"},
                                                  {"interfaceClass": 300}, {"disable": "yes", "deviceClass": 3}]}],
      "pciPassthrough": [{"targetVm": "vm1", "allow": [{"vendorId": "18086", "deviceId": "1"}]}],
      "acpiPassthrough": [{"targetVm": "vm1", "allow": [{"setUser": "x"}]}],
      "general": {"persistency": "yes"}})"), "test");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    std::string text = e.what();
    for (const char* expected : {
             R"(vms[1].name: duplicate VM name "vm1")",
             R"(vms[1].type: expected "qemu", "crosvm" or "cloud-hypervisor", got "kvm")",
             R"(vms[2].name: missing)",
             R"(usbPassthrough[1].allow[0].port: expected a root port 1-255 or a port path such as "2.1", got "2..1")",
             R"(usbPassthrough[2].allow[0].vendorId: expected a 4-digit hex string, got "zz")",
             R"(usbPassthrough[2].allow[1].productName: invalid regular expression "(unclosed")",
             R"(usbPassthrough[2].allow[2].interfaceClass: expected an integer 0-255, got 300)",
             R"(usbPassthrough[2].allow[3].disable: expected true or false, got "yes")",
             R"(pciPassthrough[0].allow[0].vendorId: expected a hex string of at most 4 digits, got "18086")",
             R"(acpiPassthrough[0].allow[0].acpiTable: missing)",
             R"(general.persistency: expected true or false, got "yes")"})
      EXPECT_NE(text.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n" << text;
  }
}

// What only a backtracking engine can run is refused at load, saying why.
TEST(RuleValidation, PythonOnlyRegexSyntaxIsAClearError) {
  auto error = [](const char* name) {
    try {
      parse_config(json{{"usbPassthrough", {{{"targetVm", "vm1"}, {"allow", {{{"productName", name}}}}}}}}, "test");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error("Key(?=board)").find(R"x(usbPassthrough[0].allow[0].productName: invalid regular expression "Key(?=board)": )x"
                                       "invalid perl operator: (?= (lookaround assertions are not supported: rules match in linear time)"),
            std::string::npos)
      << error("Key(?=board)");
  EXPECT_NE(error(R"((a)\1)").find("(backreferences are not supported: rules match in linear time)"), std::string::npos) << error(R"((a)\1)");
  EXPECT_NE(error(std::string(1025, 'a').c_str()).find("regular expression longer than 1024 bytes"), std::string::npos);
}

TEST(RuleValidation, AVmMissingFromVmsIsAWarningNotAnError) {
  auto c = parse_config(json::parse(R"({
      "vms": [{"name": "chrome-vm", "type": "qemu", "socket": "/a"}],
      "usbPassthrough": [{"allowedVms": ["chrome-vm", "business-vm"], "allow": [{"interfaceClass": 14}]},
                         {"targetVm": "vm9", "allow": [{"interfaceClass": 3}]}]})"), "test");
  EXPECT_EQ(c.warnings, (std::vector<std::string>{
                            R"(usbPassthrough[0].allowedVms[1]: VM "business-vm" is not in vms; devices for it stay on the host)",
                            R"(usbPassthrough[1].targetVm: VM "vm9" is not in vms; devices for it stay on the host)"}));
}

TEST(RuleValidation, AUsbRuleForACloudHypervisorVmIsAWarning) {
  auto c = parse_config(json::parse(R"({
      "vms": [{"name": "storage-vm", "type": "cloud-hypervisor", "socket": "/ch"}, {"name": "vm1", "type": "qemu", "socket": "/a"}],
      "usbPassthrough": [{"allowedVms": ["vm1", "storage-vm"], "allow": [{"interfaceClass": 8}]}],
      "pciPassthrough": [{"targetVm": "storage-vm", "allow": [{"address": "0000:02:00.0"}]}]})"), "test");
  EXPECT_EQ(c.warnings, std::vector<std::string>{R"(usbPassthrough[0].allowedVms[1]: VM "storage-vm" is a cloud-hypervisor VM, )"
                                                 R"(which cannot take USB devices; they stay on the host)"});
}

// Bounded in length before compiling; RE2 compiles without recursion, within a memory budget.
TEST(RuleValidation, PatternsAreBoundedBeforeTheyAreCompiled) {
  auto config = [](const std::string& pattern) {
    return json{{"vms", json::array()}, {"usbPassthrough", {{{"allow", {{{"productName", pattern}}}}}}}};
  };
  EXPECT_NO_THROW(parse_config(config(std::string(500, '(') + "a" + std::string(500, ')')), "test"));
  EXPECT_THROW(parse_config(config("a{1000}{1000}"), "test"), ConfigError);  // over RE2's repeat and memory bounds
  EXPECT_THROW(parse_config(config(std::string(1025, 'a')), "test"), ConfigError);
}

TEST(RuleValidation, RulesThatCanNeverApplyAreWarnings) {
  auto c = parse_config(json::parse(R"({
      "vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}],
      "usbPassthrough": [
        {"allow": [{"vendorName": ".*"}]},
        {"targetVm": "vm1", "allow": [{"vendorId": "1050"}, {"removable": ["fixed"]}, {"bus": 1},
                                      {"interfaceClass": 8, "removable": "fixed"}, {"deviceClass": 8, "colour": "red"}]}]})"),
      "test");
  EXPECT_EQ(c.warnings, (std::vector<std::string>{
                            "usbPassthrough[0]: neither targetVm nor allowedVms; a device it matches goes on to the next group",
                            "usbPassthrough[1].allow[0]: vendorId and productId only match together; this pair never matches",
                            "usbPassthrough[1].allow[0]: no criterion that can match; the entry never matches",
                            "usbPassthrough[1].allow[1]: no criterion that can match; the entry never matches",
                            "usbPassthrough[1].allow[2]: bus and port only match together; this pair never matches",
                            "usbPassthrough[1].allow[2]: no criterion that can match; the entry never matches",
                            "usbPassthrough[1].allow[3].removable: not a list of strings; the entry never matches",
                            "usbPassthrough[1].allow[4].colour: unknown key, ignored"}));
}

}  // namespace
}  // namespace vhp::config_test
