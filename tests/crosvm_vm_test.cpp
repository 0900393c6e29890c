// CrosvmVm against the `crosvm` command line (tests/support/fake_crosvm.cpp, crosvm's outputs),
// each command a real child process; its VM's control socket a real SOCK_SEQPACKET listener.
#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/control_socket.h"
#include "support/coroutine.h"
#include "support/host_fixture.h"
#include "support/temp_dir.h"
#include "vmm/crosvm_vm.h"

namespace vhp::crosvm_vm_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::complete;
using test::run_until;

CrosvmTimeouts quick() {
  CrosvmTimeouts t;
  t.command = std::chrono::milliseconds(2000);
  t.retry_interval = std::chrono::milliseconds(20);
  return t;
}

// What the manager keeps in the state file, kept here in memory.
class MemoryBook : public CrosvmUsbPortBook {
 public:
  std::map<std::string, CrosvmUsbPort> ports() const override { return ports_; }
  void record(const std::string& sys_name, const CrosvmUsbPort& port) override { ports_[sys_name] = port; }
  void forget(const std::string& sys_name) override { ports_.erase(sys_name); }

 private:
  std::map<std::string, CrosvmUsbPort> ports_;
};

class CrosvmVmTest : public testing::Test {
 protected:
  CrosvmVmTest() {
    auto host = test::add_realistic_host(tb);
    auto spec = test::security_key_spec(host.hub);
    spec.name = "1-2.2", spec.devnum = 40, spec.dev_node = true;
    key = tb.add_usb(spec);
    spec.name = "1-2.3", spec.devnum = 41, spec.serial = "0002";  // an identical second key
    key2 = tb.add_usb(spec);
    vm.on_up = [this] { ++ups; };
    vm.on_down = [this] { ++downs; };
  }
  void up() {
    vm.start();
    ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  }
  json state() {
    std::ifstream in(socket_path + ".fake-crosvm");
    return in ? json::parse(in) : json::object();
  }
  void control(const json& settings) {
    auto s = state();
    s.update(settings);
    std::ofstream(socket_path + ".fake-crosvm") << s.dump();
  }
  static UsbDevice usb(int devnum) {
    UsbDevice d;
    d.sys_name = "1-2." + std::to_string(devnum - 38);
    d.busnum = 1, d.devnum = devnum;
    d.vid = "1050", d.pid = "0407";  // the security keys
    d.device_node = "/dev/bus/usb/001/0" + std::to_string(devnum);
    return d;
  }
  std::string error_of(boost::asio::awaitable<void> op) {
    try {
      complete(io, std::move(op));
    } catch (const VmError& e) {
      return e.what();
    }
    return "";
  }

  test::Testbed tb;
  std::string key, key2;
  test::TempDir dir;
  std::string socket_path = dir / "gui-vm.sock";
  test::ControlSocket control_socket{socket_path};
  boost::asio::io_context io;
  CrosvmVm vm{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick()};
  int ups = 0, downs = 0;
};

TEST_F(CrosvmVmTest, UpWhileItsSocketAcceptsDownWhenItGoesARestartWhenReplaced) {
  up();
  EXPECT_EQ(ups, 1);
  control_socket.close();
  ASSERT_TRUE(run_until(io, [&] { return !vm.running(); }));
  EXPECT_EQ(downs, 1);
  EXPECT_EQ(error_of(vm.attach_usb(usb(40))), "VM gui-vm is not running");
  control_socket.open();  // started again: a new socket
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  EXPECT_EQ(ups, 2);
}

TEST_F(CrosvmVmTest, UsbAttachListAndDetachByTheRecordedPort) {
  up();
  complete(io, vm.attach_usb(usb(40)));
  complete(io, vm.attach_usb(usb(41)));
  complete(io, vm.attach_usb(usb(40)));  // ours already: not twice
  auto held = complete(io, vm.list_usb());
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].id, "crosvm-usb-1");
  EXPECT_EQ(held[0].hostaddr, 40);
  EXPECT_EQ(held[1].id, "crosvm-usb-2");
  EXPECT_EQ(held[1].hostaddr, 41);
  // Identical vid:pid: only the one asked for leaves (the reference detached both).
  complete(io, vm.detach_usb({"", 1, 41, true}));
  EXPECT_EQ(state()["usb"], json::parse(R"({"1": {"node": "/dev/bus/usb/001/040", "ids": "1050 0407"}})"));
  EXPECT_EQ(state()["calls"], json::parse(R"(["usb list", "usb attach", "usb list", "usb attach", "usb list", "usb detach"])"));
  complete(io, vm.detach_usb({"", 1, 99, true}));  // nothing of ours there: detached already
}

// After a daemon restart the ports are unknown: a device with the same ids already in the VM is
// taken for the one asked for, not attached twice (crosvm opens a device exclusively).
TEST_F(CrosvmVmTest, AfterARestartADeviceTheVmHoldsIsNotAttachedTwice) {
  up();
  complete(io, vm.attach_usb(usb(40)));
  CrosvmVm again{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick()};
  again.start();
  ASSERT_TRUE(run_until(io, [&] { return again.running(); }));
  complete(io, again.attach_usb(usb(40)));
  EXPECT_EQ(state()["usb"].size(), 1u);
  auto held = complete(io, again.list_usb());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].hostaddr, 40);
}

// Two identical devices in the VM, neither known: crosvm cannot tell them apart, so neither is
// taken for the one asked for (the attach goes to crosvm, which refuses a device it holds).
TEST_F(CrosvmVmTest, AfterARestartIdenticalDevicesAreNotGuessed) {
  up();
  complete(io, vm.attach_usb(usb(40)));
  complete(io, vm.attach_usb(usb(41)));
  CrosvmVm again{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick()};
  again.start();
  ASSERT_TRUE(run_until(io, [&] { return again.running(); }));
  complete(io, again.attach_usb(usb(41)));
  auto held = complete(io, again.list_usb());
  ASSERT_EQ(held.size(), 3u);  // the stand-in does not refuse a device twice; crosvm would
  EXPECT_EQ(held[2].hostaddr, 41);
  EXPECT_EQ(held[0].hostaddr, 0);  // unknown
}

// With the port book (the state file's crosvm_usb_ports), a restarted daemon knows which port is
// which device, identical devices included, and detaches exactly the one asked for.
TEST_F(CrosvmVmTest, ARestartedDaemonKnowsItsPortsFromTheBook) {
  auto book = std::make_shared<MemoryBook>();
  {
    CrosvmVm first{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick(), book};
    first.start();
    ASSERT_TRUE(run_until(io, [&] { return first.running(); }));
    complete(io, first.attach_usb(usb(40)));
    complete(io, first.attach_usb(usb(41)));
  }
  ASSERT_EQ(book->ports().size(), 2u);
  EXPECT_EQ(book->ports()["1-2.3"].port, 2);
  CrosvmVm again{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick(), book};
  again.start();
  ASSERT_TRUE(run_until(io, [&] { return again.running(); }));
  auto held = complete(io, again.list_usb());
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].hostaddr, 40);
  EXPECT_EQ(held[1].hostaddr, 41);
  complete(io, again.detach_usb({"", 1, 41, true}));
  EXPECT_EQ(state()["usb"], json::parse(R"({"1": {"node": "/dev/bus/usb/001/040", "ids": "1050 0407"}})"));
  EXPECT_EQ(book->ports().size(), 1u);
  complete(io, again.attach_usb(usb(40)));  // known: not attached twice
  EXPECT_EQ(state()["usb"].size(), 1u);
}

// Ports belong to one run of the VM: a restart (a new socket) or a VM going away voids them.
TEST_F(CrosvmVmTest, AVmRestartVoidsTheBooksPorts) {
  auto book = std::make_shared<MemoryBook>();
  CrosvmVm booked{io, "gui-vm", socket_path, FAKE_CROSVM_BINARY, quick(), book};
  booked.start();
  ASSERT_TRUE(run_until(io, [&] { return booked.running(); }));
  complete(io, booked.attach_usb(usb(40)));
  book->record("9-9", {"other-vm", 1, "elsewhere", "1050", "0407", std::nullopt, 9, 9});  // another VM's: kept
  control_socket.close();
  control_socket.open();
  ASSERT_TRUE(run_until(io, [&] { return book->ports().size() == 1; }));
  EXPECT_TRUE(book->ports().contains("9-9"));
  control({{"usb", json::object()}});  // the new run holds nothing
  complete(io, booked.attach_usb(usb(40)));
  EXPECT_EQ(book->ports().size(), 2u);
  control_socket.close();
  ASSERT_TRUE(run_until(io, [&] { return !booked.running(); }));
  EXPECT_EQ(book->ports().size(), 1u);
}

// What crosvm answers about the run of the VM it was asked, once that VM is gone, is not recorded.
TEST_F(CrosvmVmTest, AnAttachTheVmRestartedDuringFailsAndRecordsNothing) {
  up();
  control({{"slow", {{"usb attach", 500}}}});
  test::Finished attach;
  test::start(io, vm.attach_usb(usb(40)), attach);
  ASSERT_TRUE(run_until(io, [&] { return state()["calls"].size() == 2; }));  // usb list, usb attach under way
  control_socket.close();
  control_socket.open();
  ASSERT_TRUE(run_until(io, [&] { return attach.done; }));
  EXPECT_EQ(attach.error, "VM gui-vm went away during crosvm usb attach");
  EXPECT_EQ(downs, 1);
  EXPECT_EQ(ups, 2);
  control({{"slow", json::object()}, {"usb", json::object()}});  // the new run holds nothing
  EXPECT_TRUE(complete(io, vm.list_usb()).empty());
}

TEST_F(CrosvmVmTest, NoAvailablePortIsTriedAgainUntilTheGuestTakesIt) {
  up();
  control({{"busy", 2}});
  complete(io, vm.attach_usb(usb(40)));
  EXPECT_EQ(state()["usb"].size(), 1u);
  control({{"busy", 99}});
  EXPECT_EQ(error_of(vm.attach_usb(usb(41))), "VM gui-vm: crosvm usb attach answered: no_available_port");
}

TEST_F(CrosvmVmTest, CrosvmsRefusalsAreTheAnswer) {
  up();
  EXPECT_EQ(error_of(vm.attach_usb(usb(77))), "VM gui-vm: crosvm usb attach answered: failed_to_open_device");  // no such node
  control({{"fail", {{"usb attach", "[ERROR] failed to send request: Broken pipe"}}}});
  EXPECT_EQ(error_of(vm.attach_usb(usb(40))), "VM gui-vm: crosvm usb attach failed with code 1: [ERROR] failed to send request: Broken pipe");
}

TEST_F(CrosvmVmTest, ACommandThatHangsIsKilledAtItsDeadline) {
  up();
  control({{"hang", "usb attach"}});
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of(vm.attach_usb(usb(40))),
            std::string("VM gui-vm: crosvm usb attach: ") + FAKE_CROSVM_BINARY + " did not finish within 2000 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  control({{"hang", ""}});
  complete(io, vm.attach_usb(usb(40)));  // the VM's operations go on
}

TEST_F(CrosvmVmTest, PciThroughVfioAddListRemove) {
  up();
  PciDevice wifi;
  wifi.address = "0000:00:14.3";
  complete(io, vm.attach_pci(wifi, false));
  auto held = complete(io, vm.list_pci());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].host, "0000:00:14.3");
  complete(io, vm.detach_pci({"", "0000:00:14.3"}));
  EXPECT_TRUE(complete(io, vm.list_pci()).empty());
  EXPECT_EQ(state()["calls"], json::parse(R"(["vfio list", "vfio add", "vfio list", "vfio list", "vfio list", "vfio remove", "vfio list", "vfio list"])"));
}

TEST_F(CrosvmVmTest, InputDevicesAreTheReferencesRefusal) {
  up();
  EXPECT_EQ(error_of(vm.attach_evdev(EvdevDevice{})), "Evdev passthrough is not supported by crosvm");
}

}  // namespace
}  // namespace vhp::crosvm_vm_test
