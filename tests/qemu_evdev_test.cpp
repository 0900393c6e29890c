// QemuVm's input-device hot-plug: against real QEMU 7.2 for its refusal (no evdev device can exist
// here: no uinput), and against a monitor replaying QEMU's captured answers for the success path.
#include <atomic>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "support/coroutine.h"
#include "support/fake_qmp.h"
#include "support/qemu.h"
#include "support/temp_dir.h"
#include "vmm/qemu_vm.h"

namespace vhp {
namespace {

using json = nlohmann::json;
using test::complete;
using test::run_until;

json captured(const std::string& name) {
  std::ifstream in(std::string(VHP_TEST_DATA) + "/qmp/" + name + ".json");
  return json::parse(in);
}

EvdevDevice keyboard() {
  EvdevDevice d;
  d.sys_name = "event0";
  d.device_node = "/dev/input/event0";
  d.name = "AT Translated Set 2 keyboard";
  return d;
}

QemuTimeouts quick() {
  QemuTimeouts t;
  t.connect = std::chrono::milliseconds(1000);
  t.command = std::chrono::milliseconds(2000);
  t.pci_deleted = std::chrono::milliseconds(500);
  return t;
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
      for (auto& port : reply["return"][0]["devices"])
        if (port.contains("pci_bridge"))
          for (auto& d : port["pci_bridge"]["devices"]) d["qdev_id"] = add_arguments.value("id", "");
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
}  // namespace vhp
