// `usb_list` over the Unix socket against the real vhotplugd with 64 USB devices: round-trip
// p50/p99 and requests/s with 1 and 64 concurrent clients, and the daemon's idle RSS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "percentile.h"
#include "api/client.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/testbed.h"

namespace {

using vhp::bench::percentile;

using clock_type = std::chrono::steady_clock;

void add_64_devices(vhp::test::Testbed& tb) {
  auto xhci = tb.add_pci({.address = "0000:00:14.0", .class_code = 0x0c0330});
  auto root = tb.add_usb({.parent = xhci, .name = "usb1", .busnum = 1, .devnum = 1, .cls = 9,
                          .interfaces = {{9, 0, 0, "hub"}}});
  for (int n = 0; n < 64; ++n)
    tb.add_usb({.parent = root, .name = "1-" + std::to_string(n / 7 + 1) + "." + std::to_string(n % 7 + 1),
                .busnum = 1, .devnum = n + 2, .vid = "0781", .pid = "5581", .manufacturer = "SanDisk",
                .product = "Ultra", .serial = std::to_string(1000 + n), .interfaces = {{8, 6, 0x50, "usb-storage"}}});
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

void run(const vhp::ClientOptions& options, int clients, int requests_each) {
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
        if (line.size() < 1000) std::abort();  // 64 devices, not an error
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  std::vector<double> all;
  for (auto& l : per_client) all.insert(all.end(), l.begin(), l.end());
  std::printf("usb_list, 64 devices, %2d client(s): %6zu requests  p50 %7.0f us  p99 %7.0f us  %8.0f requests/s\n",
              clients, all.size(), percentile(all, 0.50), percentile(all, 0.99), static_cast<double>(all.size()) / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  vhp::test::enter_mock_environment(argc, argv);
  vhp::test::Testbed tb;
  add_64_devices(tb);
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
  std::printf("vhotplugd idle RSS with 64 USB devices: %ld KiB\n", rss_kib(daemon.pid()));
  run(options, 1, 5000);
  run(options, 64, 200);
  std::printf("vhotplugd RSS after the runs: %ld KiB\n", rss_kib(daemon.pid()));
  return 0;
}
