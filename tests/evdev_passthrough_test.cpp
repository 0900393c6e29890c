// Input devices (evdev) in-process: the real Daemon on a umockdev host with a laptop's built-in
// keyboard, touchpad and lid switch, its VMs in-process fakes. Real evdev nodes cannot exist here
// (no uinput): the EVIOCGRAB probe's answer is the test's (InProcessDaemon::evdev_grabbed).
#include <algorithm>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/in_process_daemon.h"

namespace vhp::evdev_passthrough_test {
namespace {

using json = nlohmann::json;
using test::run_until;

class EvdevPassthrough : public test::InProcessDaemon {
 protected:
  EvdevPassthrough() {
    write_config(json::parse(R"({"evdevPassthrough": [
      {"targetVm": "vm1", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "1"}, {"property": "ID_INPUT_TOUCHPAD", "value": "1"}],
       "deny": [{"name": "Virtual"}]},
      {"targetVm": "vm2", "allow": [{"name": "Lid Switch"}]}]})"));
    i8042 = tb.add_device("platform", "i8042", "", {}, {});
    keyboard = test::add_input(tb, tb.add_device("serio", "serio0", i8042, {}, {}), 0, "AT Translated Set 2 keyboard",
                               {{"ID_INPUT_KEYBOARD", "1"}, {"ID_BUS", "i8042"}, {"ID_PATH_TAG", "platform-i8042-serio-0"}});
    lid = test::add_input(tb, tb.add_device("acpi", "PNP0C0D:00", "", {}, {}), 2, "Lid Switch", {{"ID_INPUT_SWITCH", "1"}});
    // As QEMU does, a fake VM grabs the nodes it holds; `grabbed`: what some other process grabs.
    evdev_grabbed = [this](const std::string& node) {
      probed.push_back(node);
      return grabbed.contains(node) || std::ranges::any_of(fakes, [&](const auto& f) { return f.second->holds_evdev(node); });
    };
  }

  std::optional<std::string> vm_of(const std::string& sys_path) {
    for (const auto& l : daemon->manager().evdev_list())
      if (l.device.sys_path == sys_path) return l.vm;
    return std::nullopt;
  }
  std::string plug_touchpad() {
    return test::add_input(tb, tb.add_device("serio", "serio1", i8042, {}, {}), 5, "SynPS/2 Synaptics TouchPad",
                           {{"ID_INPUT_TOUCHPAD", "1"}, {"ID_BUS", "i8042"}});
  }

  std::string i8042, keyboard, lid;
  std::set<std::string> grabbed;
  std::vector<std::string> probed;
};

TEST_F(EvdevPassthrough, AtStartWithMinusAEachGoesToItsRulesVm) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(keyboard) == "vm1" && vm_of(lid) == "vm2"; }));
  EXPECT_TRUE(vm("vm1").holds_evdev("/dev/input/event0"));
  EXPECT_TRUE(vm("vm2").holds_evdev("/dev/input/event2"));
  EXPECT_FALSE(vm("vm1").holds_evdev("/dev/input/event2"));
}

TEST_F(EvdevPassthrough, WithoutMinusAPresentDevicesStayButAPlugGoesAtOnceAndAnUnplugComesOut) {
  start();
  auto touchpad = plug_touchpad();
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(touchpad) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds_evdev("/dev/input/event5"));
  EXPECT_FALSE(vm("vm1").holds_evdev("/dev/input/event0"));  // present at start, no -a: the reference's rule
  EXPECT_EQ(vm_of(keyboard), std::nullopt);
  tb.unplug(touchpad);
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm1").holds_evdev("/dev/input/event5"); }));
  EXPECT_TRUE(daemon->manager().evdev_attachments().empty());
}

TEST_F(EvdevPassthrough, AVmRestartGetsItsDevicesBack) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(keyboard) == "vm1"; }));
  vm("vm1").go_down();
  EXPECT_EQ(vm_of(keyboard), std::nullopt);
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(keyboard) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds_evdev("/dev/input/event0"));
}

TEST_F(EvdevPassthrough, ANodeSomeoneGrabsIsNotAddedTwice) {
  grabbed = {"/dev/input/event0"};  // the VM's QEMU has it from its command line (vmm_args)
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(lid) == "vm2" && std::ranges::count(probed, "/dev/input/event0") == 1; }));
  EXPECT_EQ(vm("vm1").evdev_attaches(), 0);
  EXPECT_EQ(vm_of(keyboard), std::nullopt);
}

TEST_F(EvdevPassthrough, AFailedAttachIsLoggedAndLeftOut) {
  on_vm_made = [](test::FakeVm& vm) {
    if (vm.name() == "vm1") vm.fail_next_attach("virtio-input-host-pci: can't open /dev/input/event0: No such file or directory");
  };
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(lid) == "vm2" && vm("vm1").attaches_started() >= 1; }));
  EXPECT_EQ(vm_of(keyboard), std::nullopt);
  EXPECT_FALSE(vm("vm1").holds_evdev("/dev/input/event0"));
}

TEST_F(EvdevPassthrough, AReloadMovesWhatTheRulesNowSendElsewhere) {
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(keyboard) == "vm1"; }));
  write_config(json::parse(R"({"evdevPassthrough": [{"targetVm": "vm2", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "1"}]}]})"));
  vm("vm1").hold_detaches();  // vm1's QEMU lets the node go only when its guest has
  int before = vm("vm2").evdev_attaches();  // the lid's
  daemon->reload();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").evdev_detaches_started() == 1; }));
  EXPECT_EQ(vm("vm2").evdev_attaches(), before);  // not while vm1 still grabs it
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(keyboard) == "vm2"; }));
  EXPECT_FALSE(vm("vm1").holds_evdev("/dev/input/event0"));
  EXPECT_TRUE(vm("vm2").holds_evdev("/dev/input/event0"));
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm2").holds_evdev("/dev/input/event2"); }));  // the lid: no rule now
  EXPECT_EQ(vm_of(lid), std::nullopt);
}

// A reload while the attach is still with the VM: the attach ends, sees the new rule, and moves it.
TEST_F(EvdevPassthrough, AReloadDuringAnAttachEndsInTheNewVm) {
  start();
  vm("vm1").hold_attaches();
  auto touchpad = plug_touchpad();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1; }));
  write_config(json::parse(R"({"evdevPassthrough": [{"targetVm": "vm2", "allow": [{"property": "ID_INPUT_TOUCHPAD", "value": "1"}]}]})"));
  daemon->reload();
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(touchpad) == "vm2"; }));
  EXPECT_FALSE(vm("vm1").holds_evdev("/dev/input/event5"));
  EXPECT_TRUE(vm("vm2").holds_evdev("/dev/input/event5"));
}

TEST_F(EvdevPassthrough, AVmStoppingDuringTheAttachGetsTheDeviceWhenItIsBack) {
  start();
  vm("vm1").hold_attaches();
  auto touchpad = plug_touchpad();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1; }));
  vm("vm1").go_down();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_done() == 0 && daemon->manager().evdev_attachments().empty(); }));
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return vm_of(touchpad) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds_evdev("/dev/input/event5"));
}

}  // namespace
}  // namespace vhp::evdev_passthrough_test
