// PCI passthrough in-process, on the real Daemon wiring, a umockdev host whose sysfs writes the
// FakeVfioKernel answers as the kernel does, and in-process fake VMs (support/fake_vm.h): the
// flows a Ghaf host runs (the kill switch's PCI tags, -a, VM restarts, a daemon restart) and the
// races and refusals around them, with the host driver given back each time.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/daemon.h"
#include "support/coroutine.h"
#include "support/fake_vfio_kernel.h"
#include "support/fake_vm.h"
#include "support/in_process_daemon.h"
#include "support/host_fixture.h"
#include "support/temp_dir.h"

namespace vhp::pci_passthrough_test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_until;

constexpr const char* kWifi = "0000:00:14.3";  // iwlwifi, alone in IOMMU group 6
constexpr const char* kXhci = "0000:00:14.0";  // xhci_hcd, IOMMU group 5 with the SMBus controller (unbound)
constexpr const char* kSmbus = "0000:00:14.2";
constexpr const char* kAudio = "0000:00:1f.3";  // snd_hda_intel, group 12

constexpr const char* kRules = R"({
  "pciPassthrough": [
    {"targetVm": "vm1", "tag": "net", "allow": [{"address": "0000:00:14.3"}]},
    {"targetVm": "vm2", "tag": "mic", "allow": [{"deviceClass": 4}]},
    {"targetVm": "vm2", "tag": "usbctl", "pciIommuAddAll": true, "allow": [{"address": "0000:00:14.0"}]}]})";

class PciFlows : public test::InProcessDaemon {
 protected:
  PciFlows() { write_config(json::parse(kRules)); }

  std::optional<std::string> in_vm(const std::string& address) { return daemon->manager().pci_placements().vm_of(address); }
  json state() {
    std::ifstream in(dir / "state.json");
    return in ? json::parse(in) : json();
  }
  template <class Event>
  int count(const std::string& address) {
    return static_cast<int>(std::ranges::count_if(seen, [&](const ManagerEvent& e) {
      return std::holds_alternative<Event>(e) && std::get<Event>(e).device.address == address;
    }));
  }
  std::vector<std::string> listed(std::optional<bool> disconnected, std::optional<std::string> tag = std::nullopt) {
    std::vector<std::string> out;
    for (const auto& l : daemon->manager().pci_list({disconnected, tag}))
      out.push_back(l.device.address + "@" + l.vm.value_or("-") + (l.iommu_member ? "+member" : ""));
    return out;
  }

  using InProcessDaemon::request;
  std::optional<std::string> request(Command command) { return InProcessDaemon::request(std::move(command)).error; }  // nothing when ok
  static PciDeviceSelector at(const std::string& address) { return {address, std::nullopt, std::nullopt, std::nullopt}; }
  static PciDeviceSelector tagged(const std::string& tag) { return {std::nullopt, tag, std::nullopt, std::nullopt}; }
  static Command attach(PciDeviceSelector s, std::optional<std::string> vm = std::nullopt) { return PciAttach{std::move(s), std::move(vm)}; }
  static Command detach(PciDeviceSelector s) { return PciDetach{std::move(s)}; }

  test::FakeVfioKernel kernel{fs::path(tb.sys_dir()).parent_path(), {"iwlwifi", "xhci_hcd", "snd_hda_intel", "i915"}};
};

TEST_F(PciFlows, AttachByAddressBindsToVfioHotPlugsAndAnnounces) {
  start();
  EXPECT_EQ(request(attach(at(kWifi))), std::nullopt);
  EXPECT_TRUE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(kernel.driver(kWifi), "vfio-pci");
  EXPECT_EQ(in_vm(kWifi), "vm1");
  EXPECT_EQ(count<PciAttached>(kWifi), 1);
  EXPECT_EQ(listed(std::nullopt, "net"), std::vector<std::string>{"0000:00:14.3@vm1"});
  EXPECT_EQ(state()["pci_host_drivers"], json::parse(R"({"0000:00:14.3": "iwlwifi"})"));  // remembered, for a restart
  EXPECT_EQ(request(attach(at(kWifi))), std::nullopt);  // again: already there, nothing more happens
  EXPECT_EQ(count<PciAttached>(kWifi), 1);
}

TEST_F(PciFlows, DetachGivesTheDeviceBackAndKeepsItOnTheHost) {
  start();
  ASSERT_EQ(request(attach(at(kWifi))), std::nullopt);
  EXPECT_EQ(request(detach(at(kWifi))), std::nullopt);
  EXPECT_FALSE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(count<PciDetached>(kWifi), 1);
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "iwlwifi"; }));
  EXPECT_EQ(kernel.override_of(kWifi), "");
  EXPECT_EQ(state()["disconnected_devices"], json::array({"pci-0000:00:14.3"}));  // the reference's form
  EXPECT_FALSE(state().contains("pci_host_drivers"));
  EXPECT_EQ(listed(true), std::vector<std::string>{"0000:00:14.3@-"});
  EXPECT_EQ(listed(false, "net"), std::vector<std::string>{});
  // Not attached: the reference's error, and nothing changes.
  auto before = state();
  EXPECT_EQ(request(detach(at(kWifi))), "Device 0000:00:14.3 8086:A0F0 (None None) is not attached to any VM");
  EXPECT_EQ(state(), before);
}

TEST_F(PciFlows, TheKillSwitchRoundTripsByTag) {
  start(true);  // -a: the network card goes to vm1 at start
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kWifi) == "vm1"; }));
  EXPECT_EQ(request(detach(tagged("net"))), std::nullopt);  // block
  EXPECT_EQ(listed(false, "net"), std::vector<std::string>{});  // `pci list --tag net --connected`: blocked
  EXPECT_EQ(listed(true, "net"), std::vector<std::string>{"0000:00:14.3@-"});
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "iwlwifi"; }));
  EXPECT_EQ(request(attach(tagged("net"))), std::nullopt);  // unblock
  EXPECT_EQ(listed(false, "net"), std::vector<std::string>{"0000:00:14.3@vm1"});
  EXPECT_TRUE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(state()["disconnected_devices"], json::array());
}

TEST_F(PciFlows, RequestsFailWithTheReferencesTexts) {
  start();
  EXPECT_EQ(request(attach(at("0000:09:00.0"))), "PCI device 0000:09:00.0 not found in the system");
  EXPECT_EQ(request(attach({std::nullopt, std::nullopt, "10de", "2204"})), "PCI device 10de:2204 not found in the system");
  EXPECT_EQ(request(attach(at(kWifi), "vm2")), "Selected VM vm2 but target VM is set to vm1");
  EXPECT_EQ(request(attach(at("0000:00:02.0"))),
            "No VM found for 0000:00:02.0 8086:9A49 (Intel Corporation TigerLake-LP GT2 [Iris Xe Graphics])");
  vm("vm2").go_down();
  EXPECT_EQ(request(attach(at(kAudio))), "VM vm2 is not running");
  EXPECT_EQ(kernel.driver(kAudio), "snd_hda_intel");  // nothing was unbound for it
  EXPECT_EQ(request(attach({std::nullopt, std::nullopt, "0x8086", "a0f0"})), std::nullopt);  // by ids, as the reference reads them
  EXPECT_EQ(in_vm(kWifi), "vm1");
}

TEST_F(PciFlows, QemusRefusalLeavesTheDeviceWithItsHostDriver) {
  start();
  vm("vm1").fail_next_attach("vfio 0000:00:14.3: failed to setup container for group 6: Failed to set iommu for container: Operation not permitted");
  EXPECT_EQ(request(attach(at(kWifi))),
            "vfio 0000:00:14.3: failed to setup container for group 6: Failed to set iommu for container: Operation not permitted");
  EXPECT_EQ(in_vm(kWifi), std::nullopt);
  EXPECT_EQ(listed(std::nullopt, "net"), std::vector<std::string>{"0000:00:14.3@-"});
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "iwlwifi"; }));
  EXPECT_EQ(kernel.override_of(kWifi), "");
  EXPECT_FALSE(state().contains("pci_host_drivers"));
}

TEST_F(PciFlows, IommuAddAllTakesTheGroupAlongAndBackAgain) {
  start();
  EXPECT_EQ(request(attach(at(kXhci))), std::nullopt);
  EXPECT_TRUE(vm("vm2").holds_pci(kXhci));
  EXPECT_TRUE(vm("vm2").holds_pci(kSmbus));
  EXPECT_EQ(count<PciAttached>(kSmbus), 1);
  EXPECT_EQ(listed(std::nullopt, "usbctl"), (std::vector<std::string>{"0000:00:14.0@vm2", "0000:00:14.2@vm2+member"}));
  EXPECT_EQ(request(detach(at(kXhci))), std::nullopt);
  EXPECT_TRUE(vm("vm2").held_pci().empty());
  EXPECT_EQ(count<PciDetached>(kSmbus), 1);
  // kSmbus had no driver: the kernel may pick one, or none (the fake: none).
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kXhci) == "xhci_hcd" && kernel.driver(kSmbus).empty(); }));
  EXPECT_EQ(kernel.override_of(kSmbus), "");
}

TEST_F(PciFlows, SkipIfSharedNeitherListsNorAttaches) {
  write_config(json::parse(R"({"pciPassthrough": [
    {"targetVm": "vm2", "tag": "usbctl", "pciIommuSkipIfShared": true, "allow": [{"address": "0000:00:14.0"}]},
    {"targetVm": "vm1", "tag": "net", "pciIommuSkipIfShared": true, "allow": [{"address": "0000:00:14.3"}]}]})"));
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kWifi) == "vm1"; }));  // alone in its group: attached
  EXPECT_EQ(listed(std::nullopt), std::vector<std::string>{"0000:00:14.3@vm1"});
  EXPECT_EQ(request(attach(at(kXhci))),
            "PCI device 0000:00:14.0 shares its IOMMU group and its rule (pciIommuSkipIfShared) keeps it on the host");
  EXPECT_EQ(kernel.driver(kXhci), "xhci_hcd");
}

TEST_F(PciFlows, ADetachDuringAnAttachWins) {
  start();
  vm("vm1").hold_attaches();
  std::optional<CommandResult> attaching;
  request(attach(at(kWifi)), attaching);
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").attaches_started() == 1; }));
  std::optional<CommandResult> detaching;
  request(detach(at(kWifi)), detaching);  // the kill switch, while the card is on its way
  ASSERT_TRUE(run_until(io(), [&] { return daemon->manager().pci_placements().is_disconnected(kWifi); }));
  EXPECT_FALSE(detaching.has_value());  // it waits for the group's operation in flight
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return attaching.has_value() && detaching.has_value(); }));
  EXPECT_EQ(detaching->error, std::nullopt);
  EXPECT_EQ(attaching->error, "PCI device 0000:00:14.3 was detached or moved during the attach");
  EXPECT_FALSE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(in_vm(kWifi), std::nullopt);
  EXPECT_EQ(count<PciAttached>(kWifi), 0);
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "iwlwifi"; }));
  EXPECT_EQ(listed(false, "net"), std::vector<std::string>{});
}

// Block then unblock at once (the kill switch toggled twice): the attach waits for the detach of
// the same IOMMU group and the card ends in its VM, bound to vfio-pci, not lost on the host.
TEST_F(PciFlows, AnAttachRightAfterADetachEndsAttached) {
  start();
  ASSERT_EQ(request(attach(at(kWifi))), std::nullopt);
  vm("vm1").hold_detaches();  // the guest takes its time to let the card go
  std::optional<CommandResult> blocked, unblocked;
  request(detach(tagged("net")), blocked);
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").pci_detaches_started() == 1; }));
  request(attach(tagged("net")), unblocked);
  EXPECT_FALSE(run_until(io(), [&] { return unblocked.has_value(); }, std::chrono::milliseconds(200)));  // it waits its turn
  vm("vm1").release();
  ASSERT_TRUE(run_until(io(), [&] { return blocked.has_value() && unblocked.has_value(); }));
  EXPECT_EQ(blocked->error, std::nullopt);
  EXPECT_EQ(unblocked->error, std::nullopt);
  EXPECT_EQ(in_vm(kWifi), "vm1");
  EXPECT_TRUE(vm("vm1").holds_pci(kWifi));
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "vfio-pci"; }));
  EXPECT_EQ(listed(false, "net"), std::vector<std::string>{"0000:00:14.3@vm1"});
}

// A member of a pciIommuAddAll group has no rule of its own: after a daemon restart it is adopted
// with the device whose rule takes it along, not removed from the VM.
TEST_F(PciFlows, AGroupMemberIsAdoptedAfterADaemonRestart) {
  already_held["vm2"] = {{"vhp-pci-0000-00-14.0", kXhci}, {"vhp-pci-0000-00-14.2", kSmbus}};
  start();
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kXhci) == "vm2" && in_vm(kSmbus) == "vm2"; }));
  EXPECT_TRUE(vm("vm2").holds_pci(kSmbus));
}

// When QEMU's refusal leaves it unclear whether the VM still has the device open, the group stays
// on vfio-pci: unbinding a device QEMU holds would block in the kernel until the guest lets go.
TEST_F(PciFlows, NoGiveBackWhileTheVmMayHoldTheDevice) {
  already_held["vm1"] = {{"pci-0000-00-14.3", kWifi}};  // the reference's attachment, left from before
  bool listed_once = false;
  on_vm_made = [&](test::FakeVm& vm) {
    if (vm.name() == "vm1" && !std::exchange(listed_once, true)) vm.fail_next_list("VM vm1 did not answer qom-list");
  };
  start();  // vm1's list fails as it comes up: nothing adopted, the card unknown to us
  ASSERT_TRUE(run_until(io(), [&] { return vm("vm1").pci_lists() == 1; }));
  vm("vm1").fail_next_attach("Duplicate device ID 'x'");
  EXPECT_EQ(request(attach(at(kWifi))), "Duplicate device ID 'x'");
  EXPECT_EQ(kernel.driver(kWifi), "vfio-pci");
}

TEST_F(PciFlows, AVmRestartGetsItsDevicesBackAndLosesWhatTheUserDetached) {
  std::ofstream(dir / "state.json") << R"({"selected_vms": {}, "disconnected_devices": ["pci-0000:00:1f.3"]})";
  already_held["vm2"] = {{"vhp-pci-0000-00-1f.3", kAudio}};  // left in vm2 from before (the reference's detach_disconnected_pci)
  start(true);
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kWifi) == "vm1" && !vm("vm2").holds_pci(kAudio); }));
  EXPECT_EQ(in_vm(kAudio), std::nullopt);
  vm("vm1").go_down();
  EXPECT_EQ(in_vm(kWifi), std::nullopt);
  EXPECT_EQ(count<PciDetached>(kWifi), 1);
  EXPECT_EQ(kernel.driver(kWifi), "vfio-pci");  // meanwhile it stays ready for the VM's return
  vm("vm1").come_up();
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kWifi) == "vm1"; }));
  EXPECT_TRUE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(count<PciAttached>(kWifi), 2);
}

TEST_F(PciFlows, TheHostDriverIsKnownAcrossADaemonRestart) {
  start();
  ASSERT_EQ(request(attach(at(kWifi))), std::nullopt);
  daemon.reset();  // stopped with the card in vm1; the new daemon finds it there
  already_held["vm1"] = {{"vhp-pci-0000-00-14.3", kWifi}};
  seen.clear();
  start();
  ASSERT_TRUE(run_until(io(), [&] { return in_vm(kWifi) == "vm1"; }));  // adopted, not attached again
  EXPECT_EQ(vm("vm1").attaches_started(), 0);
  EXPECT_EQ(request(detach(at(kWifi))), std::nullopt);
  ASSERT_TRUE(run_until(io(), [&] { return kernel.driver(kWifi) == "iwlwifi"; }));
}

TEST_F(PciFlows, HotPlugAttachesByRuleAndRemovalDetaches) {
  start();
  auto path = tb.add_pci({.address = "0000:05:00.0", .vendor = "8086", .device = "51c8", .class_code = 0x040300,
                          .driver = "snd_hda_intel", .iommu_group = 20});
  ASSERT_TRUE(run_until(io(), [&] { return in_vm("0000:05:00.0") == "vm2"; }));
  EXPECT_EQ(kernel.driver("0000:05:00.0"), "vfio-pci");
  EXPECT_EQ(count<PciConnected>("0000:05:00.0"), 1);
  tb.unplug(path);
  ASSERT_TRUE(run_until(io(), [&] { return count<PciDisconnected>("0000:05:00.0") == 1; }));
  EXPECT_EQ(in_vm("0000:05:00.0"), std::nullopt);
  EXPECT_EQ(count<PciDetached>("0000:05:00.0"), 1);
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm2").holds_pci("0000:05:00.0"); }));
}

TEST_F(PciFlows, AReloadTakesOutWhatTheRulesNoLongerAllow) {
  start();
  ASSERT_EQ(request(attach(at(kWifi))), std::nullopt);
  write_config(json::parse(R"({"pciPassthrough": []})"));
  daemon->reload();
  ASSERT_TRUE(run_until(io(), [&] { return !vm("vm1").holds_pci(kWifi) && kernel.driver(kWifi) == "iwlwifi"; }));
  EXPECT_EQ(in_vm(kWifi), std::nullopt);
}

TEST_F(PciFlows, RestoreHostDriverOffLeavesItOnVfio) {
  write_config(json::parse(R"({"pciPassthrough": [
    {"targetVm": "vm1", "tag": "net", "restoreHostDriver": false, "allow": [{"address": "0000:00:14.3"}]}]})"));
  start();
  ASSERT_EQ(request(attach(at(kWifi))), std::nullopt);
  ASSERT_EQ(request(detach(at(kWifi))), std::nullopt);
  EXPECT_FALSE(vm("vm1").holds_pci(kWifi));
  EXPECT_EQ(kernel.driver(kWifi), "vfio-pci");
}

}  // namespace
}  // namespace vhp::pci_passthrough_test
