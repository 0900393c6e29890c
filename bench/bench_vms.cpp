// Many VMs at once: the real vhotplugd with 20 real QEMU 7.2 VMs (q35, TCG, paused) on a umockdev
// host, a rule per VM sending it one key. First each VM gets its key alone, in turn; then all the
// keys are plugged at once (their `add` uevents back to back) and each VM's uevent → usb_attached
// is timed. Per-VM latency independent of the others is issue 17's bar: the VMs' monitors are
// borrowed in parallel, one operation queue each.
//   ./build/bench/bench_vms [--vms 20] [--rounds 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "event_stream.h"
#include "bench_facts.h"
#include "percentile.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"
#include "support/testbed.h"

namespace {

using namespace vhp;
using bench::clock_type;
using bench::percentile;
using bench::node_of;
using bench::option;

double ms_between(clock_type::time_point t0, clock_type::time_point t1) { return std::chrono::duration<double, std::milli>(t1 - t0).count(); }

std::string product_id(int vm) {
  char pid[16];
  std::snprintf(pid, sizeof pid, "%04x", 0x500 + vm);
  return pid;
}

// A new bus address at each plug, 40 to 127 in turn, as a real bus gives (and bench_table does).
int next_address() {
  static int plugs = 0;
  return 40 + plugs++ % 88;
}

// VM k's key: its own product id (its rule) and port (after the host's 2-7), and `devnum`.
test::UsbSpec key_for(const std::string& root, int vm, int devnum) {
  auto spec = test::security_key_spec(root);
  spec.name = "1-" + std::to_string(vm + 8), spec.devnum = devnum, spec.pid = product_id(vm), spec.serial = "K" + std::to_string(vm);
  spec.dev_node = true;
  return spec;
}

void print(const char* what, std::vector<double> v) {
  std::printf("%-46s min %6.1f ms  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (%zu)\n", what,
              v.empty() ? 0.0 : *std::ranges::min_element(v), percentile(v, 0.5), percentile(v, 0.99),
              v.empty() ? 0.0 : *std::ranges::max_element(v), v.size());
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::disable_automatic_uevents();  // one "add" per plug, sent once sysfs is complete: the clock starts there
  int vms = option(argc, argv, "--vms", 20, 1, 60);
  int rounds = option(argc, argv, "--rounds", 5, 1, 100);

  test::Testbed tb;
  auto root = test::add_realistic_host(tb).root_hub;  // QEMU's libusb wants a whole host, root hub included
  test::TempDir dir;
  std::vector<std::unique_ptr<test::Qemu>> qemus;
  nlohmann::json config = {{"vms", nlohmann::json::array()}, {"usbPassthrough", nlohmann::json::array()}};
  for (int k = 0; k < vms; ++k) {
    auto name = "vm" + std::to_string(k + 1);
    qemus.push_back(std::make_unique<test::Qemu>(dir.path(), name));
    qemus.back()->start();
    config["vms"].push_back({{"name", name}, {"type", "qemu"}, {"socket", qemus.back()->socket()}});
    config["usbPassthrough"].push_back({{"targetVm", name}, {"allow", {{{"vendorId", "1050"}, {"productId", product_id(k)}}}}});
  }
  auto socket = dir / "api.sock";
  config["general"] = {{"statePath", dir / "state"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  test::Child daemon({VHOTPLUGD_BINARY, "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  if (!test::eventually([&] { return test::unix_socket_accepts(socket); })) {
    std::fprintf(stderr, "the daemon did not start; see %s\n", (dir / "daemon.log").c_str());
    return 1;
  }
  bench::EventStream events(socket);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // every VM probed and found up

  auto unplug_all = [&](const std::vector<std::string>& paths, const std::set<std::string>& nodes) {
    for (const auto& p : paths) tb.unplug(p);
    events.collect("usb_disconnected", nodes, std::chrono::seconds(30));
    for (auto& q : qemus)  // each detach done before the next plug
      test::eventually([&] { return q->usb_ids().empty(); }, std::chrono::seconds(30));
  };

  std::vector<double> alone, together, per_vm_p50;
  std::vector<std::vector<double>> by_vm(static_cast<std::size_t>(vms));
  long missing = 0;
  for (int r = 0; r < rounds; ++r)
    for (int k = 0; k < vms; ++k) {  // one VM's key at a time
      int devnum = next_address();
      auto path = tb.add_usb(key_for(root, k, devnum));
      auto sent = clock_type::now();
      tb.uevent(path, "add");
      auto got = events.collect("usb_attached", {node_of(1, devnum)}, std::chrono::seconds(10));
      if (!got.empty()) alone.push_back(ms_between(sent, got.begin()->second));
      else ++missing;
      unplug_all({path}, {node_of(1, devnum)});
    }
  for (int r = 0; r < rounds; ++r) {  // every VM's key at once
    std::vector<std::string> paths;
    std::vector<int> devnums;
    std::set<std::string> nodes;
    for (int k = 0; k < vms; ++k) {
      devnums.push_back(next_address());
      paths.push_back(tb.add_usb(key_for(root, k, devnums.back())));
      nodes.insert(node_of(1, devnums.back()));
    }
    std::vector<clock_type::time_point> sent;
    for (const auto& p : paths) sent.push_back(clock_type::now()), tb.uevent(p, "add");
    auto got = events.collect("usb_attached", nodes, std::chrono::seconds(60));
    missing += vms - static_cast<long>(got.size());
    for (int k = 0; k < vms; ++k)
      if (auto it = got.find(node_of(1, devnums[static_cast<std::size_t>(k)])); it != got.end()) {
        double ms = ms_between(sent[static_cast<std::size_t>(k)], it->second);
        together.push_back(ms);
        by_vm[static_cast<std::size_t>(k)].push_back(ms);
      }
    unplug_all(paths, nodes);
  }
  for (auto& v : by_vm)
    if (!v.empty()) per_vm_p50.push_back(percentile(v, 0.5));
  std::printf("%d VMs, %d rounds\n", vms, rounds);
  print("one VM's key alone: uevent → usb_attached", alone);
  print("all VMs' keys at once: uevent → usb_attached", together);
  std::printf("all at once, each VM's own p50: from %.1f ms to %.1f ms; %ld attaches missing\n",
              per_vm_p50.empty() ? 0.0 : *std::ranges::min_element(per_vm_p50),
              per_vm_p50.empty() ? 0.0 : *std::ranges::max_element(per_vm_p50), missing);
  return missing == 0 ? 0 : 2;
}
