// A guided run of vhotplugd on a simulated host (umockdev) with two real QEMU VMs (TCG), driven
// through vhotplugctl: plug, attach, choose a VM, list, detach, unplug; a PCI card bound to vfio-pci
// and offered to a VM (refused here, where there is no IOMMU) and given back to its host driver; a
// built-in keyboard (evdev) sent to its VM; the VMs' start-up arguments (vmm args); the status.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace {

using namespace vhp;
using json = nlohmann::json;

void say(const std::string& text) {
  std::cout << "\n\033[1m== " << text << "\033[0m" << std::endl;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
}

void ctl(const std::string& socket, std::vector<std::string> args) {
  std::vector<std::string> argv{VHOTPLUGCTL_BINARY, "-t", "unix", "-u", socket};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string shown = "$ vhotplugctl";
  for (const auto& a : args) shown += " " + a;
  std::cout << shown << std::endl;
  auto result = test::run_capture(argv);
  std::cout << result.out << (result.out.empty() || result.out.ends_with("\n") ? "" : "\n") << result.err << std::flush;
  if (result.exit_code != 0) std::cout << "(exit " << result.exit_code << ")" << std::endl;
}

std::string in_vm(test::Qemu& vm) {
  std::string s;
  for (const auto& id : vm.usb_ids()) s += (s.empty() ? "" : ", ") + id;
  return s.empty() ? "(none)" : s;
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::TempDir dir;
  test::Testbed tb;
  auto host = test::add_realistic_host(tb);
  // The kernel's side of vfio-pci binding, simulated (driver links, /dev/vfio/<group>).
  test::FakeVfioKernel kernel(std::filesystem::path(tb.sys_dir()).parent_path(), {"iwlwifi"});

  say("Two QEMU 7.2 VMs (q35, TCG, paused, with an xHCI controller)");
  test::Qemu vm1(dir.path(), "vm1"), vm2(dir.path(), "vm2");
  vm1.start();
  vm2.start();
  std::cout << "vm1 QMP " << vm1.socket() << "\nvm2 QMP " << vm2.socket() << std::endl;

  std::string socket = dir / "vhotplug.sock";
  json config = json::parse(R"({
    "usbPassthrough": [
      {"description": "Keys and keyboards go to vm1", "targetVm": "vm1", "allow": [{"interfaceClass": 3}]},
      {"description": "The user picks a VM for storage", "allowedVms": ["vm1", "vm2"], "allow": [{"interfaceClass": 8}]}],
    "pciPassthrough": [
      {"description": "The Wi-Fi card goes to vm2 - the kill switch's net tag", "targetVm": "vm2", "tag": "net",
       "allow": [{"address": "0000:00:14.3"}]}],
    "evdevPassthrough": [
      {"description": "The laptop's own keyboard goes to vm1", "targetVm": "vm1", "allow": [{"property": "ID_INPUT_KEYBOARD", "value": "1"}]}]})");
  config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}},
                   {{"name", "vm2"}, {"type", "qemu"}, {"socket", vm2.socket()}}};
  config["general"] = {{"statePath", dir / "vhotplug.state"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  say("The config");
  std::cout << config.dump(2) << std::endl;

  say("vhotplugd starts (its log: " + dir / "vhotplugd.log" + ")");
  test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "vhotplugd.log");
  if (!test::eventually([&] { return test::unix_socket_accepts(socket); })) {
    std::cerr << test::read_file(dir / "vhotplugd.log");
    return 1;
  }
  ctl(socket, {"usb", "list", "--short"});

  say("A client listens for events (vhotplugctl listen)");
  // As the reference CLI, it prints each event to stderr as "INFO {Python repr}".
  test::Child listen({VHOTPLUGCTL_BINARY, "-t", "unix", "-u", socket, "listen"}, "/dev/null", dir / "events.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto show_events = [&, shown = std::size_t{0}]() mutable {
    auto text = test::read_file(dir / "events.log");
    std::cout << text.substr(std::min(shown, text.size())) << std::flush;
    shown = text.size();
  };

  say("Plug a security key into the hub (1-2.2): its rule targets vm1");
  auto key = test::security_key_spec(host.hub);
  key.name = "1-2.2", key.devnum = 40, key.serial = "0001", key.dev_node = true;
  auto key_path = tb.plug(key);
  test::eventually([&] { return vm1.usb_ids().size() == 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();
  std::cout << "in vm1 (qom-list /machine/peripheral): " << in_vm(vm1) << std::endl;

  say("Plug a USB stick (1-9): its rule lets the user choose, so the daemon asks");
  tb.plug({.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = 50, .vid = "0781", .pid = "5581",
                           .manufacturer = "SanDisk", .product = "Ultra", .serial = "4C530001", .interfaces = {{8, 6, 0x50, "usb-storage"}},
                           .dev_node = true});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  show_events();

  say("The user picks vm2 (the choice is saved)");
  ctl(socket, {"usb", "attach", "--devnode", "/dev/bus/usb/001/050", "--vm", "vm2"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();
  std::cout << "in vm2: " << in_vm(vm2) << std::endl;
  ctl(socket, {"usb", "list", "--short"});
  ctl(socket, {"--json", "usb", "list"});

  say("Asking for a VM the rule does not allow");
  ctl(socket, {"usb", "attach", "--devnode", "/dev/bus/usb/001/040", "--vm", "vm2"});

  say("Detach the stick: it stays on the host until attached again (the kill switch relies on this)");
  ctl(socket, {"usb", "detach", "--devnode", "/dev/bus/usb/001/050"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();
  ctl(socket, {"usb", "list", "--disconnected", "--short"});
  std::cout << "state file:\n" << test::read_file(dir / "vhotplug.state");

  say("vm1's owner stops it through its own QMP socket while vhotplugd runs (Ghaf's VM stop: socat -t1)");
  auto replies = test::qmp_one_shot(vm1.socket(), "quit", std::chrono::milliseconds(1000));
  std::cout << "the owner's session (greeting, capabilities, quit), answered at once:\n";
  for (const auto& r : replies) std::cout << "  " << r.dump().substr(0, 100) << "\n";
  test::eventually([&] { return !vm1.running(); }, std::chrono::seconds(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();

  say("vm1 starts again on the same socket: its device comes back");
  vm1.start();
  test::eventually([&] { return vm1.usb_ids().size() == 1; }, std::chrono::seconds(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();
  std::cout << "in vm1: " << in_vm(vm1) << std::endl;

  say("Unplug the key: the VM side goes first, then the host side");
  tb.unplug(key_path);
  test::eventually([&] { return vm1.usb_ids().empty(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  show_events();
  std::cout << "in vm1: " << in_vm(vm1) << std::endl;

  say("The kill switch unblocks the Wi-Fi card: bound to vfio-pci, then offered to vm2's free pcie-root-port");
  std::cout << "host driver before: " << kernel.driver("0000:00:14.3") << std::endl;
  ctl(socket, {"pci", "attach", "--address", "0000:00:14.3"});
  std::cout << "(this machine has no IOMMU, so QEMU refuses the card with its own words: that is the answer)" << std::endl;
  test::eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; });
  std::cout << "host driver after: " << kernel.driver("0000:00:14.3") << " (given back)" << std::endl;
  ctl(socket, {"pci", "list", "--tag", "net", "--short"});
  ctl(socket, {"pci", "attach", "--address", "0000:00:14.3", "--vm", "vm1"});

  say("The laptop's built-in keyboard appears (an evdev device, not USB): its rule sends it to vm1");
  auto i8042 = tb.add_device("platform", "i8042", "", {}, {});
  test::add_input(tb, tb.add_device("serio", "serio0", i8042, {}, {}), 0, "AT Translated Set 2 keyboard",
                  {{"ID_INPUT_KEYBOARD", "1"}, {"ID_BUS", "i8042"}, {"ID_PATH_TAG", "platform-i8042-serio-0"}});
  test::eventually([&] { return test::read_file(dir / "vhotplugd.log").find("evdev AT Translated") != std::string::npos; });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::cout << "(a simulated node is not an evdev device QEMU can open: its refusal, from the daemon's log)" << std::endl;
  for (std::istringstream log(test::read_file(dir / "vhotplugd.log")); !log.eof();) {
    std::string line;
    std::getline(log, line);
    if (line.find("evdev ") != std::string::npos) std::cout << "  " << line << "\n";
  }

  say("vm1's start script asks for its start-up arguments (Ghaf's extraArgsScript: vhotplugcli vmm args)");
  ctl(socket, {"vmm", "args", "--vm", "vm1", "--qemu-bus-prefix", "pci_hotplug_", "--qemu-bus-start-index", "1"});
  ctl(socket, {"vmm", "args", "--vm", "vm2", "--qemu-bus-prefix", "pci_hotplug_", "--qemu-bus-start-index", "1"});
  std::cout << "host driver of the Wi-Fi card now: " << kernel.driver("0000:00:14.3") << " (QEMU opens it at start)" << std::endl;

  say("The operator asks how the daemon is doing (ours: vhotplugctl status)");
  ctl(socket, {"status"});

  say("Done: stopping the daemon");
  std::cout << "vhotplugd exited with " << daemon.stop(SIGTERM) << std::endl;
  listen.stop(SIGTERM);
  vm1.kill();
  vm2.kill();
  return 0;
}
