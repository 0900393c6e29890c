// One scenario table, three backends. The passthrough flows a Ghaf host runs (plug by rule, the
// user's VM choice, a move to a VM of another type, unplug, VM restart, daemon restart, suspend and
// resume, the kill switch's tags) are each written once against a VM the test can look into, and
// run for every backend: QEMU (real QEMU 7.2 for USB; its captured monitor for PCI, as VFIO cannot
// run here), crosvm (the command-line stand-in and a real control socket) and cloud-hypervisor (its
// REST API stand-in; PCI only, it has no USB hot-plug). Each row's second VM is of another type.
// The daemon is the real vhotplugd on a umockdev host, driven by vhotplugcli.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/control_socket.h"
#include "support/fake_cloud_hypervisor.h"
#include "support/fake_qemu_pci.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::backend_scenarios_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::eventually;
using Held = std::vector<std::string>;  // "usb 1:40", "pci 0000:00:14.3", sorted; twice if held twice

// A VM as the scenarios see it: what it holds, and a restart (stopped, started again empty).
class TestVm {
 public:
  virtual ~TestVm() = default;
  virtual std::string type() const = 0;
  virtual std::string socket() const = 0;
  virtual Held holds() = 0;
  virtual void restart() = 0;
};

class RealQemu : public TestVm {
 public:
  RealQemu(const std::string& dir, const std::string& name) : qemu_(dir, name) { qemu_.start(); }
  std::string type() const override { return "qemu"; }
  std::string socket() const override { return qemu_.socket(); }
  Held holds() override {
    Held held;
    for (const auto& id : qemu_.usb_ids()) {
      auto get = [&](const char* property) {
        return qemu_.qmp("qom-get", {{"path", "/machine/peripheral/" + id}, {"property", property}})["return"].dump();
      };
      held.push_back("usb " + get("hostbus") + ":" + get("hostaddr"));
    }
    std::ranges::sort(held);
    return held;
  }
  void restart() override {
    qemu_.kill();
    qemu_.start();
  }

 private:
  test::Qemu qemu_;
};

class QemuPciMonitor : public TestVm {
 public:
  QemuPciMonitor(const std::string& dir, const std::string& name) : socket_(dir + "/" + name + ".qmp") { restart(); }
  std::string type() const override { return "qemu"; }
  std::string socket() const override { return socket_; }
  Held holds() override {
    Held held;
    for (const auto& [address, id] : monitor_->held()) held.push_back("pci " + address);
    return held;
  }
  void restart() override {
    monitor_.reset();
    monitor_ = std::make_unique<test::FakeQemuPci>(socket_);
  }

 private:
  std::string socket_;
  std::unique_ptr<test::FakeQemuPci> monitor_;
};

class Crosvm : public TestVm {
 public:
  Crosvm(const std::string& dir, const std::string& name) : socket_(dir + "/" + name + ".sock"), control_(socket_) {}
  std::string type() const override { return "crosvm"; }
  std::string socket() const override { return socket_; }
  Held holds() override {
    std::ifstream in(socket_ + ".fake-crosvm");
    auto s = in ? json::parse(in) : json::object();
    Held held;
    auto usb = s.value("usb", json::object());  // kept: a range-for over a temporary's member dangles
    for (const auto& [port, d] : usb.items()) {
      auto node = d["node"].get<std::string>();  // /dev/bus/usb/001/040
      held.push_back("usb " + std::to_string(std::stoi(node.substr(13, 3))) + ":" + std::to_string(std::stoi(node.substr(17))));
    }
    for (const auto& path : s.value("vfio", json::array())) held.push_back("pci " + fs::path(path.get<std::string>()).filename().string());
    std::ranges::sort(held);
    return held;
  }
  void restart() override {
    control_.close();
    fs::remove(socket_ + ".fake-crosvm");
    control_.open();
  }

 private:
  std::string socket_;
  test::ControlSocket control_;
};

class CloudHypervisor : public TestVm {
 public:
  CloudHypervisor(const std::string& dir, const std::string& name) : socket_(dir + "/" + name + ".api") { restart(); }
  std::string type() const override { return "cloud-hypervisor"; }
  std::string socket() const override { return socket_; }
  Held holds() override {
    Held held;
    for (const auto& [id, path] : api_->devices()) held.push_back("pci " + fs::path(path).parent_path().filename().string());
    std::ranges::sort(held);
    return held;
  }
  void restart() override {
    api_.reset();
    api_ = std::make_unique<test::FakeCloudHypervisor>(socket_);
  }

 private:
  std::string socket_;
  std::unique_ptr<test::FakeCloudHypervisor> api_;
};

using MakeVm = std::function<std::unique_ptr<TestVm>(const std::string& dir, const std::string& name)>;
template <class T>
MakeVm make() {
  return [](const std::string& dir, const std::string& name) { return std::make_unique<T>(dir, name); };
}

struct Row {
  std::string name;  // <kind>_<backend of VM a>
  bool usb;          // the device kind the row passes through
  MakeVm a, b;       // the backend under test; a VM of another type
};

void PrintTo(const Row& row, std::ostream* out) { *out << row.name; }

const std::vector<Row> kRows = {
    {"usb_qemu", true, make<RealQemu>(), make<Crosvm>()},
    {"usb_crosvm", true, make<Crosvm>(), make<RealQemu>()},
    {"pci_qemu", false, make<QemuPciMonitor>(), make<Crosvm>()},
    {"pci_crosvm", false, make<Crosvm>(), make<CloudHypervisor>()},
    {"pci_cloud_hypervisor", false, make<CloudHypervisor>(), make<QemuPciMonitor>()},
};

constexpr const char* kKeyNode = "/dev/bus/usb/001/040";
constexpr const char* kStickNode = "/dev/bus/usb/001/041";
constexpr const char* kCard = "0000:00:14.3";

class Scenario : public testing::TestWithParam<Row> {
 protected:
  Scenario() {
    host = test::add_realistic_host(tb);
    a = GetParam().a(dir.path(), "a");
    b = GetParam().b(dir.path(), "b");
    config = json::parse(R"({
      "usbPassthrough": [
        {"targetVm": "a", "tag": "key", "allow": [{"bus": 1, "port": "2.2"}]},
        {"allowedVms": ["a", "b"], "tag": "storage", "allow": [{"bus": 1, "port": "9"}]}],
      "pciPassthrough": [{"targetVm": "a", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})");
    if (usb()) config.erase("pciPassthrough");
    else config.erase("usbPassthrough");
    config["vms"] = {{{"name", "a"}, {"type", a->type()}, {"socket", a->socket()}},
                     {{"name", "b"}, {"type", b->type()}, {"socket", b->socket()}}};
    config["general"] = {{"statePath", dir / "state.json"}, {"crosvm", FAKE_CROSVM_BINARY},
                         {"api", {{"transports", {"unix"}}, {"unixSocket", dir / "vhotplug.sock"}}}};
    write_config();
  }
  bool usb() const { return GetParam().usb; }
  void write_config() { std::ofstream(dir / "vhotplug.conf") << config.dump(2); }

  void start_daemon() {
    daemon = std::make_unique<test::Child>(std::vector<std::string>{VHOTPLUGD_BINARY, "-a", "-c", dir / "vhotplug.conf"},
                                           dir / "daemon.out", dir / ("daemon" + std::to_string(++starts) + ".log"));
    ASSERT_TRUE(eventually([&] { return test::unix_socket_accepts(dir / "vhotplug.sock"); })) << log();
    ASSERT_TRUE(eventually([&] { return log().find("vm a: devices reconciled") != std::string::npos; })) << log();
  }
  void restart_daemon() {
    ASSERT_EQ(daemon->stop(SIGTERM), 0) << log();
    ASSERT_NO_FATAL_FAILURE(start_daemon());
  }
  std::string log() { return test::read_file(dir / ("daemon" + std::to_string(starts) + ".log")); }
  test::ProcessResult cli(std::vector<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", dir / "vhotplug.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_capture(argv);
  }
  void ok(std::vector<std::string> args) {
    auto r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << log();
  }
  // The VM the daemon lists the tag's device in ("-": none).
  std::string vm_of(const std::string& tag) {
    auto r = cli({"--json", usb() ? "usb" : "pci", "list", "--tag", tag});
    auto list = json::parse(r.out, nullptr, false);
    if (!list.is_array() || list.size() != 1) return "?";
    return list[0]["vm"].is_null() ? "-" : list[0]["vm"].get<std::string>();
  }

  // The row's device under a rule that names VM a: the key plugged (USB), the card at start (PCI).
  void plug_by_rule() {
    if (usb()) {
      auto spec = test::security_key_spec(host.hub);
      spec.name = "1-2.2", spec.devnum = 40, spec.dev_node = true;
      key = tb.plug(spec);
    }
  }
  Held device() const { return {usb() ? "usb 1:40" : std::string("pci ") + kCard}; }
  const char* kind() const { return usb() ? "usb" : "pci"; }
  // Where the device is, seen both ways: inside the VMs and in the daemon's list.
  bool in(TestVm& vm, const std::string& name) { return vm.holds() == device() && vm_of(usb() ? "key" : "net") == name; }
  bool on_host() { return a->holds().empty() && b->holds().empty() && vm_of(usb() ? "key" : "net") == "-"; }
  // PCI: the card's host driver (given back on leaving the VM); USB rows have no card.
  bool card_with(const std::string& driver) { return usb() || eventually([&] { return kernel.driver(kCard) == driver; }); }
  std::string seen() {
    std::string qemu;  // what a real QEMU said, if one ran
    for (const char* vm : {"a", "b"})
      if (fs::exists(dir / (std::string(vm) + ".err"))) qemu += std::string("QEMU ") + vm + ": " + test::read_file(dir / (std::string(vm) + ".err")) + "\n";
    std::string logs;  // of every start of the daemon
    for (int i = 1; i <= starts; ++i) logs += test::read_file(dir / ("daemon" + std::to_string(i) + ".log"));
    return "a: " + json(a->holds()).dump() + " b: " + json(b->holds()).dump() + "\n" + qemu + logs;
  }

  test::Testbed tb;
  test::HostPaths host;
  test::TempDir dir;
  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi"}};
  std::unique_ptr<TestVm> a, b;
  json config;
  std::unique_ptr<test::Child> daemon;
  std::string key;
  int starts = 0;
};

TEST_P(Scenario, PlugByRuleThenUnplug) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  plug_by_rule();
  ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
  EXPECT_TRUE(card_with("vfio-pci"));
  tb.unplug(usb() ? key : host.wifi);
  EXPECT_TRUE(eventually([&] { return a->holds().empty(); })) << seen();
  EXPECT_EQ(vm_of(usb() ? "key" : "net"), "?");  // gone from the list
}

// USB: the user picks a VM for a device whose rule offers two, then moves it to the other, of
// another type. PCI (no choice: one targetVm): the rule changes and the config is reloaded.
TEST_P(Scenario, SelectVmThenMoveToAVmOfAnotherType) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  if (usb()) {
    tb.plug({.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = 41, .vid = "0781", .pid = "5581", .manufacturer = "SanDisk",
             .product = "Ultra", .serial = "S41", .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
    ASSERT_TRUE(eventually([&] { return vm_of("storage") == "-"; })) << seen();  // listed, waiting for the user
    EXPECT_TRUE(a->holds().empty() && b->holds().empty());
    ok({"usb", "attach", "--devnode", kStickNode, "--vm", "a"});
    EXPECT_EQ(a->holds(), Held{"usb 1:41"}) << seen();
    EXPECT_EQ(vm_of("storage"), "a");
    ok({"usb", "attach", "--devnode", kStickNode, "--vm", "b"});
    EXPECT_EQ(b->holds(), Held{"usb 1:41"}) << seen();
    EXPECT_TRUE(a->holds().empty()) << seen();
    EXPECT_EQ(vm_of("storage"), "b");
  } else {
    ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
    config["pciPassthrough"][0]["targetVm"] = "b";
    write_config();
    ASSERT_EQ(::kill(daemon->pid(), SIGHUP), 0);
    EXPECT_TRUE(eventually([&] { return in(*b, "b") && a->holds().empty(); })) << seen();
  }
}

TEST_P(Scenario, AVmRestartGetsItsDevicesBack) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  plug_by_rule();
  ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
  a->restart();
  EXPECT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
}

TEST_P(Scenario, ARestartedDaemonFindsItsDevicesAndAddsNothingTwice) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  plug_by_rule();
  ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
  ASSERT_NO_FATAL_FAILURE(restart_daemon());
  EXPECT_TRUE(eventually([&] { return vm_of(usb() ? "key" : "net") == "a"; })) << seen();
  EXPECT_EQ(a->holds(), device()) << seen();
}

TEST_P(Scenario, SuspendTakesTheDeviceOutAndResumePutsItBack) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  plug_by_rule();
  ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
  ok({kind(), "suspend"});
  EXPECT_TRUE(on_host()) << seen();
  EXPECT_TRUE(card_with("iwlwifi"));
  ok({kind(), "resume"});
  EXPECT_TRUE(in(*a, "a")) << seen();
}

// The kill switch: block by tag (kept across a daemon restart), then unblock.
TEST_P(Scenario, TheKillSwitchsTagsBlockAndUnblock) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  plug_by_rule();
  ASSERT_TRUE(eventually([&] { return in(*a, "a"); })) << seen();
  std::string tag = usb() ? "key" : "net";
  ok({kind(), "detach", "--tag", tag});
  EXPECT_TRUE(on_host()) << seen();
  EXPECT_TRUE(card_with("iwlwifi"));
  ASSERT_NO_FATAL_FAILURE(restart_daemon());
  EXPECT_TRUE(on_host()) << seen();
  ok({kind(), "attach", "--tag", tag});
  EXPECT_TRUE(in(*a, "a")) << seen();
}

INSTANTIATE_TEST_SUITE_P(Backends, Scenario, testing::ValuesIn(kRows), [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace vhp::backend_scenarios_test
