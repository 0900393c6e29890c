// `usb_list` over the Unix socket against the real vhotplugd with N USB storage devices (64, or
// `--devices N`): round-trip p50/p99 and requests/s with 1 and 64 concurrent clients, and the
// daemon's idle RSS.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_facts.h"
#include "percentile.h"
#include "api/client.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/testbed.h"

namespace {

using vhp::bench::percentile;
using vhp::bench::rss_kib;

using clock_type = std::chrono::steady_clock;

// Up to 100 sticks on each root hub (a bus has 127 addresses), one xHCI controller per bus.
void add_devices(vhp::test::Testbed& tb, int count) {
  for (int bus = 1; (bus - 1) * 100 < count; ++bus) {
    char address[32];
    std::snprintf(address, sizeof address, "0000:%02x:00.0", bus);
    auto xhci = tb.add_pci({.address = address, .class_code = 0x0c0330});
    auto b = std::to_string(bus);
    auto root = tb.add_usb({.parent = xhci, .name = "usb" + b, .busnum = bus, .devnum = 1, .cls = 9, .interfaces = {{9, 0, 0, "hub"}}});
    for (int n = 0; n < 100 && (bus - 1) * 100 + n < count; ++n)
      tb.add_usb({.parent = root, .name = b + "-" + std::to_string(n / 7 + 1) + "." + std::to_string(n % 7 + 1),
                  .busnum = bus, .devnum = n + 2, .vid = "0781", .pid = "5581", .manufacturer = "SanDisk",
                  .product = "Ultra", .serial = std::to_string(1000 * bus + n), .interfaces = {{8, 6, 0x50, "usb-storage"}}});
  }
}

void run(const vhp::ClientOptions& options, int devices, int clients, int requests_each) {
  std::vector<std::vector<double>> per_client(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  auto start = clock_type::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      vhp::ApiClient client(options);
      auto& lat = per_client[static_cast<size_t>(c)];
      for (int i = 0; i < requests_each; ++i) {
        auto t0 = clock_type::now();
        client.send_raw("{\"action\":\"usb_list\"}\n");
        auto line = client.read_line();
        lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        if (line.size() < 200u * static_cast<size_t>(devices)) std::abort();  // every device, not an error
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  std::vector<double> all;
  for (auto& l : per_client) all.insert(all.end(), l.begin(), l.end());
  std::printf("usb_list, %d devices, %2d client(s): %6zu requests  p50 %7.0f us  p99 %7.0f us  %8.0f requests/s\n",
              devices, clients, all.size(), percentile(all, 0.50), percentile(all, 0.99), static_cast<double>(all.size()) / seconds);
}

// Each client lists `per_second` times a second for `seconds`, starting at spread-out moments: the
// latency a client sees when many are connected but not all asking at the same instant.
void run_paced(const vhp::ClientOptions& options, int devices, int clients, int per_second, int seconds) {
  std::vector<std::vector<double>> per_client(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  auto start = clock_type::now() + std::chrono::milliseconds(100);
  auto period = std::chrono::microseconds(1'000'000 / per_second);
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      vhp::ApiClient client(options);
      auto& lat = per_client[static_cast<size_t>(c)];
      auto next = start + period * c / clients;
      for (int i = 0; i < per_second * seconds; ++i, next += period) {
        std::this_thread::sleep_until(next);
        auto t0 = clock_type::now();
        client.send_raw("{\"action\":\"usb_list\"}\n");
        auto line = client.read_line();
        lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        if (line.size() < 200u * static_cast<size_t>(devices)) std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : per_client) all.insert(all.end(), l.begin(), l.end());
  std::printf("usb_list, %d devices, %2d clients each %d/s: %6zu requests  p50 %7.0f us  p99 %7.0f us\n", devices, clients,
              per_second, all.size(), percentile(all, 0.50), percentile(all, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  vhp::test::enter_mock_environment(argc, argv);
  int devices = 64;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--devices") devices = std::clamp(std::atoi(argv[i + 1]), 1, 1200);
  vhp::test::Testbed tb;
  add_devices(tb, devices);
  vhp::test::TempDir dir;
  auto socket = dir / "api.sock";
  auto config = nlohmann::json::parse(R"({"vms": [{"name": "vm1", "type": "qemu", "socket": "/tmp/vm1.sock"}],
      "usbPassthrough": [{"targetVm": "vm1", "allow": [{"interfaceClass": 8}]}]})");
  config["general"] = {{"api", {{"transports", {"unix"}}, {"unixSocket", socket}, {"maxClients", 128}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  vhp::test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  vhp::ClientOptions options;
  options.transport = "unix", options.path = socket;
  vhp::test::eventually([&] {
    try {
      vhp::ApiClient probe(options);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::printf("vhotplugd idle RSS with %d USB devices: %ld KiB\n", devices, rss_kib(daemon.pid()));
  run(options, devices, 1, 5000);
  run(options, devices, 64, 200);
  run_paced(options, devices, 64, 10, 10);
  std::printf("vhotplugd RSS after the runs: %ld KiB\n", rss_kib(daemon.pid()));
  return 0;
}
