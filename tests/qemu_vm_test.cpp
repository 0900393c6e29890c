// QemuVm against real QEMU 7.2 processes (q35, TCG) that see the umockdev host's USB devices.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/coroutine.h"
#include "support/fake_qmp.h"
#include "support/host_fixture.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "vmm/qemu_vm.h"

namespace vhp::qemu_vm_test {
namespace {

using test::complete;
using test::run_until;

UsbDevice usb(int busnum, int devnum) {
  UsbDevice d;
  d.busnum = busnum, d.devnum = devnum;
  return d;
}
VmUsbDevice held(int busnum, int devnum) { return VmUsbDevice{"", busnum, devnum, true}; }

// What list_usb says when the VM holds the test's key (host 1:40), under the name `id`, and nothing else.
void expect_holds_only_the_key(const std::vector<VmUsbDevice>& listed, const std::string& id) {
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, id);
  EXPECT_EQ(listed[0].hostbus, 1);
  EXPECT_EQ(listed[0].hostaddr, 40);
  EXPECT_TRUE(listed[0].attached);
}

QemuTimeouts quick() {
  QemuTimeouts t;
  t.connect = std::chrono::milliseconds(1000);
  t.command = std::chrono::milliseconds(2000);
  t.attach_retries = 3;
  t.attach_retry_interval = std::chrono::milliseconds(50);
  return t;
}

class QemuVmTest : public testing::Test {
 protected:
  QemuVmTest() {
    auto host = test::add_realistic_host(tb);
    auto spec = test::security_key_spec(host.hub);
    spec.name = "1-2.2", spec.devnum = 40, spec.dev_node = true;
    key = tb.add_usb(spec);
  }
  void up() {
    qemu.start();
    vm.on_up = [this] { ++ups; };
    vm.on_down = [this] { ++downs; };
    vm.start();
    ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  }

  test::Testbed tb;
  std::string key;
  test::TempDir dir;
  test::Qemu qemu{dir.path(), "vm1"};
  boost::asio::io_context io;
  QemuVm vm{io, "vm1", qemu.socket(), quick()};
  int ups = 0, downs = 0;
};

TEST_F(QemuVmTest, AttachesAHostDeviceVerifiesItAndDetachesIt) {
  up();
  complete(io, vm.attach_usb(usb(1, 40)));
  EXPECT_EQ(qemu.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
  EXPECT_EQ(qemu.qmp("qom-get", {{"path", "/machine/peripheral/vhp-usb-1-40"}, {"property", "attached"}})["return"], true);
  expect_holds_only_the_key(complete(io, vm.list_usb()), "vhp-usb-1-40");

  complete(io, vm.detach_usb(held(1, 40)));  // returns once QEMU has let go of it (out of the QOM tree)
  EXPECT_TRUE(qemu.usb_ids().empty());
}

TEST_F(QemuVmTest, IdsCannotCollide) {
  EXPECT_NE(QemuVm::usb_id(1, 12), QemuVm::usb_id(11, 2));  // the reference's usb112 for both
  EXPECT_EQ(QemuVm::usb_id(1, 12), "vhp-usb-1-12");
}

TEST_F(QemuVmTest, AnAbsentDeviceFailsWithQemusOwnTextAfterBoundedRetries) {
  up();
  try {
    complete(io, vm.attach_usb(usb(1, 99)));
    FAIL() << "attached a device that does not exist";
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "failed to find host usb device 1:99");
  }
  EXPECT_TRUE(qemu.usb_ids().empty());  // nothing half-added
}

TEST_F(QemuVmTest, AttachingTwiceIsHarmless) {
  up();
  complete(io, vm.attach_usb(usb(1, 40)));
  complete(io, vm.attach_usb(usb(1, 40)));  // QEMU: "Duplicate device ID": ours already, verified attached
  EXPECT_EQ(qemu.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
}

TEST_F(QemuVmTest, DetachingWhatQemuDoesNotHaveIsFine) {
  up();
  EXPECT_NO_THROW(complete(io, vm.detach_usb(held(1, 40))));  // DeviceNotFound
}

TEST_F(QemuVmTest, OperationsOnADownVmFailAtOnce) {
  vm.start();  // nothing listening: down from the start, no wait needed
  EXPECT_FALSE(vm.running());
  try {
    complete(io, vm.attach_usb(usb(1, 40)));
    FAIL();
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "VM vm1 is not running");
  }
}

TEST_F(QemuVmTest, AVmKilledMidOperationFailsItAndIsSeenGoing) {
  up();
  test::Finished attach;
  test::start(io, vm.attach_usb(usb(1, 77)), attach);  // keeps retrying (the device is absent) while the VM dies under it
  ASSERT_TRUE(run_until(io, [&] { return vm.monitor_open(); }));  // the operation is under way
  qemu.kill();
  ASSERT_TRUE(run_until(io, [&] { return attach.done && downs == 1; }));
  EXPECT_FALSE(attach.error.empty());
  EXPECT_FALSE(vm.running());
}

TEST_F(QemuVmTest, AVmThatRestartsIsReconnected) {
  up();
  EXPECT_EQ(ups, 1);
  qemu.kill();
  ASSERT_TRUE(run_until(io, [&] { return downs == 1; }));
  qemu.start();
  ASSERT_TRUE(run_until(io, [&] { return ups == 2 && vm.running(); }));
  complete(io, vm.attach_usb(usb(1, 40)));
  EXPECT_EQ(qemu.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
}

TEST_F(QemuVmTest, AHungVmTimesOutAndDoesNotBlockAnotherVm) {
  up();
  // What QEMU cannot be made to do here: hang. Greets, negotiates, answers probes, then silence.
  test::FakeQmp hung(dir / "hung.qmp", [](const nlohmann::json&) { return std::nullopt; });
  QemuVm stuck(io, "stuck", dir / "hung.qmp", quick());
  stuck.start();
  ASSERT_TRUE(run_until(io, [&] { return stuck.running(); }));
  test::Finished stuck_attach;
  test::start(io, stuck.attach_usb(usb(1, 40)), stuck_attach);
  complete(io, vm.attach_usb(usb(1, 40)));  // the healthy VM is served while the other one hangs
  EXPECT_FALSE(stuck_attach.done);
  ASSERT_TRUE(run_until(io, [&] { return stuck_attach.done; }));
  EXPECT_EQ(stuck_attach.error, "VM stuck did not answer device_add");
  stuck.stop();
}

TEST_F(QemuVmTest, OperationsOnOneVmAreSerialised) {
  up();
  // Two attaches and a detach issued at once complete in order, one at a time.
  std::vector<std::string> order;
  auto step = [&](const char* name, boost::asio::awaitable<void> work) {
    boost::asio::co_spawn(io, std::move(work), [&order, name](std::exception_ptr) { order.push_back(name); });
  };
  step("attach", vm.attach_usb(usb(1, 40)));
  step("detach", vm.detach_usb(held(1, 40)));
  step("attach again", vm.attach_usb(usb(1, 40)));
  ASSERT_TRUE(run_until(io, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"attach", "detach", "attach again"}));
  EXPECT_EQ(qemu.usb_ids(), std::vector<std::string>{"vhp-usb-1-40"});
}

TEST_F(QemuVmTest, AVmWhoseSocketDirectoryAppearsLaterIsFound) {
  // Ghaf's VM state directory may not exist when the daemon starts: probed until it can be watched.
  std::string later = dir / "later";
  QemuVm vm_later(io, "later", later + "/vm.qmp", quick());
  int later_ups = 0;
  vm_later.on_up = [&] { ++later_ups; };
  vm_later.start();
  EXPECT_FALSE(vm_later.running());
  EXPECT_FALSE(vm_later.watching_socket());
  std::filesystem::create_directory(later);
  ASSERT_TRUE(run_until(io, [&] { return vm_later.watching_socket(); }));  // the fallback timer tried again
  test::Qemu qemu_later(later, "vm");
  qemu_later.start();
  ASSERT_TRUE(run_until(io, [&] { return later_ups == 1 && vm_later.running(); }));  // seen through inotify
  vm_later.stop();
}

// Ghaf stops a VM with `system_powerdown` through `socat -t1` on the same socket: QEMU serves one
// monitor client at a time, so we may only borrow it.
TEST_F(QemuVmTest, TheMonitorIsFreeForItsOwnerWhileWeAreIdle) {
  up();
  complete(io, vm.attach_usb(usb(1, 40)));
  EXPECT_FALSE(vm.monitor_open());
  auto replies = test::qmp_one_shot(qemu.socket(), "query-status", std::chrono::milliseconds(1000));
  ASSERT_EQ(replies.size(), 3u);  // greeting, capabilities, the command: all within a second
  EXPECT_TRUE(replies[2]["return"].contains("status")) << replies[2].dump();
}

TEST_F(QemuVmTest, AnotherClientIsServedRightAfterOurOperation) {
  up();
  test::Finished attach;
  test::start(io, vm.attach_usb(usb(1, 99)), attach);  // an absent device: the monitor stays ours for the retries
  ASSERT_TRUE(run_until(io, [&] { return vm.monitor_open(); }));
  std::vector<nlohmann::json> replies;
  std::thread other([&] { replies = test::qmp_one_shot(qemu.socket(), "query-status", std::chrono::seconds(5)); });
  ASSERT_TRUE(run_until(io, [&] { return attach.done; }));
  EXPECT_FALSE(vm.monitor_open());
  other.join();
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_TRUE(replies[2].contains("return"));
}

TEST_F(QemuVmTest, AVmStoppedByItsOwnerIsSeenGoingAndComingBack) {
  up();
  complete(io, vm.attach_usb(usb(1, 40)));
  auto replies = test::qmp_one_shot(qemu.socket(), "quit", std::chrono::milliseconds(1000));
  ASSERT_EQ(replies.size(), 3u);
  ASSERT_TRUE(run_until(io, [&] { return downs == 1; }, std::chrono::seconds(2)));  // the pidfd says so
  EXPECT_FALSE(vm.running());
  qemu.start();  // on the same socket
  ASSERT_TRUE(run_until(io, [&] { return ups == 2 && vm.running(); }, std::chrono::seconds(2)));  // inotify, then a probe
  complete(io, vm.attach_usb(usb(1, 40)));
}

TEST_F(QemuVmTest, AUsbHostUnderAnotherNameIsFoundByItsHostAddress) {
  up();
  // The reference names what it adds usb<bus><dev>.
  nlohmann::json added;
  ASSERT_TRUE(test::eventually([&] {  // QEMU's libusb may not have seen the device yet
    added = qemu.qmp("device_add", {{"driver", "usb-host"}, {"id", "usb140"}, {"hostbus", 1}, {"hostaddr", 40}});
    return added.contains("return");
  })) << added.dump();
  expect_holds_only_the_key(complete(io, vm.list_usb()), "usb140");
  complete(io, vm.detach_usb(held(1, 40)));  // by its host address; QEMU's id is looked up
  EXPECT_TRUE(qemu.usb_ids().empty());
}

// What real QEMU does not send, but a compromised one could: each fails that operation only.
TEST_F(QemuVmTest, AMalformedReplyFailsTheOperationAndTheVmStaysManaged) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"error": "boom", "id": ID})", "VM odd sent a malformed answer to device_add: QMP sent an error that is not an object"},
      {R"(not json at all)", "VM odd sent a malformed answer to device_add: QMP sent something that is not a JSON object"},
      {R"([1, 2, 3])", "VM odd sent a malformed answer to device_add: QMP sent something that is not a JSON object"},
      {R"({"id": ID})", "VM odd sent a malformed answer to device_add: QMP answered device_add with neither return nor error"},
  };
  std::atomic<int> adds = 0;
  test::FakeQmp fake(dir / "odd.qmp", [&](const nlohmann::json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "device_add") {
      int n = adds++;
      if (n < static_cast<int>(bad.size())) {
        auto line = bad[n].first;
        if (auto at = line.find("ID"); at != std::string::npos) line.replace(at, 2, r["id"].dump());
        return line;
      }
      return test::FakeQmp::reply(r, nlohmann::json::object());
    }
    if (command == "qom-get") return test::FakeQmp::reply(r, true);
    return std::nullopt;
  });
  QemuVm odd(io, "odd", dir / "odd.qmp", quick());
  odd.start();
  ASSERT_TRUE(run_until(io, [&] { return odd.running(); }));
  for (const auto& [reply, error] : bad) {
    try {
      complete(io, odd.attach_usb(usb(1, 40)));
      ADD_FAILURE() << "accepted " << reply;
    } catch (const VmError& e) {
      EXPECT_EQ(std::string(e.what()), error);
    }
    ASSERT_TRUE(run_until(io, [&] { return odd.running() && !odd.monitor_open(); }));
  }
  complete(io, odd.attach_usb(usb(1, 40)));  // still managed: the next operation works
  odd.stop();
}

// On a QEMU older than 7.2 the question whether the device is attached goes out behind device_add,
// and on every QEMU the look behind device_del, before their answers: this monitor answers each only
// once the command behind it has come (so does QEMU's own reading, while a command runs, with "oob"
// enabled: the greeting offers it, the session takes it).
TEST_F(QemuVmTest, EachCheckIsSentBehindTheCommandItChecks) {
  nlohmann::json pending;  // the device_add or device_del not answered yet
  std::atomic<bool> oob = false;
  test::FakeQmp fake(dir / "fast.qmp", [&](const nlohmann::json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "qmp_capabilities") oob = r.contains("arguments") && r["arguments"]["enable"] == nlohmann::json::array({"oob"});
    if (command == "device_add" || command == "device_del") {
      pending = r;
      return std::string();
    }
    if (pending.is_null()) return std::nullopt;
    auto first = test::FakeQmp::reply(pending, nlohmann::json::object()) + "\r\n";
    pending = nullptr;
    if (command == "qom-get") return first + test::FakeQmp::reply(r, true);
    if (command == "qom-list")
      return first + nlohmann::json{{"error", {{"class", "DeviceNotFound"}, {"desc", "Device not found"}}}, {"id", r["id"]}}.dump();
    return std::nullopt;
  }, {7, 1});
  QemuVm fast(io, "fast", dir / "fast.qmp", quick());
  fast.start();
  ASSERT_TRUE(run_until(io, [&] { return fast.running(); }));
  complete(io, fast.attach_usb(usb(1, 40)));
  complete(io, fast.detach_usb(held(1, 40)));  // gone at the look: no wait for DEVICE_DELETED
  EXPECT_TRUE(oob);
  EXPECT_EQ(fake.commands(), (std::vector<std::string>{"qmp_capabilities", "query-status", "qmp_capabilities", "device_add",
                                                       "qom-get", "qmp_capabilities", "device_del", "qom-list"}));
  fast.stop();
}

// From QEMU 7.2 on, device_add of a usb-host by bus and address succeeds only once the host device
// is open and attached, and device_del of a USB device only once it is unplugged (the real one:
// AttachesAHostDeviceVerifiesItAndDetachesIt): nothing more is asked.
TEST_F(QemuVmTest, FromQemu72TheAnswersToDeviceAddAndDelAreFinal) {
  test::FakeQmp fake(dir / "new.qmp", [&](const nlohmann::json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "device_add" || command == "device_del") return test::FakeQmp::reply(r, nlohmann::json::object());
    return std::nullopt;  // a qom-get or qom-list would get no answer, and the operation would time out
  });
  QemuVm vm(io, "new", dir / "new.qmp", quick());
  vm.start();
  ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
  complete(io, vm.attach_usb(usb(1, 40)));
  complete(io, vm.detach_usb(held(1, 40)));
  EXPECT_EQ(fake.commands(), (std::vector<std::string>{"qmp_capabilities", "query-status", "qmp_capabilities", "device_add",
                                                       "qmp_capabilities", "device_del"}));
  vm.stop();
}

// What is asked is believed: an older QEMU that added the usb-host without attaching its device, or
// an id already taken by a usb-host whose device is gone, is an error, and the usb-host is removed.
TEST_F(QemuVmTest, AUsbHostLeftUnattachedIsAnErrorAndRemoved) {
  struct Case {
    std::pair<int, int> version;
    bool duplicate;
  };
  for (auto [version, duplicate] : {Case{{6, 2}, false}, Case{{7, 2}, true}, Case{{9, 2}, true}}) {
    std::atomic<bool> attached = false;
    auto socket = dir / ("v" + std::to_string(version.first) + ".qmp");
    test::FakeQmp fake(socket, [&](const nlohmann::json& r) -> std::optional<std::string> {
      auto command = r.value("execute", "");
      if (command == "device_add" && duplicate)
        return nlohmann::json{{"error", {{"class", "GenericError"}, {"desc", "Duplicate device ID 'vhp-usb-1-40'"}}}, {"id", r["id"]}}.dump();
      if (command == "device_add" || command == "device_del") return test::FakeQmp::reply(r, nlohmann::json::object());
      if (command == "qom-get") return test::FakeQmp::reply(r, attached.load());
      return std::nullopt;
    }, version);
    QemuVm vm(io, "old", socket, quick());
    vm.start();
    ASSERT_TRUE(run_until(io, [&] { return vm.running(); }));
    try {
      complete(io, vm.attach_usb(usb(1, 40)));
      ADD_FAILURE() << "an unattached usb-host taken for attached on " << version.first << "." << version.second;
    } catch (const VmError& e) {
      EXPECT_EQ(std::string(e.what()), "QEMU added vhp-usb-1-40 but did not attach the host device");
    }
    EXPECT_EQ(fake.commands(), (std::vector<std::string>{"qmp_capabilities", "query-status", "qmp_capabilities", "device_add",
                                                         "qom-get", "device_del"}));
    attached = true;
    complete(io, vm.attach_usb(usb(1, 40)));  // attached after all: accepted
    vm.stop();
  }
}

// A session that breaks after connecting (a garbled answer, a timeout) is not the VM going away.
TEST_F(QemuVmTest, ASessionThatBreaksAfterConnectingDoesNotMarkTheVmDown) {
  std::atomic<int> statuses = 0;
  test::FakeQmp odd(dir / "odd.qmp", [&](const nlohmann::json& r) -> std::optional<std::string> {
    auto command = r.value("execute", "");
    if (command == "query-status" && statuses++ > 0) return std::string("garbage");
    if (command == "device_add") return std::string("garbage");
    return std::nullopt;
  });
  QemuVm vm_odd(io, "odd", dir / "odd.qmp", quick());
  int odd_downs = 0;
  vm_odd.on_down = [&] { ++odd_downs; };
  vm_odd.start();
  ASSERT_TRUE(run_until(io, [&] { return vm_odd.running(); }));
  EXPECT_THROW(complete(io, vm_odd.attach_usb(usb(1, 40))), VmError);  // the broken session makes it probe…
  ASSERT_TRUE(run_until(io, [&] { return statuses >= 2 && !vm_odd.monitor_open(); }));  // …and the probe breaks too
  EXPECT_TRUE(vm_odd.running());
  EXPECT_EQ(odd_downs, 0);
  vm_odd.stop();
}

}  // namespace
}  // namespace vhp::qemu_vm_test
