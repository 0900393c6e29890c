// Plug → attach latency through the real daemon and two real QEMU VMs (TCG) on a umockdev host:
// from the udev "add" event to QEMU's device_add being sent (the daemon's debug log), and to the
// usb_attached event reaching an API client. Keys go to vm1 by rule, sticks to vm2 by saved choice, in turn;
// every plug is a distinct device, none is unplugged (QEMU's xHCI has room for about 39). Then
// usb_attach/usb_detach round trips, and the cost of borrowing a QMP monitor on its own.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "log_time.h"
#include "percentile.h"
#include "api/client.h"
#include "support/coroutine.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "vmm/qmp_connection.h"

namespace {

using vhp::bench::log_time_us;
using vhp::bench::percentile;

using namespace vhp;
using json = nlohmann::json;
using clock_type = std::chrono::system_clock;  // compared with the daemon's log timestamps

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::disable_automatic_uevents();  // one "add" per plug, sent when sysfs is complete: the clock starts there
  constexpr int kRounds = 40;
  test::TempDir dir;
  test::Testbed tb;
  auto host = test::add_realistic_host(tb);
  test::Qemu vm1(dir.path(), "vm1"), vm2(dir.path(), "vm2");
  vm1.start();
  vm2.start();
  std::string socket = dir / "api.sock";
  json config = json::parse(R"({"usbPassthrough": [
      {"targetVm": "vm1", "allow": [{"interfaceClass": 3}]},
      {"allowedVms": ["vm1", "vm2"], "allow": [{"interfaceClass": 8}]}]})");
  config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}},
                   {{"name", "vm2"}, {"type", "qemu"}, {"socket", vm2.socket()}}};
  config["general"] = {{"statePath", dir / "state"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  // The stick's saved choice: vm2.
  std::ofstream(dir / "state") << R"({"selected_vms": {"usb-0781:5581:BENCH": "vm2"}, "disconnected_devices": []})";

  test::Child daemon({VHOTPLUGD_BINARY, "-d", "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  test::eventually([&] { return test::unix_socket_accepts(socket); });
  ClientOptions options;
  options.transport = "unix", options.path = socket, options.timeout_ms = 10000;
  ApiClient events(options);
  events.request({{"action", "enable_notifications"}});

  std::vector<double> to_event, to_device_add;
  for (int round = 0; round < kRounds; ++round) {
    bool key = round % 2 == 0;  // vm1 and vm2 in turn
    int devnum = 20 + round;
    std::string path;
    if (key) {
      auto spec = test::security_key_spec(host.root_hub);
      spec.name = "1-" + std::to_string(60 + round), spec.devnum = devnum, spec.serial = "KEY" + std::to_string(round), spec.dev_node = true;
      path = tb.add_usb(spec);
    } else {
      path = tb.add_usb({.parent = host.root_hub, .name = "1-" + std::to_string(100 + round), .busnum = 1, .devnum = devnum, .vid = "0781", .pid = "5581",
                         .serial = "BENCH", .interfaces = {{8, 6, 0x50, "usb-storage"}}, .dev_node = true});
    }
    auto start = clock_type::now();
    tb.uevent(path, "add");
    while (true) {  // usb_connected, then usb_attached
      auto e = json::parse(events.read_line());
      if (e["event"] == "usb_attached") break;
    }
    to_event.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
    auto start_us = std::chrono::duration<double, std::micro>(start.time_since_epoch()).count();
    std::string id = "vhp-usb-1-" + std::to_string(devnum);
    std::ifstream log(dir / "daemon.log");
    static const std::regex sent(R"(^\[([0-9-]+ [0-9:.]+)\].*qmp: -> device_add (\S+))");
    for (std::string line; std::getline(log, line);) {
      std::smatch m;
      if (std::regex_search(line, m, sent) && m[2] == id) {  // the first send; later ones are retries
        to_device_add.push_back(log_time_us(m[1]) - start_us);
        break;
      }
    }
  }
  std::printf("%d plugs of distinct devices, in turn to vm1 (by rule) and vm2 (by saved choice):\n", kRounds);
  std::printf("  uevent -> usb_attached event at the client: p50 %6.0f us  p99 %6.0f us\n", percentile(to_event, 0.5),
              percentile(to_event, 0.99));
  if (!to_device_add.empty())
    std::printf("  uevent -> device_add sent to QEMU (debug log): p50 %6.0f us  p99 %6.0f us (%zu samples)\n",
                percentile(to_device_add, 0.5), percentile(to_device_add, 0.99), to_device_add.size());

  // A request's round trip, with the monitor borrowed for it: detach and attach again vm1's keys.
  ApiClient client(options);
  std::vector<double> attach_rt, detach_rt;
  for (int i = 0; i < 60; ++i) {
    char node[32];
    std::snprintf(node, sizeof node, "/dev/bus/usb/001/%03d", 20 + 2 * (i % (kRounds / 2)));  // the keys: even rounds
    auto t0 = clock_type::now();
    auto detached = client.request({{"action", "usb_detach"}, {"device_node", node}});
    auto t1 = clock_type::now();
    auto attached = client.request({{"action", "usb_attach"}, {"device_node", node}});
    auto t2 = clock_type::now();
    if (detached["result"] != "ok" || attached["result"] != "ok") {
      std::fprintf(stderr, "request failed: %s %s\n", detached.dump().c_str(), attached.dump().c_str());
      return 1;
    }
    detach_rt.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    attach_rt.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
  }
  std::printf("usb_detach then usb_attach of a vm1 key, 60 times each (request -> reply):\n");
  std::printf("  usb_attach: p50 %6.0f us  p99 %6.0f us\n", percentile(attach_rt, 0.5), percentile(attach_rt, 0.99));
  std::printf("  usb_detach: p50 %6.0f us  p99 %6.0f us\n", percentile(detach_rt, 0.5), percentile(detach_rt, 0.99));

  // What borrowing costs on its own: the daemon's QmpConnection opening vm1's monitor (connect,
  // greeting, qmp_capabilities) while the daemon is idle, then closing it.
  boost::asio::io_context io;
  std::vector<double> open_us;
  for (int i = 0; i < 200; ++i) {
    auto conn = std::make_shared<QmpConnection>(io.get_executor());
    auto t0 = std::chrono::steady_clock::now();
    test::complete(io, conn->open(vm1.socket(), std::chrono::seconds(2)));
    open_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    conn->close();
  }
  std::printf("borrowing the monitor (connect + greeting + qmp_capabilities), 200 times: p50 %6.0f us  p99 %6.0f us\n",
              percentile(open_us, 0.5), percentile(open_us, 0.99));

  daemon.stop(SIGTERM);
  vm1.kill();
  vm2.kill();
  return 0;
}
