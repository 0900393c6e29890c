// Plug → attached on a crosvm VM next to a QEMU VM, through the real daemon on a umockdev host.
// QEMU is real (7.2, TCG, paused) and takes the device over QMP; crosvm is the command-line
// stand-in (tests/support/fake_crosvm.cpp) behind a real control socket, so its figure is the
// daemon's path plus the cost of spawning a `crosvm` process per command (two per attach: usb
// list, usb attach; one per detach), not crosvm's own work. Each round plugs a distinct device,
// waits for usb_attached, unplugs it and waits for usb_detached; keys go to the QEMU VM and sticks
// to the crosvm VM by rule, in turn.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "percentile.h"
#include "api/client.h"
#include "support/control_socket.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace {

using vhp::bench::percentile;

using namespace vhp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

double since_us(clock_type::time_point start) { return std::chrono::duration<double, std::micro>(clock_type::now() - start).count(); }

// Reads events until `name` for a device arrives.
void await_event(ApiClient& events, const std::string& name) {
  while (json::parse(events.read_line()).value("event", "") != name) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::disable_automatic_uevents();  // one "add" per plug, sent when sysfs is complete: the clock starts there
  constexpr int kRounds = 60;
  test::TempDir dir;
  test::Testbed tb;
  auto host = test::add_realistic_host(tb);
  test::Qemu qemu(dir.path(), "qemu-vm");
  qemu.start();
  std::string crosvm_socket = dir / "crosvm-vm.sock";
  test::ControlSocket crosvm_vm(crosvm_socket);
  std::ofstream(crosvm_socket + ".fake-crosvm") << R"({"ports": 16})";
  std::string socket = dir / "api.sock";
  json config = json::parse(R"({"usbPassthrough": [
      {"targetVm": "qemu-vm", "allow": [{"interfaceClass": 3}]},
      {"targetVm": "crosvm-vm", "allow": [{"interfaceClass": 8}]}]})");
  config["vms"] = {{{"name", "qemu-vm"}, {"type", "qemu"}, {"socket", qemu.socket()}},
                   {{"name", "crosvm-vm"}, {"type", "crosvm"}, {"socket", crosvm_socket}}};
  config["general"] = {{"statePath", dir / "state"}, {"crosvm", FAKE_CROSVM_BINARY},
                       {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();

  test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  test::eventually([&] { return test::unix_socket_accepts(socket); });
  test::eventually([&] { return test::read_file(dir / "daemon.log").find("vm crosvm-vm: devices reconciled") != std::string::npos; });
  ClientOptions options;
  options.transport = "unix", options.path = socket, options.timeout_ms = 20000;
  ApiClient events(options);
  events.request({{"action", "enable_notifications"}});

  std::map<std::string, std::vector<double>> attach, detach;
  try {
  for (int round = 0; round < kRounds; ++round) {
    bool key = round % 2 == 0;
    int devnum = 20 + round;
    std::string path;
    if (key) {
      auto spec = test::security_key_spec(host.root_hub);
      spec.name = "1-" + std::to_string(60 + round), spec.devnum = devnum, spec.serial = "KEY" + std::to_string(round), spec.dev_node = true;
      path = tb.add_usb(spec);
    } else {
      path = tb.add_usb({.parent = host.root_hub, .name = "1-" + std::to_string(60 + round), .busnum = 1, .devnum = devnum, .vid = "0781",
                         .pid = "5581", .serial = "S" + std::to_string(round), .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
    }
    std::string backend = key ? "qemu" : "crosvm";
    auto start = clock_type::now();
    tb.uevent(path, "add");
    await_event(events, "usb_attached");
    attach[backend].push_back(since_us(start));
    start = clock_type::now();
    tb.unplug(path);
    await_event(events, "usb_detached");
    detach[backend].push_back(since_us(start));
  }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n%s", e.what(), test::read_file(dir / "daemon.log").c_str());
    return 1;
  }
  std::printf("%d plugs of distinct devices, each unplugged again, in turn to a QEMU VM and a crosvm VM (by rule):\n", kRounds);
  for (const auto& backend : {"qemu", "crosvm"}) {
    std::printf("  %-6s uevent -> usb_attached at the client: p50 %7.0f us  p90 %7.0f us  max %7.0f us\n", backend,
                percentile(attach[backend], 0.5), percentile(attach[backend], 0.9), percentile(attach[backend], 1.0));
    std::printf("  %-6s unplug -> usb_detached at the client: p50 %7.0f us  p90 %7.0f us  max %7.0f us\n", backend,
                percentile(detach[backend], 0.5), percentile(detach[backend], 0.9), percentile(detach[backend], 1.0));
  }
  daemon.stop(SIGTERM);
  qemu.kill();
  return 0;
}
