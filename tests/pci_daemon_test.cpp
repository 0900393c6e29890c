// The Ghaf kill switch's PCI flow end to end: vhotplugd as a child process on a umockdev host (its
// sysfs writes answered by FakeVfioKernel), its VM a monitor answering with QEMU 7.2's captured
// replies (FakeQemuPci), driven by vhotplugctl exactly as killswitch.nix calls vhotplugcli.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/client.h"
#include "support/fake_qemu_pci.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::pci_daemon_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::eventually;

class PciKillSwitch : public testing::Test {
 protected:
  PciKillSwitch() {
    test::add_realistic_host(tb);
    socket_path = dir / "vhotplug.sock";
    json config = json::parse(R"({"pciPassthrough": [
      {"targetVm": "net-vm", "tag": "net", "allow": [{"address": "0000:00:14.3", "vendorId": "8086", "deviceId": "a0f0"}]},
      {"targetVm": "audio-vm", "tag": "mic", "allow": [{"deviceClass": 4, "deviceSubclass": 3}]}]})");
    config["vms"] = {{{"name", "net-vm"}, {"type", "qemu"}, {"socket", dir / "net-vm.qmp"}},
                     {{"name", "audio-vm"}, {"type", "qemu"}, {"socket", dir / "audio-vm.qmp"}}};
    config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}};
    std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  }

  void start_daemon() {
    daemon = std::make_unique<test::Child>(std::vector<std::string>{VHOTPLUGD_BINARY, "-a", "-c", dir / "vhotplug.conf"},
                                           dir / "daemon.out", dir / "daemon.log");
    ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(socket_path); })) << log();
  }
  std::string log() { return test::read_file(dir / "daemon.log"); }
  test::ProcessResult cli(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCTL_BINARY, "-t", "unix", "-u", socket_path};
    argv.insert(argv.end(), args);
    return test::run_capture(argv);
  }
  // `vhotplugcli pci list --tag T --connected`, as the kill switch reads a device's state: "address@vm".
  std::vector<std::string> connected(const std::string& tag) {
    auto r = cli({"--json", "pci", "list", "--tag", tag, "--connected"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> out;
    for (const auto& d : json::parse(r.out)) out.push_back(d["address"].get<std::string>() + "@" + (d["vm"].is_null() ? "-" : d["vm"].get<std::string>()));
    return out;
  }

  test::Testbed tb;
  test::TempDir dir;
  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi", "snd_hda_intel"}};
  test::FakeQemuPci net_vm{dir / "net-vm.qmp"}, audio_vm{dir / "audio-vm.qmp"};
  std::string socket_path;
  std::unique_ptr<test::Child> daemon;
};

TEST_F(PciKillSwitch, BlockAndUnblockByTagRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  // -a: each card to its VM at start, bound to vfio-pci and hot-plugged into the first free port.
  ASSERT_TRUE(eventually([&] { return connected("net") == std::vector<std::string>{"0000:00:14.3@net-vm"}; })) << log();
  ASSERT_TRUE(eventually([&] { return connected("mic") == std::vector<std::string>{"0000:00:1f.3@audio-vm"}; })) << log();
  EXPECT_EQ(net_vm.held(), (std::map<std::string, std::string>{{"0000:00:14.3", "vhp-pci-0000-00-14.3"}}));
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");

  ApiClient listener(ClientOptions{.transport = "unix", .path = socket_path, .timeout_ms = 5000});
  ASSERT_EQ(listener.request({{"action", "enable_notifications"}})["result"], "ok");

  // Block: the card leaves its VM and goes back to its host driver; the state survives restarts.
  auto block = cli({"pci", "detach", "--tag", "net"});
  EXPECT_EQ(block.exit_code, 0) << block.err;
  EXPECT_EQ(block.err, "INFO Successfully detached\n");
  EXPECT_EQ(connected("net"), std::vector<std::string>{});
  EXPECT_TRUE(net_vm.held().empty());
  EXPECT_TRUE(eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  auto detached = json::parse(listener.read_line());
  EXPECT_EQ(detached["event"], "pci_detached");
  EXPECT_EQ(detached["vm"], "net-vm");
  EXPECT_EQ(detached["pci_device"]["address"], "0000:00:14.3");
  EXPECT_NE(test::read_file(dir / "state.json").find("\"pci-0000:00:14.3\""), std::string::npos);
  EXPECT_EQ(connected("mic"), std::vector<std::string>{"0000:00:1f.3@audio-vm"});  // the other tag untouched

  // Unblock.
  auto unblock = cli({"pci", "attach", "--tag", "net"});
  EXPECT_EQ(unblock.exit_code, 0) << unblock.err;
  EXPECT_EQ(connected("net"), std::vector<std::string>{"0000:00:14.3@net-vm"});
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");
  EXPECT_EQ(json::parse(listener.read_line())["event"], "pci_attached");

  // By address, with the reference's errors.
  auto wrong_vm = cli({"pci", "attach", "--address", "0000:00:1f.3", "--vm", "net-vm"});
  EXPECT_EQ(wrong_vm.exit_code, 1);
  EXPECT_EQ(wrong_vm.err, "ERROR Failed to attach PCI: Selected VM net-vm but target VM is set to audio-vm\n");
  EXPECT_EQ(cli({"pci", "detach", "--vid", "8086", "--did", "a0f0"}).exit_code, 0);
  EXPECT_TRUE(net_vm.held().empty());
  auto again = cli({"pci", "detach", "--address", "0000:00:14.3"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.err, "ERROR Failed to detach PCI: Device 0000:00:14.3 8086:A0F0 (None None) is not attached to any VM\n");
}

// A daemon restart keeps the user's block: -a attaches everything else, the card stays on the host.
TEST_F(PciKillSwitch, ABlockSurvivesADaemonRestart) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  ASSERT_TRUE(eventually([&] { return connected("net") == std::vector<std::string>{"0000:00:14.3@net-vm"}; })) << log();
  ASSERT_EQ(cli({"pci", "detach", "--tag", "net"}).exit_code, 0);
  daemon.reset();
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  ASSERT_TRUE(eventually([&] { return connected("mic") == std::vector<std::string>{"0000:00:1f.3@audio-vm"}; })) << log();
  EXPECT_EQ(connected("net"), std::vector<std::string>{});
  EXPECT_TRUE(net_vm.held().empty());
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "iwlwifi");
}

}  // namespace
}  // namespace vhp::pci_daemon_test
