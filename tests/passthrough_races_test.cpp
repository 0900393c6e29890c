// Passthrough decisions in-process, on the real Daemon wiring and a umockdev host, with in-process
// fake VMs (support/fake_vm.h) that can hold an attach in flight: the races users hit (a kill
// switch during an attach, a reload, a VM that dies), each with the outcome users expect.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/daemon.h"
#include "support/coroutine.h"
#include "support/fake_vm.h"
#include "support/in_process_daemon.h"
#include "support/host_fixture.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace vhp::passthrough_races_test {
namespace {

using json = nlohmann::json;
using test::run_until;

constexpr const char* kRules = R"({
  "usbPassthrough": [
    {"targetVm": "vm1", "tag": "key", "allow": [{"vendorId": "1050", "productId": "0407"}]},
    {"allowedVms": ["vm1", "vm2"], "tag": "storage", "allow": [{"interfaceClass": 8}]}]})";

class Races : public test::InProcessDaemon {
 protected:
  Races() { write_config(json::parse(kRules)); }

  std::optional<UsbDevice> device(int devnum) {
    for (const auto& d : daemon->registry().usb_devices())
      if (d.busnum == 1 && d.devnum == devnum) return d;
    return std::nullopt;
  }
  std::optional<std::string> attached_vm(int devnum) {
    auto d = device(devnum);
    const auto* a = d ? daemon->manager().placements().attachment(*d) : nullptr;
    return a ? std::optional<std::string>(a->vm) : std::nullopt;
  }
  int count(const auto& predicate) { return static_cast<int>(std::ranges::count_if(seen, predicate)); }
  int attached_events(int devnum) {
    return count([devnum](const ManagerEvent& e) { return std::holds_alternative<UsbAttached>(e) && std::get<UsbAttached>(e).device.devnum == devnum; });
  }

  std::string plug_key(int devnum, const std::string& name) {
    auto spec = test::security_key_spec(host.hub);
    spec.name = name, spec.devnum = devnum, spec.dev_node = true, spec.serial = "K" + std::to_string(devnum);
    auto path = tb.plug(spec);
    if (daemon) {  // else the start-up scan finds it
      EXPECT_TRUE(run_until(io(), [&] { return device(devnum).has_value(); }));
    }
    return path;
  }

  void plug_stick(int devnum) {
    tb.plug({.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = devnum, .vid = "0781", .pid = "5581",
             .manufacturer = "SanDisk", .product = "Ultra", .serial = "S" + std::to_string(devnum),
             .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
    EXPECT_TRUE(run_until(io(), [&] { return device(devnum).has_value(); }));
  }

  // The daemon up, and a key plugged whose attach to vm1 is held in flight.
  void start_with_a_plug_in_flight() {
    start();
    vm("vm1").hold_attaches();
    plug_key(40, "1-2.2");
    ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1; }));
  }

  static Command detach_node(int devnum) {
    DeviceSelector s;
    s.device_node = "/dev/bus/usb/001/0" + std::to_string(devnum);
    return UsbDetach{s};
  }
  static Command by_tag(bool attach, const std::string& tag) {
    DeviceSelector s;
    s.tag = tag;
    if (attach) return UsbAttach{s, std::nullopt};
    return UsbDetach{s};
  }

};

TEST_F(Races, APlugAttachesByRuleAndUnplugDetaches) {  // the baseline the races are measured against
  start();
  auto key = plug_key(40, "1-2.2");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds(1, 40));
  EXPECT_EQ(attached_events(40), 1);
  tb.unplug(key);
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm1").holds(1, 40); }));
  EXPECT_TRUE(std::holds_alternative<UsbDisconnected>(seen.back()));
}

TEST_F(Races, ADetachDuringAnAttachWins) {
  ASSERT_NO_FATAL_FAILURE(start_with_a_plug_in_flight());
  EXPECT_EQ(request(detach_node(40)).error, std::nullopt);  // answered ok: the attach is called off
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_done() == 1 && !vm("vm1").holds(1, 40); }));
  EXPECT_EQ(attached_vm(40), std::nullopt);
  EXPECT_EQ(attached_events(40), 0);
  EXPECT_TRUE(daemon->manager().placements().is_disconnected(*device(40)));
  ListFilter connected{false, std::nullopt};
  for (const auto& l : daemon->manager().usb_list(connected)) EXPECT_NE(l.device.devnum, 40);  // the kill switch's status: blocked
}

TEST_F(Races, ATagDetachDuringAnAttachWins) {
  ASSERT_NO_FATAL_FAILURE(start_with_a_plug_in_flight());
  EXPECT_EQ(request(by_tag(false, "key")).error, std::nullopt);
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_done() == 1 && !vm("vm1").holds(1, 40); }));
  EXPECT_EQ(attached_vm(40), std::nullopt);
  EXPECT_EQ(attached_events(40), 0);
  EXPECT_TRUE(daemon->manager().placements().is_disconnected(*device(40)));
}

TEST_F(Races, AnApiAttachCutShortByADetachAnswersFailed) {
  start();
  plug_stick(50);
  vm("vm2").hold_attaches();
  DeviceSelector s;
  s.device_node = "/dev/bus/usb/001/050";
  std::optional<CommandResult> attach;
  request(UsbAttach{s, "vm2"}, attach);
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm2").attaches_started() == 1; }));
  EXPECT_EQ(request(UsbDetach{s}).error, std::nullopt);
  vm("vm2").release();
  ASSERT_TRUE(run_until(io(), [&] { return attach.has_value(); }));
  EXPECT_EQ(attach->error, "USB device /dev/bus/usb/001/050 was detached or moved during the attach");
  EXPECT_FALSE(vm("vm2").holds(1, 50));
  EXPECT_EQ(attached_vm(50), std::nullopt);
}

TEST_F(Races, AReloadThatRemovesTheRuleDuringAnAttachLeavesTheDeviceOnTheHost) {
  ASSERT_NO_FATAL_FAILURE(start_with_a_plug_in_flight());
  write_config(json::parse(R"({"usbPassthrough": []})"));
  daemon->reload();
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_done() == 1 && !vm("vm1").holds(1, 40); }));
  EXPECT_EQ(attached_vm(40), std::nullopt);
  EXPECT_EQ(attached_events(40), 0);
}

TEST_F(Races, ATagAttachRacingAReloadThatRemovesTheRuleDoesNotCrash) {
  start();
  plug_key(40, "1-2.2");
  plug_key(41, "1-2.3");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1" && attached_vm(41) == "vm1"; }));
  ASSERT_EQ(request(by_tag(false, "key")).error, std::nullopt);
  ASSERT_TRUE(vm("vm1").held().empty());
  vm("vm1").hold_attaches();
  int before = vm("vm1").attaches_started();
  std::optional<CommandResult> attach;
  request(by_tag(true, "key"), attach);  // the tag's first device is held in flight
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == before + 1; }));
  write_config(json::parse(R"({"usbPassthrough": []})"));
  daemon->reload();
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return attach.has_value(); }));
  ASSERT_TRUE(attach->error);  // an error answer, not a crash
  EXPECT_EQ(*attach->error, "The rules changed during the attach of tag key: no longer tagged: "
                            "/dev/bus/usb/001/003, /dev/bus/usb/001/040, /dev/bus/usb/001/041");
  EXPECT_EQ(vm("vm1").attaches_started(), before + 1);  // the others were not tried: no rule names them now
  EXPECT_TRUE(vm("vm1").held().empty());                // and the one in flight was undone
  EXPECT_EQ(attached_vm(40), std::nullopt);
  EXPECT_EQ(attached_vm(41), std::nullopt);
}

TEST_F(Races, AVmThatDiesMidAttachGetsTheDeviceWhenItComesBack) {
  ASSERT_NO_FATAL_FAILURE(start_with_a_plug_in_flight());
  vm("vm1").go_down();
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1 && std::holds_alternative<VmStopped>(seen.back()); }));
  EXPECT_EQ(attached_vm(40), std::nullopt);
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds(1, 40));
  EXPECT_EQ(attached_events(40), 1);
}

TEST_F(Races, AVmRestartReattachesOnlyWhatTheRulesStillAllow) {
  start();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  vm("vm1").go_down();
  write_config(json::parse(R"({"usbPassthrough": []})"));
  daemon->reload();
  int before = vm("vm1").attaches_started();
  vm("vm1").come_up();
  // The VM coming up re-checks the rules and lets go of the wish; nothing is attached.
  ASSERT_TRUE(run_until(io(), [&] { return !daemon->manager().placements().wanted(*device(40)); }));
  EXPECT_EQ(vm("vm1").attaches_started(), before);
  EXPECT_EQ(attached_vm(40), std::nullopt);
}

TEST_F(Races, WhatAVmAlreadyHoldsIsAdoptedByItsHostAddressWhateverItsId) {
  plug_key(40, "1-2.2");  // before the daemon: not attached by a plug
  start();
  // The reference's naming, found when the VM comes up (start() announced it before we could put
  // it there, so restart it holding the device).
  vm("vm1").go_down();
  vm("vm1").put({"usb140", 1, 40, true});
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  EXPECT_EQ(vm("vm1").attaches_started(), 0);  // adopted, not added again
  EXPECT_EQ(request(detach_node(40)).error, std::nullopt);
  EXPECT_FALSE(vm("vm1").holds(1, 40));
}

TEST_F(Races, AVmThatCannotTakeUsbIsAClearErrorAtAttachTime) {
  json config = json::parse(kRules);
  config["vms"] = {{{"name", "vm1"}, {"type", "cloud-hypervisor"}, {"socket", dir / "vm1.sock"}}};
  config["usbPassthrough"][1]["allowedVms"] = {"vm1"};
  config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"enable", false}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  DaemonOptions options;
  options.config_path = dir / "vhotplug.conf";
  options.handle_signals = false;
  daemon.emplace(options);
  daemon->start();
  plug_key(40, "1-2.2");
  DeviceSelector s;
  s.device_node = "/dev/bus/usb/001/040";
  EXPECT_EQ(request(UsbAttach{s, std::nullopt}).error, "USB passthrough is not supported by cloud-hypervisor (no USB hot-plug in its API)");
}

// SIGHUP re-applies the rules to what is there now.
TEST_F(Races, AReloadTakesOutWhatTheRulesNoLongerAllow) {
  start();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  write_config(json::parse(R"({"usbPassthrough": []})"));
  daemon->reload();
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm1").holds(1, 40) && !attached_vm(40); }));
  EXPECT_FALSE(daemon->manager().placements().wanted(*device(40)));  // so a VM restart does not bring it back
  EXPECT_TRUE(std::ranges::any_of(seen, [](const ManagerEvent& e) { return std::holds_alternative<UsbDetached>(e); }));
}

TEST_F(Races, AReloadAttachesWhatTheRulesNowAllowAsOnAPlug) {
  write_config(json::parse(R"({"usbPassthrough": []})"));
  start();
  plug_key(40, "1-2.2");
  write_config(json::parse(kRules));
  daemon->reload();
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  EXPECT_EQ(attached_events(40), 1);
  EXPECT_EQ(count([](const ManagerEvent& e) { return std::holds_alternative<UsbConnected>(e); }), 1);  // the plug's own
}

TEST_F(Races, AReloadThatChangesTheTargetMovesTheDevice) {
  start();
  plug_key(40, "1-2.2");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm1"; }));
  auto rules = json::parse(kRules);
  rules["usbPassthrough"][0]["targetVm"] = "vm2";
  write_config(rules);
  daemon->reload();
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(40) == "vm2"; }));
  EXPECT_FALSE(vm("vm1").holds(1, 40));
  EXPECT_TRUE(vm("vm2").holds(1, 40));
}

TEST_F(Races, ARuleNamingAVmMissingFromVmsStartsAndAnswersFailed) {
  auto rules = json::parse(kRules);
  rules["usbPassthrough"][0]["targetVm"] = "business-vm";  // disabled on this image
  write_config(rules);
  start();
  plug_key(40, "1-2.2");
  DeviceSelector s;
  s.device_node = "/dev/bus/usb/001/040";
  EXPECT_EQ(request(UsbAttach{s, std::nullopt}).error, "VM business-vm is not found in the config file");
  EXPECT_EQ(attached_vm(40), std::nullopt);
}

// A state file the reference wrote, in its exact format: the serial-less serial adapter (1a86:7523
// at 1-5) was blocked by the kill switch as "usb-1a86:7523:None".
TEST_F(Races, TheReferencesStateFileIsMigratedAndAnAttachClearsTheBlock) {
  auto rules = json::parse(kRules);
  rules["usbPassthrough"].push_back(json::parse(R"({"targetVm": "vm1", "tag": "serial", "allow": [{"vendorId": "1a86", "productId": "7523"}]})"));
  write_config(rules);
  std::ofstream(dir / "state.json") << R"({"selected_vms": {"usb-0781:5581:None": "vm2"}, "disconnected_devices": ["usb-1a86:7523:None"]})";
  start(true);  // -a: a blocked device must stay on the host all the same
  auto state = json::parse(test::read_file(dir / "state.json"));
  EXPECT_EQ(state["disconnected_devices"], json::array({"usb-1a86:7523:port-1-5"}));  // rewritten once, in our identity
  EXPECT_EQ(state["selected_vms"], json({{"usb-0781:5581:None", "vm2"}}));  // no serial-less stick is here: that one waits
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(3) == "vm1"; }));  // (-a did its work)
  EXPECT_EQ(attached_vm(6), std::nullopt);  // the blocked adapter stayed on the host
  DeviceSelector s;
  s.device_node = "/dev/bus/usb/001/006";
  EXPECT_EQ(request(UsbAttach{s, std::nullopt}).error, std::nullopt);
  EXPECT_EQ(attached_vm(6), "vm1");
  EXPECT_EQ(json::parse(test::read_file(dir / "state.json"))["disconnected_devices"], json::array());
}

TEST_F(Races, AMoveThatFailsPutsTheDeviceBack) {
  start();
  plug_stick(50);
  DeviceSelector s;
  s.device_node = "/dev/bus/usb/001/050";
  ASSERT_EQ(request(UsbAttach{s, "vm1"}).error, std::nullopt);
  vm("vm2").fail_next_attach("failed to open the host device");
  EXPECT_EQ(request(UsbAttach{s, "vm2"}).error, "failed to open the host device");
  ASSERT_TRUE(run_until(io(), [&] { return attached_vm(50) == "vm1"; }));  // back where it was, not stranded on the host
  EXPECT_TRUE(vm("vm1").holds(1, 50));
}

}  // namespace
}  // namespace vhp::passthrough_races_test
