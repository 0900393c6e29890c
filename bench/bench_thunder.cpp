// The Thunder facade against the real vhotplugd on a umockdev host with 64 USB devices:
// `device` and `devices` round trips over one WebSocket, and plug → announce latency.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "percentile.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/thunder_client.h"

namespace {

using vhp::bench::percentile;

using namespace vhp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

void report(const char* what, const std::vector<double>& us) {
  std::printf("  %-44s p50 %7.0f us  p99 %7.0f us  (%zu)\n", what, percentile(us, 0.5), percentile(us, 0.99), us.size());
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::disable_automatic_uevents();
  test::TempDir dir;
  test::Testbed tb;
  auto xhci = tb.add_pci({.address = "0000:00:14.0", .class_code = 0x0c0330});
  auto root = tb.add_usb({.parent = xhci, .name = "usb1", .busnum = 1, .devnum = 1, .cls = 9, .interfaces = {{9, 0, 0, "hub"}}});
  for (int n = 0; n < 63; ++n)
    tb.add_usb({.parent = root, .name = "1-" + std::to_string(n + 1), .busnum = 1, .devnum = n + 2, .vid = "0781", .pid = "5581",
                .manufacturer = "SanDisk", .product = "Ultra", .serial = std::to_string(n), .interfaces = {{8, 6, 0x50, "usb-storage"}}});
  int port = test::free_tcp_port();
  json config{{"general", {{"statePath", dir / "state"}, {"thunder", {{"port", port}}}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  test::eventually([&] {
    try {
      test::WsClient probe(port);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  });
  test::WsClient ws(port);
  std::vector<double> device, devices, announce;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = clock_type::now();
    ws.call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":"001/033"}})");
    device.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    t0 = clock_type::now();
    ws.call(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.1.devices"})");
    devices.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  ws.call(R"({"jsonrpc":"2.0","id":3,"method":"USBHub.1.register","params":{"event":"announce","id":"b"}})");
  for (int n = 0; n < 100; ++n) {
    auto path = tb.add_usb({.parent = root, .name = "1-" + std::to_string(100 + n), .busnum = 1, .devnum = 200 + n,
                            .vid = "1050", .pid = "0407", .serial = std::to_string(n), .interfaces = {{3, 1, 1, "usbhid"}}});
    auto t0 = clock_type::now();
    tb.uevent(path, "add");
    ws.read();
    announce.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  std::printf("Thunder USBHub over one WebSocket, 64 USB devices:\n");
  report("device round trip", device);
  report("devices round trip", devices);
  report("uevent -> announce notification", announce);
  daemon.stop(SIGTERM);
  return 0;
}
