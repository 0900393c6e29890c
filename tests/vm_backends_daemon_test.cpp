// crosvm and cloud-hypervisor VMs end to end. crosvm: vhotplugd as a child process on the umockdev host, `general.crosvm` the
// command-line stand-in (tests/support/fake_crosvm.cpp), its VM's control socket a real
// SOCK_SEQPACKET listener, PCI through FakeVfioKernel; driven by vhotplugcli as Ghaf drives it.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/control_socket.h"
#include "support/fake_cloud_hypervisor.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::vm_backends_daemon_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::eventually;

class CrosvmDaemon : public testing::Test {
 protected:
  CrosvmDaemon() {
    host = test::add_realistic_host(tb);
    auto spec = test::security_key_spec(host.hub);
    spec.name = "1-2.2", spec.devnum = 40, spec.dev_node = true;
    tb.add_usb(spec);
    json config = json::parse(R"({
      "usbPassthrough": [{"targetVm": "gui-vm", "tag": "key", "allow": [{"bus": 1, "port": "2.2"}]}],
      "pciPassthrough": [{"targetVm": "gui-vm", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})");
    config["vms"] = {{{"name", "gui-vm"}, {"type", "crosvm"}, {"socket", socket}}};
    config["general"] = {{"statePath", dir / "state.json"}, {"crosvm", FAKE_CROSVM_BINARY},
                         {"api", {{"transports", {"unix"}}, {"unixSocket", dir / "vhotplug.sock"}}}};
    std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  }
  void start_daemon(bool attach_connected = true) {
    std::vector<std::string> argv{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"};
    if (attach_connected) argv.push_back("-a");
    daemon = std::make_unique<test::Child>(argv, dir / "daemon.out", dir / "daemon.log");
    ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(dir / "vhotplug.sock"); })) << log();
  }
  std::string log() { return test::read_file(dir / "daemon.log"); }
  test::ProcessResult cli(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock"};
    argv.insert(argv.end(), args);
    return test::run_capture(argv);
  }
  // What the VM holds, from the crosvm stand-in's state: USB ports with their nodes, VFIO paths.
  json crosvm() {
    std::ifstream in(socket + ".fake-crosvm");
    auto s = in ? json::parse(in) : json::object();
    json usb = json::array();
    auto ports = s.value("usb", json::object());  // kept: a range-for over a temporary's member dangles
    for (const auto& [port, d] : ports.items()) usb.push_back(d["node"]);
    return {{"usb", usb}, {"vfio", s.value("vfio", json::array())}};
  }
  std::string vm_of(const char* kind, const std::string& tag) {
    auto r = cli({"--json", kind, "list", "--tag", tag});
    auto list = json::parse(r.out, nullptr, false);
    if (!list.is_array() || list.size() != 1) return "?";
    return list[0]["vm"].is_null() ? "-" : list[0]["vm"].get<std::string>();
  }

  test::Testbed tb;
  test::HostPaths host;
  test::TempDir dir;
  std::string socket = dir / "gui-vm.sock";
  test::ControlSocket vm{socket};
  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi", "xhci_hcd"}};
  std::unique_ptr<test::Child> daemon;
};

const json kBoth = json::parse(R"({"usb": ["/dev/bus/usb/001/040"], "vfio": ["/sys/bus/pci/devices/0000:00:14.3"]})");

TEST_F(CrosvmDaemon, DevicesGoToTheCrosvmVmAndComeBackAsWithQemu) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  ASSERT_TRUE(eventually([&] { return crosvm() == kBoth; })) << crosvm().dump() << log();
  EXPECT_TRUE(eventually([&] { return vm_of("usb", "key") == "gui-vm" && vm_of("pci", "net") == "gui-vm"; })) << log();
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");

  // The kill switch's block: out of the VM, the card back to its host driver.
  EXPECT_EQ(cli({"usb", "detach", "--tag", "key"}).exit_code, 0);
  EXPECT_EQ(cli({"pci", "detach", "--tag", "net"}).exit_code, 0) << log();
  EXPECT_EQ(crosvm(), json::parse(R"({"usb": [], "vfio": []})"));
  EXPECT_TRUE(eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  EXPECT_EQ(cli({"usb", "attach", "--tag", "key"}).exit_code, 0);
  EXPECT_EQ(cli({"pci", "attach", "--tag", "net"}).exit_code, 0) << log();
  EXPECT_EQ(crosvm(), kBoth);

  // The VM restarts (a new socket, an empty VM): its devices come back.
  vm.close();
  ASSERT_TRUE(eventually([&] { return vm_of("usb", "key") == "-"; })) << log();
  fs::remove(socket + ".fake-crosvm");
  vm.open();
  ASSERT_TRUE(eventually([&] { return crosvm() == kBoth; })) << crosvm().dump() << log();

  // The daemon restarts: what the VM holds is found again, not added twice.
  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  ASSERT_TRUE(eventually([&] { return vm_of("usb", "key") == "gui-vm" && vm_of("pci", "net") == "gui-vm"; })) << log();
  EXPECT_EQ(crosvm(), kBoth);
}

// Two identical keys in the VM: crosvm's `usb list` cannot tell them apart, the port book in the
// state file can. A daemon restarted without -a finds both and detaches exactly the one asked for.
TEST_F(CrosvmDaemon, ARestartedDaemonTellsIdenticalDevicesApartByTheirPorts) {
  auto spec = test::security_key_spec(host.hub);
  spec.name = "1-2.3", spec.devnum = 41, spec.dev_node = true;
  tb.add_usb(spec);
  auto config = json::parse(test::read_file(dir / "vhotplug.conf"));
  config["usbPassthrough"][0]["allow"].push_back({{"bus", 1}, {"port", "2.3"}});
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  const auto both = json::parse(R"(["/dev/bus/usb/001/040", "/dev/bus/usb/001/041"])");
  ASSERT_TRUE(eventually([&] { return crosvm()["usb"] == both; })) << crosvm().dump() << log();
  json book;
  ASSERT_TRUE(eventually([&] {  // written once crosvm answered
    book = json::parse(test::read_file(dir / "state.json"), nullptr, false).value("crosvm_usb_ports", json::object());
    return book.size() == 2;
  })) << book.dump();
  EXPECT_EQ(book["1-2.3"]["vm"], "gui-vm");
  EXPECT_EQ(book["1-2.3"]["vid"], "1050");

  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(start_daemon(false));
  ASSERT_TRUE(eventually([&] { return log().find("vm gui-vm: devices reconciled") != std::string::npos; })) << log();
  auto r = cli({"--json", "usb", "list", "--tag", "key"});
  auto list = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 2) << r.out << log();
  EXPECT_EQ(list[0]["vm"], "gui-vm");
  EXPECT_EQ(list[1]["vm"], "gui-vm");
  EXPECT_EQ(cli({"usb", "detach", "--devnode", "/dev/bus/usb/001/041"}).exit_code, 0) << log();
  EXPECT_EQ(crosvm()["usb"], json::array({"/dev/bus/usb/001/040"}));
  book = json::parse(test::read_file(dir / "state.json"))["crosvm_usb_ports"];
  EXPECT_EQ(book.size(), 1u);
  EXPECT_TRUE(book.contains("1-2.2")) << book.dump();
}

TEST_F(CrosvmDaemon, AttachingToAStoppedVmFails) {
  vm.close();
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  auto r = cli({"usb", "attach", "--devnode", "/dev/bus/usb/001/040"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "ERROR Failed to attach USB: VM gui-vm is not running\n");
}

// A cloud-hypervisor VM (its REST API: tests/support/fake_cloud_hypervisor.h) takes PCI cards by
// rule and by the kill switch, as a QEMU VM does; USB stays on the host.
TEST(CloudHypervisorDaemon, PciCardsGoToItAndComeBack) {
  test::Testbed tb;
  test::add_realistic_host(tb);
  test::TempDir dir;
  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi"}};
  test::FakeCloudHypervisor ch{dir / "net-vm.sock"};
  json config = json::parse(R"({"pciPassthrough": [{"targetVm": "net-vm", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})");
  config["vms"] = {{{"name", "net-vm"}, {"type", "cloud-hypervisor"}, {"socket", dir / "net-vm.sock"}}};
  config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"transports", {"unix"}}, {"unixSocket", dir / "vhotplug.sock"}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  test::Child daemon({VHOTPLUGD_BINARY, "-a", "-c", dir / "vhotplug.conf"}, dir / "daemon.out", dir / "daemon.log");
  ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(dir / "vhotplug.sock"); }));
  const std::map<std::string, std::string> held{{"vhp-pci-0000-00-14.3", "/sys/bus/pci/devices/0000:00:14.3/"}};
  ASSERT_TRUE(eventually([&] { return ch.devices() == held; })) << test::read_file(dir / "daemon.log");
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "vfio-pci");
  auto cli = [&](std::initializer_list<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock"};
    argv.insert(argv.end(), args);
    return test::run_capture(argv);
  };
  EXPECT_EQ(cli({"pci", "detach", "--tag", "net"}).exit_code, 0);
  EXPECT_TRUE(ch.devices().empty());
  EXPECT_TRUE(eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; }));
  EXPECT_EQ(cli({"pci", "attach", "--tag", "net"}).exit_code, 0);
  EXPECT_EQ(ch.devices(), held);
}

}  // namespace
}  // namespace vhp::vm_backends_daemon_test
