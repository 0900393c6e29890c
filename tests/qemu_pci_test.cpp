// QemuVm's PCI hot-plug: against real QEMU 7.2 for what it can show here (its query-pci, the port
// search, its refusal of vfio-pci, a guest that never lets a device go), and against a fake monitor
// replaying QEMU's own captured answers (tests/data/qmp) for the success path VFIO would take. The
// same for input devices (virtio-input-host-pci on the same ports): no evdev node can exist here.
#include <atomic>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "support/coroutine.h"
#include "support/fake_qmp.h"
#include "support/host_fixture.h"
#include "support/qemu.h"
#include "support/temp_dir.h"
#include "vmm/qemu_pci_bus.h"
#include "vmm/qemu_vm.h"

namespace vhp::qemu_pci_test {
namespace {

using json = nlohmann::json;
using test::complete;
using test::run_until;

json captured(const std::string& name) {
  std::ifstream in(std::string(VHP_TEST_DATA) + "/qmp/" + name + ".json");
  return json::parse(in);
}

// A captured reply, answering this request (its id).
std::string replay(const json& request, const std::string& name) {
  auto reply = captured(name);
  reply["id"] = request["id"];
  return reply.dump();
}

PciDevice wifi() {
  PciDevice d;
  d.address = "0000:00:14.3";
  return d;
}

QemuTimeouts quick() {
  QemuTimeouts t;
  t.connect = std::chrono::milliseconds(1000);
  t.command = std::chrono::milliseconds(2000);
  t.pci_deleted = std::chrono::milliseconds(500);
  return t;
}

TEST(QemuPciBus, FreePortsAndDevicesInQemusOwnAnswers) {
  using qemu_pci::free_ports;
  const std::vector<std::string> all{"pci_hotplug_1", "pci_hotplug_2", "pci_hotplug_3"};
  EXPECT_EQ(free_ports(captured("running-query-pci-empty")["return"]), all);
  EXPECT_EQ(free_ports(captured("query-pci-empty")["return"]), all);  // paused: no bus numbers, nothing behind the ports
  auto after = captured("running-query-pci-after-add")["return"];
  EXPECT_EQ(free_ports(after), (std::vector<std::string>{"pci_hotplug_2", "pci_hotplug_3"}));
  EXPECT_TRUE(qemu_pci::has_device(after, "vhp-pci-0000-00-14.3"));
  EXPECT_TRUE(qemu_pci::has_device(after, "xhci"));
  // device_del without a guest to release it: still on the bus.
  EXPECT_TRUE(qemu_pci::has_device(captured("running-query-pci-after-del")["return"], "vhp-pci-0000-00-14.3"));
  EXPECT_FALSE(qemu_pci::has_device(captured("running-query-pci-empty")["return"], "vhp-pci-0000-00-14.3"));
  EXPECT_TRUE(free_ports(json::array({1, "x", json::object({{"devices", 7}})})).empty());  // malformed: nothing, no crash
}

TEST(QemuPciIds, AreQemuIdsNamedByHostAddress) { EXPECT_EQ(pci_device_id("0000:00:14.3"), "vhp-pci-0000-00-14.3"); }

class QemuPciTest : public testing::Test {
 protected:
  QemuPciTest() { test::add_realistic_host(tb); }
  void up() {
    qemu.start();
    vm.start();
    ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  }
  std::string fail(PciDevice d, bool root_bus = false) {
    try {
      complete(io, vm.attach_pci(d, root_bus));
    } catch (const VmError& e) {
      return e.what();
    }
    return "";
  }
  std::vector<std::string> peripherals() {
    std::vector<std::string> names;
    auto reply = qemu.qmp("qom-list", {{"path", "/machine/peripheral"}});  // kept: a range-for over a temporary's member dangles
    for (const auto& c : reply["return"]) names.push_back(c["name"]);
    std::ranges::sort(names);
    return names;
  }

  test::Testbed tb;
  test::TempDir dir;
  test::Qemu qemu{dir.path(), "vm1"};
  boost::asio::io_context io;
  QemuVm vm{io, "vm1", qemu.socket(), quick()};
};

// No VFIO here: QEMU refuses the device, and that refusal is the answer, once, with nothing left behind.
TEST_F(QemuPciTest, QemusRefusalOfVfioIsTheAnswer) {
  up();
  auto before = peripherals();
  ASSERT_EQ(before, (std::vector<std::string>{"pci_hotplug_1", "pci_hotplug_2", "type", "xhci"}));
  auto error = fail(wifi());
  EXPECT_TRUE(error.starts_with("vfio ")) << error;
  EXPECT_EQ(peripherals(), before);
  EXPECT_EQ(fail(wifi(), true), "Bus 'pcie.0' does not support hotplugging");  // qemuUseRootBus on q35
}

TEST_F(QemuPciTest, OccupiedPortsAreSkippedAndNoneLeftIsTheReferencesError) {
  up();
  ASSERT_FALSE(qemu.qmp("device_add", {{"driver", "e1000e"}, {"bus", "pci_hotplug_1"}, {"addr", "0"}, {"id", "nic1"}}).contains("error"));
  EXPECT_TRUE(fail(wifi()).starts_with("vfio "));  // port 1 taken: QEMU was asked on port 2, and refused VFIO there
  ASSERT_FALSE(qemu.qmp("device_add", {{"driver", "e1000e"}, {"bus", "pci_hotplug_2"}, {"addr", "0"}, {"id", "nic2"}}).contains("error"));
  EXPECT_EQ(fail(wifi()), "No available PCI ports found");
  EXPECT_EQ(peripherals(), (std::vector<std::string>{"nic1", "nic2", "pci_hotplug_1", "pci_hotplug_2", "type", "xhci"}));
}

// Real QEMU without a guest never completes a PCI unplug (it needs the guest's cooperation): the
// detach fails within its deadline and says why.
TEST_F(QemuPciTest, AGuestThatDoesNotReleaseTheDeviceIsAnErrorWithinTheDeadline) {
  up();
  ASSERT_FALSE(qemu.qmp("device_add", {{"driver", "e1000e"}, {"bus", "pci_hotplug_1"}, {"addr", "0"}, {"id", "vhp-pci-0000-00-14.3"}})
                   .contains("error"));
  try {
    complete(io, vm.detach_pci({"vhp-pci-0000-00-14.3", "0000:00:14.3"}));
    FAIL() << "detached without DEVICE_DELETED";
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "VM vm1 did not confirm the removal of vhp-pci-0000-00-14.3 (its guest did not release the device)");
  }
  EXPECT_TRUE(vm.running());
  complete(io, vm.detach_pci({"", "0000:00:99.0"}));  // nothing held at that address: detached already
}

// The success path VFIO would take, on QEMU's captured answers: the first free port, verified on
// the bus; then device_del and DEVICE_DELETED; the device found again by its host address.
TEST(QemuPciReplay, AttachListAndDetachOnCapturedAnswers) {
  test::TempDir dir;
  std::atomic<bool> added = false, deleted = false;
  json add_arguments;
  test::FakeQmp fake(dir / "vm.qmp", [&](const json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "query-pci") return replay(r, added ? "running-query-pci-after-add" : "running-query-pci-empty");
    if (command == "device_add") {
      add_arguments = r["arguments"];
      added = true;
      return replay(r, "running-device_add-e1000e-ok");
    }
    if (command == "qom-list" && r["arguments"]["path"] == "/machine/peripheral") {
      auto list = captured("qom-list-peripheral");
      for (auto& child : list["return"])  // what QEMU lists for a realised vfio-pci (none can be realised here)
        if (child["name"] == "vhp-pci-0000-00-14.3") child["type"] = "child<vfio-pci>";
      list["id"] = r["id"];
      return list.dump();
    }
    if (command == "qom-list") return replay(r, "qom-list-peripheral-anon");
    if (command == "qom-get") return test::FakeQmp::reply(r, "0000:00:14.3");
    if (command == "device_del") {
      deleted = true;
      auto event = captured("event-DEVICE_DELETED-usb");
      event["data"] = {{"device", r["arguments"]["id"]}, {"path", "/machine/peripheral/" + r["arguments"]["id"].get<std::string>()}};
      return replay(r, "running-device_del-pci-ok") + "\r\n" + event.dump();
    }
    return std::nullopt;
  });
  boost::asio::io_context io;
  QemuVm vm(io, "vm1", dir / "vm.qmp", quick());
  vm.start();
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  complete(io, vm.attach_pci(wifi(), false));
  EXPECT_EQ(add_arguments, json::parse(R"({"driver":"vfio-pci","host":"0000:00:14.3","id":"vhp-pci-0000-00-14.3","bus":"pci_hotplug_1","addr":"0"})"));
  auto held = complete(io, vm.list_pci());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].id, "vhp-pci-0000-00-14.3");
  EXPECT_EQ(held[0].host, "0000:00:14.3");
  complete(io, vm.detach_pci({"", "0000:00:14.3"}));  // found by its host address
  EXPECT_TRUE(deleted);
  vm.stop();
}

EvdevDevice keyboard() {
  EvdevDevice d;
  d.sys_name = "event0";
  d.device_node = "/dev/input/event0";
  d.name = "AT Translated Set 2 keyboard";
  return d;
}

TEST(QemuEvdev, RealQemuRefusesANodeItCannotOpenAndKeepsNothing) {
  test::TempDir dir;
  test::Qemu qemu{dir.path(), "vm1"};
  qemu.start();
  boost::asio::io_context io;
  QemuVm vm{io, "vm1", qemu.socket(), quick()};
  vm.start();
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  std::string error;
  try {
    complete(io, vm.attach_evdev(keyboard()));
  } catch (const VmError& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "Could not open '/dev/input/event0': No such file or directory");
  auto reply = qemu.qmp("qom-list", {{"path", "/machine/peripheral"}});
  for (const auto& child : reply["return"]) EXPECT_NE(child["name"], "evdev-event0");
  complete(io, vm.detach_evdev(keyboard()));  // not there: detached already
  vm.stop();
}

// What a real node would give: QEMU's device_add answer, the device on the first free port's bus
// (the captured query-pci, its device renamed to the id asked for), then device_del and DEVICE_DELETED.
TEST(QemuEvdevReplay, AttachAndDetachOnCapturedAnswers) {
  test::TempDir dir;
  std::atomic<bool> added = false, deleted = false;
  json add_arguments;
  test::FakeQmp fake(dir / "vm.qmp", [&](const json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "query-pci") {
      auto reply = captured(added ? "running-query-pci-after-add" : "running-query-pci-empty");
      for (auto& port : reply["return"][0]["devices"])  // the capture's device is behind pci_hotplug_1: there only if asked there
        if (port.contains("pci_bridge"))
          for (auto& d : port["pci_bridge"]["devices"])
            d["qdev_id"] = add_arguments.value("bus", "") == "pci_hotplug_1" ? add_arguments.value("id", "") : "someone-else";
      reply["id"] = r["id"];
      return reply.dump();
    }
    if (command == "device_add") {
      add_arguments = r["arguments"];
      added = true;
      auto reply = captured("running-device_add-e1000e-ok");
      reply["id"] = r["id"];
      return reply.dump();
    }
    if (command == "device_del") {
      deleted = r["arguments"]["id"] == "evdev-event0";
      auto event = captured("event-DEVICE_DELETED-usb");
      event["data"] = {{"device", r["arguments"]["id"]}, {"path", "/machine/peripheral/" + r["arguments"]["id"].get<std::string>()}};
      auto reply = captured("running-device_del-pci-ok");
      reply["id"] = r["id"];
      return reply.dump() + "\r\n" + event.dump();
    }
    return std::nullopt;
  });
  boost::asio::io_context io;
  QemuVm vm(io, "vm1", dir / "vm.qmp", quick());
  vm.start();
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  complete(io, vm.attach_evdev(keyboard()));
  EXPECT_EQ(add_arguments,
            json::parse(R"({"driver":"virtio-input-host-pci","evdev":"/dev/input/event0","id":"evdev-event0","bus":"pci_hotplug_1","addr":"0"})"));
  complete(io, vm.detach_evdev(keyboard()));
  EXPECT_TRUE(deleted);
  vm.stop();
}

}  // namespace
}  // namespace vhp::qemu_pci_test
