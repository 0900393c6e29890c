// Ghaf's VM start scripts end to end: `vhotplugcli vmm args …` as the VM's extraArgsScript (QEMU)
// or crosvm start runs it, against vhotplugd as a child process on a umockdev host whose vfio
// writes FakeVfioKernel answers. The expected outputs are derived from the reference's and
// ghaf-device-manager's source (tests/data/vmm_args/README.md says how).
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::vmm_args_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::eventually;

// The laptop's built-in input devices and an NVIDIA GPU with its HDMI audio (README.md lists them).
void add_ghaf_laptop_extras(test::Testbed& tb, const test::HostPaths& host) {
  tb.add_pci({.address = "0000:01:00.0", .vendor = "10de", .device = "2860", .class_code = 0x030000, .driver = "nvidia", .iommu_group = 14});
  tb.add_pci({.address = "0000:01:00.1", .vendor = "10de", .device = "22bd", .class_code = 0x040300, .driver = "snd_hda_intel", .iommu_group = 14});
  auto i8042 = tb.add_device("platform", "i8042", "", {}, {});
  auto serio0 = tb.add_device("serio", "serio0", i8042, {}, {});
  auto serio1 = tb.add_device("serio", "serio1", i8042, {}, {});
  auto lid = tb.add_device("acpi", "PNP0C0D:00", "", {}, {});
  auto button = tb.add_device("acpi", "PNP0C0C:00", "", {}, {});
  test::add_input(tb, serio0, 0, "AT Translated Set 2 keyboard",
            {{"ID_INPUT_KEY", "1"}, {"ID_INPUT_KEYBOARD", "1"}, {"ID_BUS", "i8042"}, {"ID_PATH_TAG", "platform-i8042-serio-0"}});
  test::add_input(tb, serio1, 5, "SynPS/2 Synaptics TouchPad",
            {{"ID_INPUT_TOUCHPAD", "1"}, {"ID_INPUT_MOUSE", "1"}, {"ID_BUS", "i8042"}, {"ID_PATH_TAG", "platform-i8042-serio-1"}});
  test::add_input(tb, lid, 2, "Lid Switch", {{"ID_INPUT_SWITCH", "1"}, {"ID_PATH_TAG", "acpi-PNP0C0D_00"}});
  test::add_input(tb, button, 3, "Power Button", {{"ID_INPUT_KEY", "1"}, {"ID_PATH_TAG", "acpi-PNP0C0C_00"}});
  test::add_input(tb, host.keyboard_a, 9, "USB Keyboard", {{"ID_INPUT_KEYBOARD", "1"}, {"ID_BUS", "usb"}});
}

class VmmArgsGolden : public testing::TestWithParam<std::string> {
 protected:
  VmmArgsGolden() {
    auto host = test::add_realistic_host(tb);
    add_ghaf_laptop_extras(tb, host);
    fs::create_directories(tb.sys_dir() + "/firmware/acpi/tables");
    std::ofstream(tb.sys_dir() + "/firmware/acpi/tables/NHLT") << "NHLT";
    ::chown((tb.sys_dir() + "/firmware/acpi/tables/NHLT").c_str(), 65534, 65534);  // nobody: the chown must show
  }

  json load(const std::string& name) {
    std::ifstream in(std::string(VHP_TEST_DATA) + "/vmm_args/" + name);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    for (size_t at; (at = text.find("@DIR@")) != std::string::npos;) text.replace(at, 5, dir.path());
    return json::parse(text);
  }
  void start_daemon(const json& config) {
    std::ofstream(dir / "vhotplug.conf") << config.dump(2);
    daemon = std::make_unique<test::Child>(std::vector<std::string>{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, dir / "daemon.out",
                                           dir / "daemon.log");
    ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(dir / "vhotplug.sock"); })) << log();
  }
  std::string log() { return test::read_file(dir / "daemon.log"); }
  test::ProcessResult vmm_args(const std::string& vm, const std::vector<std::string>& args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock", "vmm", "args", "--vm", vm};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_capture(argv);
  }

  test::Testbed tb;
  test::TempDir dir;
  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi", "snd_hda_intel", "nvidia", "xhci_hcd", "i915"}};
  std::unique_ptr<test::Child> daemon;
};

TEST_P(VmmArgsGolden, ArgumentsAreExactlyTheReferences) {
  auto data = load(GetParam());
  ASSERT_NO_FATAL_FAILURE(start_daemon(data["config"]));
  for (const auto& c : data["cases"]) {
    auto r = vmm_args(c["vm"], c["args"].get<std::vector<std::string>>());
    SCOPED_TRACE("vmm args --vm " + c["vm"].get<std::string>() + " " + c["args"].dump());
    EXPECT_EQ(r.exit_code, c.value("exit", 0)) << r.err << log();
    EXPECT_EQ(r.out, c.value("stdout", ""));
    if (c.contains("stderr")) {
      EXPECT_EQ(r.err, c["stderr"].get<std::string>());
    }
  }
  // The VM opens them at start: bound to vfio-pci by the request, the rest of the host untouched.
  for (const auto& address : data["bound"]) EXPECT_EQ(kernel.driver(address), "vfio-pci") << address;
  EXPECT_EQ(kernel.driver("0000:00:02.0"), "i915");
  EXPECT_EQ(kernel.driver("0000:00:14.0"), "xhci_hcd");
}

INSTANTIATE_TEST_SUITE_P(Configs, VmmArgsGolden, testing::Values("reference-config.json", "ghaf-qemu.json", "ghaf-crosvm.json"),
                         [](const auto& info) {
                           auto name = info.param.substr(0, info.param.find('.'));
                           std::erase(name, '-');
                           return name;
                         });

class VmmArgs : public VmmArgsGolden {};

TEST_F(VmmArgs, TheAcpiTableIsChownedAsTheRuleSays) {
  auto data = load("ghaf-qemu.json");
  ASSERT_NO_FATAL_FAILURE(start_daemon(data["config"]));
  ASSERT_EQ(vmm_args("audio-vm", {}).exit_code, 0);
  struct stat st{};
  ASSERT_EQ(::stat((tb.sys_dir() + "/firmware/acpi/tables/NHLT").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

TEST_F(VmmArgs, TheCliKeepsTryingUntilTheDaemonAnswersAndGivesUpAtItsTimeout) {
  auto data = load("ghaf-qemu.json");
  std::ofstream(dir / "vhotplug.conf") << data["config"].dump(2);
  // Nobody listens yet: the reference's warning, again each second, then the last error.
  auto r = vmm_args("net-vm", {"--timeout", "1.5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("WARNING Failed to connect: [Errno 2] No such file or directory\n"), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.ends_with("ERROR Failed to connect: [Errno 2] No such file or directory\n")) << r.err;
  // Started while the CLI waits: it gets its answer.
  test::Child cli({VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock", "vmm", "args", "--vm", "net-vm", "--qemu-bus-prefix",
                   "pci_hotplug_", "--qemu-bus-start-index", "1", "--timeout", "60"},
                  dir / "cli.out", dir / "cli.err");
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "cli.err").find("WARNING") != std::string::npos; }));
  ASSERT_NO_FATAL_FAILURE(start_daemon(data["config"]));
  ASSERT_TRUE(eventually([&] { return !cli.running(); })) << test::read_file(dir / "cli.err");
  EXPECT_EQ(cli.exit_code(), 0);
  EXPECT_EQ(test::read_file(dir / "cli.out"), "-device vfio-pci,host=0000:00:14.3,multifunction=on,id=vhp-pci-1,bus=pci_hotplug_1");
}

TEST_F(VmmArgs, RequirePciWaitsForTheNamedDeviceToAppear) {
  auto data = load("ghaf-crosvm.json");
  ASSERT_NO_FATAL_FAILURE(start_daemon(data["config"]));
  test::Child cli({VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock", "vmm", "args", "--vm", "net-vm", "--require-pci", "--timeout", "60"},
                  dir / "cli.out", dir / "cli.err");
  ASSERT_TRUE(eventually([&] { return test::read_file(dir / "cli.err").find("no matching devices are present") != std::string::npos; }));
  auto camera = tb.add_pci({.address = "0000:00:0a.0", .vendor = "8086", .device = "a75d", .class_code = 0x048000, .driver = "nvidia", .iommu_group = 20});
  tb.uevent(camera, "add");
  ASSERT_TRUE(eventually([&] { return !cli.running(); })) << test::read_file(dir / "cli.err") << log();
  EXPECT_EQ(cli.exit_code(), 0);
  EXPECT_EQ(test::read_file(dir / "cli.out"), "--vfio-isolate-hotplug --vfio /sys/bus/pci/devices/0000:00:0a.0,iommu=viommu,removable=true");
  EXPECT_EQ(kernel.driver("0000:00:0a.0"), "vfio-pci");
}

}  // namespace
}  // namespace vhp::vmm_args_test
