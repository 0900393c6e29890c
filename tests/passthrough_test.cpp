// The real daemon with two real QEMU VMs on a umockdev host: plug → attach, unplug → detach,
// user choices, the API's attach/detach and errors, VM restart, daemon restart, -a.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "api/client.h"
#include "support/fake_qmp.h"
#include "support/fake_qemu_pci.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace vhp::passthrough_test {
namespace {

using json = nlohmann::json;
using test::eventually;

class Passthrough : public testing::Test {
 protected:
  Passthrough() {
    host = test::add_realistic_host(tb);
    vm1.start();
    vm2.start();
    socket_path = dir / "api.sock";
    json config = json::parse(R"({
      "usbPassthrough": [
        {"targetVm": "vm1", "allow": [{"interfaceClass": 3}]},
        {"allowedVms": ["vm1", "vm2"], "tag": "storage", "allow": [{"interfaceClass": 8}]}]})");
    config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}},
                     {{"name", "vm2"}, {"type", "qemu"}, {"socket", vm2.socket()}}};
    config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}};
    std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  }

  void start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    daemon = std::make_unique<test::Child>(argv, dir / "daemon.out", dir / ("daemon" + std::to_string(++starts) + ".log"));
    ASSERT_TRUE(eventually([&] {
      try {
        connect();
        return true;
      } catch (const std::exception&) {
        return false;
      }
    })) << log();
    // The API answers before the daemon has probed its VMs: wait until it knows the running ones are up.
    auto config = json::parse(test::read_file(dir / "vhotplug.conf"));
    for (const auto& vm : config.value("vms", json::array())) {
      bool running = (vm["socket"] == vm1.socket() && vm1.running()) || (vm["socket"] == vm2.socket() && vm2.running());
      std::string line = "vm " + vm["name"].get<std::string>() + ": devices reconciled";
      if (running) {
        ASSERT_TRUE(eventually([&] { return log().find(line) != std::string::npos; })) << log();
      }
    }
  }
  // The daemon has recorded the device with this devnum as attached to `vm`.
  bool attached(int devnum, const std::string& vm) {
    auto list = request({{"action", "usb_list"}})["usb_devices"];
    return std::any_of(list.begin(), list.end(), [&](const json& d) { return d["devnum"] == devnum && d["vm"] == vm; });
  }
  std::string log() { return test::read_file(dir / ("daemon" + std::to_string(starts) + ".log")); }

  std::unique_ptr<ApiClient> connect() {
    ClientOptions o;
    o.transport = "unix", o.path = socket_path, o.timeout_ms = 10000;
    return std::make_unique<ApiClient>(o);
  }
  std::unique_ptr<ApiClient> listener() {
    auto c = connect();
    EXPECT_EQ(c->request({{"action", "enable_notifications"}})["result"], "ok");
    return c;
  }
  json request(const json& r) { return connect()->request(r); }
  std::string attach_line(ApiClient& c, const json& r) {  // response line, after any events it caused
    c.send(r);
    return c.read_line();
  }

  std::string plug_key(int devnum, const std::string& name, std::string serial = "") {
    auto spec = test::security_key_spec(host.hub);
    spec.name = name, spec.devnum = devnum, spec.dev_node = true;
    spec.serial = serial.empty() ? "K" + std::to_string(devnum) : serial;
    return tb.plug(spec);
  }
  std::string plug_stick(int devnum, const std::string& name, const std::string& serial) {
    return tb.plug({.parent = host.root_hub, .name = name, .busnum = 1, .devnum = devnum, .vid = "0781",
                            .pid = "5581", .manufacturer = "SanDisk", .product = "Ultra", .serial = serial,
                    .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
  }
  static std::string event_of(const std::string& line) { return json::parse(line).value("event", ""); }
  json state() { return json::parse(test::read_file(dir / "state.json")); }

  test::Testbed tb;
  test::HostPaths host;
  test::TempDir dir;
  test::Qemu vm1{dir.path(), "vm1"}, vm2{dir.path(), "vm2"};
  std::string socket_path;
  std::unique_ptr<test::Child> daemon;
  int starts = 0;
};

TEST_F(Passthrough, PlugAttachesToTheTargetVmAndUnplugDetaches) {
  start_daemon();
  auto events = listener();
  auto key = plug_key(40, "1-2.2");
  EXPECT_EQ(event_of(events->read_line()), "usb_connected");
  auto attached = json::parse(events->read_line());
  EXPECT_EQ(attached["event"], "usb_attached");
  EXPECT_EQ(attached["vm"], "vm1");
  EXPECT_EQ(attached["usb_device"]["device_node"], "/dev/bus/usb/001/040");
  EXPECT_FALSE(attached["usb_device"].contains("vm"));
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
  EXPECT_EQ(vm1.qmp("qom-get", {{"path", "/machine/peripheral/vhp-usb-1-40"}, {"property", "attached"}})["return"], true);
  auto list = request({{"action", "usb_list"}})["usb_devices"];
  auto entry = std::find_if(list.begin(), list.end(), [](const json& d) { return d["devnum"] == 40; });
  ASSERT_NE(entry, list.end());
  EXPECT_EQ((*entry)["vm"], "vm1");
  EXPECT_EQ((*entry)["allowed_vms"], json::array({"vm1"}));

  tb.unplug(key);
  EXPECT_EQ(events->read_line(), R"({"event":"usb_detached","usb_device":{"device_node":"/dev/bus/usb/001/040"},"vm":"vm1"})");
  EXPECT_EQ(event_of(events->read_line()), "usb_disconnected");
  EXPECT_TRUE(vm1.usb_ids().empty());
}

TEST_F(Passthrough, AllowedVmsAsksOnceThenRemembersTheChoice) {
  start_daemon();
  auto events = listener();
  auto stick = plug_stick(50, "1-9", "S1");
  EXPECT_EQ(event_of(events->read_line()), "usb_connected");
  auto ask = json::parse(events->read_line());
  EXPECT_EQ(ask["event"], "usb_select_vm");
  EXPECT_EQ(ask["allowed_vms"], json::array({"vm1", "vm2"}));
  EXPECT_TRUE(vm1.usb_ids().empty() && vm2.usb_ids().empty());

  // A client that subscribes later still gets the question.
  auto late = connect();
  late->send({{"action", "enable_notifications"}});
  EXPECT_EQ(late->read_line(), R"({"result":"ok"})");
  EXPECT_EQ(event_of(late->read_line()), "usb_select_vm");

  auto chooser = listener();
  EXPECT_EQ(event_of(chooser->read_line()), "usb_select_vm");  // replayed to every new listener
  chooser->send({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}});
  EXPECT_EQ(event_of(chooser->read_line()), "usb_attached");  // the event comes before the response
  EXPECT_EQ(chooser->read_line(), R"({"result":"ok"})");
  EXPECT_EQ(vm2.usb_ids(), std::vector<std::string>{"vhp-usb-1-50"});
  EXPECT_EQ(state()["selected_vms"], json({{"usb-0781:5581:S1", "vm2"}}));

  tb.unplug(stick);
  plug_stick(51, "1-9", "S1");  // the same stick, back at a new address: no question this time
  ASSERT_TRUE(eventually([&] { return vm2.usb_ids() == std::vector<std::string>{"vhp-usb-1-51"}; })) << log();
}

TEST_F(Passthrough, ADetachIsRememberedUntilTheNextAttach) {
  start_daemon();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  auto events = listener();
  EXPECT_EQ(attach_line(*events, {{"action", "usb_detach"}, {"device_node", "/dev/bus/usb/001/040"}}),
            R"({"event":"usb_detached","usb_device":{"device_node":"/dev/bus/usb/001/040"},"vm":"vm1"})");
  EXPECT_EQ(events->read_line(), R"({"result":"ok"})");
  EXPECT_TRUE(vm1.usb_ids().empty());
  EXPECT_EQ(state()["disconnected_devices"], json::array({"usb-1050:0407:K40"}));
  auto detached = request({{"action", "usb_list"}, {"disconnected", true}})["usb_devices"];
  ASSERT_EQ(detached.size(), 1u);
  EXPECT_TRUE(detached[0]["vm"].is_null());

  EXPECT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/040"}})["result"], "ok");
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
  EXPECT_EQ(state()["disconnected_devices"], json::array());
}

TEST_F(Passthrough, AReplugOfADetachedDeviceStaysOnTheHost) {
  start_daemon();
  auto key = plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  ASSERT_EQ(request({{"action", "usb_detach"}, {"bus", "1"}, {"port", "2.2"}})["result"], "ok");  // strings, as API.md shows
  tb.unplug(key);
  auto events = listener();
  plug_key(41, "1-2.2", "K40");  // the same serial: the same device to us
  EXPECT_EQ(event_of(events->read_line()), "usb_connected");
  ASSERT_TRUE(eventually([&] { return log().find("detached by the user earlier; staying on the host") != std::string::npos; }));
  EXPECT_EQ(request({{"action", "usb_list"}, {"disconnected", true}})["usb_devices"].size(), 1u);
  EXPECT_TRUE(vm1.usb_ids().empty());
}

TEST_F(Passthrough, TheReferencesChecksAndErrors) {
  start_daemon();
  plug_key(40, "1-2.2");
  plug_stick(50, "1-9", "S1");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  auto error = [&](const json& r) {
    try {
      return request(r).value("error", std::string("(ok)"));
    } catch (const std::exception& e) {
      ADD_FAILURE() << r.dump() << ": " << e.what() << "\n" << log();
      throw;
    }
  };
  EXPECT_EQ(error({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/040"}, {"vm", "vm2"}}),
            "Selected VM vm2 but target VM is set to vm1");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm3"}}),
            "Selected VM vm3 is not allowed");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/009/009"}}),
            "USB device /dev/bus/usb/009/009 not found in the system");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"bus", 7}, {"port", 1}}), "USB device with bus 7 and port 1 not found in the system");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"vid", "dead"}, {"pid", "beef"}}), "USB device dead:beef not found in the system");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/005"}}),
            "No VM found for 046d:0825 (Logitech, Inc. Webcam C270)");
  EXPECT_EQ(error({{"action", "usb_attach"}, {"vid", "413c"}, {"pid", "2113"}}),
            "Several USB devices match: /dev/bus/usb/001/007 413c:2113 (Dell Dell_KB216_Wired_Keyboard), "
            "/dev/bus/usb/001/008 413c:2113 (Dell Dell_KB216_Wired_Keyboard); select one by device_node");
  EXPECT_EQ(error({{"action", "usb_detach"}, {"device_node", "/dev/bus/usb/001/050"}}),
            "Device 0781:5581 (SanDisk Ultra) is not attached to any VM");
  // …and, as the reference, that changes nothing: not blocked, nothing on disk.
  EXPECT_TRUE(request({{"action", "usb_list"}, {"disconnected", true}})["usb_devices"].empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "state.json") && !state()["disconnected_devices"].empty());
  EXPECT_EQ(error({{"action", "usb_attach"}, {"vm", "vm1"}}),
            "Invalid message: name the device by device_node, bus and port, vid and pid, or tag");
  vm2.kill();
  ASSERT_TRUE(eventually([&] { return log().find("vm vm2: down") != std::string::npos; }));  // the daemon has seen it go
  EXPECT_EQ(error({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}}), "VM vm2 is not running");
}

TEST_F(Passthrough, AttachingElsewhereMovesTheDevice) {
  start_daemon();
  plug_stick(50, "1-9", "S1");
  ASSERT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm1"}})["result"], "ok");
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-50"});
  auto events = listener();
  events->send({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}});
  EXPECT_EQ(events->read_line(), R"({"event":"usb_detached","usb_device":{"device_node":"/dev/bus/usb/001/050"},"vm":"vm1"})");
  EXPECT_EQ(json::parse(events->read_line())["vm"], "vm2");
  EXPECT_EQ(events->read_line(), R"({"result":"ok"})");
  EXPECT_TRUE(vm1.usb_ids().empty());
  EXPECT_EQ(vm2.usb_ids(), std::vector<std::string>{"vhp-usb-1-50"});
}

TEST_F(Passthrough, AVmThatRestartsGetsItsDevicesBack) {
  start_daemon();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  auto events = listener();
  vm1.kill();
  EXPECT_EQ(events->read_line(), R"({"event":"usb_detached","usb_device":{"device_node":"/dev/bus/usb/001/040"},"vm":"vm1"})");
  auto list = request({{"action", "usb_list"}})["usb_devices"];
  for (const auto& d : list) EXPECT_TRUE(d["vm"].is_null()) << d.dump();  // marked gone, not silently kept
  vm1.start();
  auto back = json::parse(events->read_line());
  EXPECT_EQ(back["event"], "usb_attached");
  EXPECT_EQ(back["vm"], "vm1");
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
}

TEST_F(Passthrough, ADevicePluggedWhileItsVmIsDownIsAttachedOnceWhenItStarts) {
  vm1.kill();
  start_daemon();
  auto events = listener();
  plug_key(40, "1-2.2");
  EXPECT_EQ(event_of(events->read_line()), "usb_connected");
  EXPECT_FALSE(attached(40, "vm1"));
  vm1.start();
  auto attached_event = json::parse(events->read_line());
  EXPECT_EQ(attached_event["event"], "usb_attached");
  EXPECT_EQ(attached_event["vm"], "vm1");
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
  // Announced once: the next line is the answer to a request, not a second usb_attached.
  events->send({{"action", "usb_list"}, {"tag", "none"}});
  EXPECT_EQ(events->read_line(), R"({"result":"ok","usb_devices":[]})");
}

TEST_F(Passthrough, ARestartedDaemonFindsItsDevicesInTheVms) {
  start_daemon();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  EXPECT_EQ(daemon->stop(SIGTERM), 0);
  start_daemon();  // no -a: nothing new is attached, but what the VM has is ours again
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); })) << log();
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});  // not added twice
}

TEST_F(Passthrough, DashAAttachesWhatIsAlreadyConnected) {
  plug_key(40, "1-2.2");
  plug_stick(50, "1-9", "S1");
  start_daemon({"-a"});
  ASSERT_TRUE(eventually([&] { return vm1.usb_ids().size() == 2; })) << log();
  // The stick's rule offers two VMs and nobody chose: the first, as the reference does at start-up.
  EXPECT_EQ(vm1.usb_ids(), (std::vector<std::string>{"vhp-usb-1-40", "vhp-usb-1-50"}));
}

TEST_F(Passthrough, WithoutDashAConnectedDevicesStayOnTheHost) {
  plug_key(40, "1-2.2");
  start_daemon();
  // Only once both VMs are up and reconciled could anything have been attached.
  ASSERT_TRUE(eventually([&] {
    auto text = log();
    return text.find("vm vm1: devices reconciled") != std::string::npos && text.find("vm vm2: devices reconciled") != std::string::npos;
  })) << log();
  auto list = request({{"action", "usb_list"}})["usb_devices"];
  EXPECT_TRUE(std::none_of(list.begin(), list.end(), [](const json& d) { return !d["vm"].is_null(); }));
  EXPECT_TRUE(vm1.usb_ids().empty());
}

TEST_F(Passthrough, TagDetachAndAttachActOnEveryDeviceOfTheTag) {
  start_daemon();
  plug_stick(50, "1-9", "S1");
  ASSERT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}})["result"], "ok");
  EXPECT_EQ(request({{"action", "usb_detach"}, {"tag", "storage"}})["result"], "ok");
  EXPECT_TRUE(vm2.usb_ids().empty());
  EXPECT_EQ(request({{"action", "usb_list"}, {"tag", "storage"}, {"disconnected", false}})["usb_devices"].size(), 0u);
  EXPECT_EQ(request({{"action", "usb_attach"}, {"tag", "storage"}})["result"], "ok");  // the kill switch's unblock
  EXPECT_EQ(vm2.usb_ids(), std::vector<std::string>{"vhp-usb-1-50"});  // the saved choice
}

// Ghaf's VM stop (`socat -t1` with system_powerdown or quit, on the VM's own socket) while we run.
TEST_F(Passthrough, TheVmsOwnerCanStopItWhileItHoldsDevices) {
  start_daemon();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); }));
  auto events = listener();
  auto replies = test::qmp_one_shot(vm1.socket(), "quit", std::chrono::milliseconds(1000));
  ASSERT_EQ(replies.size(), 3u) << "the monitor was not free within 1 s\n" << log();
  EXPECT_TRUE(eventually([&] { return !vm1.running(); }, std::chrono::seconds(2)));
  EXPECT_EQ(events->read_line(), R"({"event":"usb_detached","usb_device":{"device_node":"/dev/bus/usb/001/040"},"vm":"vm1"})");
  vm1.start();  // on the same socket
  EXPECT_TRUE(eventually([&] { return vm1.usb_ids() == std::vector<std::string>{"vhp-usb-1-40"}; }, std::chrono::seconds(2))) << log();
  auto back = json::parse(events->read_line());
  EXPECT_EQ(back["event"], "usb_attached");
  EXPECT_EQ(back["vm"], "vm1");
}

// Replacing the reference on a running host: what it attached (id usb<bus><dev>) is ours now.
TEST_F(Passthrough, TheReferencesAttachmentIsAdoptedAndCanBeDetached) {
  plug_key(18, "1-2.2");
  json added;
  ASSERT_TRUE(eventually([&] {
    added = vm1.qmp("device_add", {{"driver", "usb-host"}, {"id", "usb118"}, {"hostbus", 1}, {"hostaddr", 18}});
    return added.contains("return");
  })) << added.dump();
  start_daemon();
  ASSERT_TRUE(eventually([&] { return attached(18, "vm1"); })) << log();
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"usb118"});  // adopted, not added twice
  EXPECT_EQ(request({{"action", "usb_detach"}, {"device_node", "/dev/bus/usb/001/018"}})["result"], "ok");
  EXPECT_TRUE(vm1.usb_ids().empty());
}

// A QMP peer that answers garbage (here vm2's socket is a scripted server): the request is answered
// failed, the connection stays usable, and the VM is still managed afterwards.
TEST_F(Passthrough, AMalformedQmpReplyIsAnsweredAndTheVmStaysManaged) {
  std::atomic<int> adds = 0;
  test::FakeQmp odd(dir / "odd.qmp", [&](const json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "device_add" && adds++ == 0) return R"({"id": )" + r["id"].dump() + R"(, "error": "boom"})";
    if (command == "device_add") return test::FakeQmp::reply(r, json::object());
    if (command == "qom-get") return test::FakeQmp::reply(r, true);
    if (command == "qom-list") return test::FakeQmp::reply(r, json::array());
    return std::nullopt;
  });
  auto config = json::parse(test::read_file(dir / "vhotplug.conf"));
  config["vms"][1]["socket"] = dir / "odd.qmp";
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  start_daemon();
  plug_stick(50, "1-9", "S1");
  auto client = connect();
  json attach{{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}};
  EXPECT_EQ(client->request(attach),
            json({{"result", "failed"}, {"error", "VM vm2 sent a malformed answer to device_add: QMP sent an error that is not an object"}}));
  EXPECT_EQ(client->request({{"action", "usb_list"}, {"tag", "none"}})["result"], "ok");  // the same connection still works
  EXPECT_EQ(client->request(attach)["result"], "ok") << log();
  EXPECT_TRUE(attached(50, "vm2"));
}

// Plugs for vm1, then vm2, then vm1 again: each VM's QEMU sees every plug (under umockdev each
// child process gets its own descriptor range, so their emulated uevent sockets cannot collide).
TEST_F(Passthrough, PlugsForBothVmsInAnyOrderAllAttach) {
  start_daemon();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); })) << log();
  plug_stick(50, "1-9", "S1");
  ASSERT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}})["result"], "ok") << log();
  plug_key(41, "1-2.3");
  ASSERT_TRUE(eventually([&] { return attached(41, "vm1"); })) << log();
  plug_stick(51, "1-10", "S2");
  ASSERT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/051"}, {"vm", "vm2"}})["result"], "ok") << log();
  EXPECT_EQ(vm1.usb_ids(), (std::vector<std::string>{"vhp-usb-1-40", "vhp-usb-1-41"}));
  EXPECT_EQ(vm2.usb_ids(), (std::vector<std::string>{"vhp-usb-1-50", "vhp-usb-1-51"}));
}

}  // namespace
}  // namespace vhp::passthrough_test

namespace vhp::passthrough_test {
namespace {

// PCI on real QEMU, which has no VFIO here: the daemon binds the card to vfio-pci (the kernel's
// part played by FakeVfioKernel), QEMU refuses it, and the answer is QEMU's text, with the card
// back on its host driver and not recorded in any VM.
TEST_F(Passthrough, QemusRefusalOfAPciDeviceIsTheAnswerAndTheHostKeepsIt) {
  test::FakeVfioKernel kernel(std::filesystem::path(tb.sys_dir()).parent_path(), {"iwlwifi"});
  json config = json::parse(R"({"pciPassthrough": [{"targetVm": "vm1", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})");
  config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}}};
  config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  start_daemon();
  auto answer = request({{"action", "pci_attach"}, {"address", "0000:00:14.3"}});
  EXPECT_EQ(answer["result"], "failed");
  EXPECT_TRUE(answer["error"].get<std::string>().starts_with("vfio ")) << answer;
  EXPECT_TRUE(answer["error"].get<std::string>().find("0000:00:14.3") != std::string::npos) << answer;
  auto list = request({{"action", "pci_list"}, {"tag", "net"}})["pci_devices"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0]["vm"].is_null());
  EXPECT_TRUE(eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; })) << log();
  EXPECT_EQ(kernel.override_of("0000:00:14.3"), "");
  auto peripherals = vm1.qmp("qom-list", {{"path", "/machine/peripheral"}})["return"];
  for (const auto& child : peripherals) EXPECT_NE(child["type"], "child<vfio-pci>");
  // The kill switch's block of a card that never reached its VM: nothing to detach.
  EXPECT_EQ(request({{"action", "pci_detach"}, {"tag", "net"}})["result"], "ok");
}

}  // namespace
}  // namespace vhp::passthrough_test

namespace vhp::passthrough_test {
namespace {

// Ghaf's kill switch, as killswitch.nix drives it through vhotplugcli: block, read the status,
// unblock, for its four tags (cam and bt on USB in a real QEMU VM, net and audio on PCI in VMs
// answering with QEMU's captured replies), with a daemon restart and a VM restart in between that
// must keep every block.
TEST_F(Passthrough, TheKillSwitchCycleForItsFourTagsSurvivesRestarts) {
  test::FakeVfioKernel kernel(std::filesystem::path(tb.sys_dir()).parent_path(), {"iwlwifi", "snd_hda_intel"});
  test::FakeQemuPci net_vm(dir / "net-vm.qmp"), audio_vm(dir / "audio-vm.qmp");
  tb.plug({.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = 60, .vid = "04f2", .pid = "b7b4", .manufacturer = "Chicony",
           .product = "Integrated Camera", .serial = "0001", .cls = 0xef, .subclass = 2, .protocol = 1,
           .interfaces = {{0x0e, 1, 0, "uvcvideo"}, {0x0e, 2, 0, "uvcvideo"}}, .dev_node = true});
  tb.plug({.parent = host.root_hub, .name = "1-10", .busnum = 1, .devnum = 61, .vid = "8087", .pid = "0033", .product = "AX211 Bluetooth",
           .cls = 0xe0, .subclass = 1, .protocol = 1, .interfaces = {{0xe0, 1, 1, "btusb"}, {0xe0, 1, 1, "btusb"}}, .dev_node = true});
  json config = json::parse(R"({
    "usbPassthrough": [
      {"targetVm": "vm1", "tag": "cam", "allow": [{"vendorId": "04f2", "productId": "b7b4"}]},
      {"targetVm": "vm1", "tag": "bt", "allow": [{"interfaceClass": 224, "interfaceSubclass": 1, "interfaceProtocol": 1}]}],
    "pciPassthrough": [
      {"targetVm": "net-vm", "tag": "net", "allow": [{"address": "0000:00:14.3"}]},
      {"targetVm": "audio-vm", "tag": "audio", "allow": [{"deviceClass": 4, "deviceSubclass": 3}]}]})");
  config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}},
                   {{"name", "net-vm"}, {"type", "qemu"}, {"socket", dir / "net-vm.qmp"}},
                   {{"name", "audio-vm"}, {"type", "qemu"}, {"socket", dir / "audio-vm.qmp"}}};
  config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket_path}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);

  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", socket_path};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_capture(argv);
  };
  // killswitch.nix's status: `vhotplugcli <bus> list --tag T --connected` prints nothing when blocked.
  auto status = [&](const std::string& bus, const std::string& t) {
    auto r = cli({bus, "list", "--tag", t, "--connected", "--short"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.empty() ? "blocked" : "unblocked";
  };
  const std::vector<std::pair<std::string, std::string>> tags{{"usb", "cam"}, {"usb", "bt"}, {"pci", "net"}, {"pci", "audio"}};
  auto all = [&](const char* expected) {
    return std::ranges::all_of(tags, [&](const auto& t) { return status(t.first, t.second) == std::string(expected); });
  };
  auto in_vms = [&] { return vm1.usb_ids().size() + net_vm.held().size() + audio_vm.held().size(); };

  start_daemon({"-a"});
  ASSERT_TRUE(eventually([&] { return in_vms() == 4; })) << log();
  EXPECT_TRUE(all("unblocked"));
  for (const auto& [bus, t] : tags) {
    auto r = cli({bus, "detach", "--tag", t});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "INFO Successfully detached\n");
  }
  EXPECT_TRUE(all("blocked"));
  EXPECT_EQ(in_vms(), 0u);
  EXPECT_EQ(kernel.driver("0000:00:14.3"), "iwlwifi");

  daemon->stop(SIGTERM);  // a daemon restart keeps every block
  start_daemon({"-a"});
  EXPECT_TRUE(all("blocked"));
  auto reconciled = [&] {
    auto text = log();
    std::size_t n = 0;
    for (auto at = text.find("vm vm1: devices reconciled"); at != std::string::npos; at = text.find("vm vm1: devices reconciled", at + 1)) ++n;
    return n;
  };
  auto before = reconciled();
  vm1.kill();  // and so does a VM restart
  ASSERT_TRUE(eventually([&] { return log().find("vm vm1: down") != std::string::npos; })) << log();
  vm1.start();
  ASSERT_TRUE(eventually([&] { return reconciled() > before; })) << log();  // the restarted VM, seen up
  EXPECT_TRUE(all("blocked"));
  EXPECT_EQ(in_vms(), 0u);

  for (const auto& [bus, t] : tags) EXPECT_EQ(cli({bus, "attach", "--tag", t}).exit_code, 0);
  EXPECT_TRUE(all("unblocked"));
  EXPECT_EQ(in_vms(), 4u);  // a tag attach answers once its devices are in their VMs
  daemon->stop(SIGTERM);  // unblocked survives a restart too, without attaching anything twice
  start_daemon({"-a"});
  EXPECT_TRUE(eventually([&] { return all("unblocked"); })) << log();
  EXPECT_EQ(in_vms(), 4u);
}

}  // namespace
}  // namespace vhp::passthrough_test

namespace vhp::passthrough_test {
namespace {

// Ghaf's power scripts on real QEMU: `usb suspend` before sleep takes the key out of vm1; during
// the sleep the key comes back under a new address (the host re-enumerates USB on resume); `usb
// resume` puts it into vm1 at its new address, and the stick that belongs to vm2 goes back too.
TEST_F(Passthrough, SuspendAndResumeThroughVhotplugcliOnRealQemu) {
  start_daemon();
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{VHOTPLUGCLI_BINARY, "-t", "unix", "-u", socket_path};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_capture(argv);
  };
  auto key = plug_key(40, "1-2.2", "SLEEPY");
  plug_stick(50, "1-9", "STICK50");
  ASSERT_TRUE(eventually([&] { return attached(40, "vm1"); })) << log();
  ASSERT_EQ(request({{"action", "usb_attach"}, {"device_node", "/dev/bus/usb/001/050"}, {"vm", "vm2"}})["result"], "ok");

  auto suspend = cli({"usb", "suspend"});
  EXPECT_EQ(suspend.exit_code, 0) << suspend.err;
  EXPECT_EQ(suspend.err, "INFO Successfully suspended\n");
  EXPECT_TRUE(vm1.usb_ids().empty());
  EXPECT_TRUE(vm2.usb_ids().empty());
  EXPECT_EQ(state()["disconnected_devices"], json::array());  // not the user's detach

  tb.unplug(key);  // re-enumerated during the sleep: same key, new address
  plug_key(44, "1-2.2", "SLEEPY");
  ASSERT_TRUE(eventually([&] { return attached(44, "vm1"); })) << log();  // its plug already puts it back (a rule)
  auto resume = cli({"usb", "resume"});
  EXPECT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_EQ(vm1.usb_ids(), std::vector<std::string>{"vhp-usb-1-44"});
  EXPECT_EQ(vm2.usb_ids(), std::vector<std::string>{"vhp-usb-1-50"});  // the user's choice, without asking again
}

}  // namespace
}  // namespace vhp::passthrough_test
