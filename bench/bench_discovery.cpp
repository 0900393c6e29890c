// Device discovery figures on a umockdev host: start-up scan of 500 USB devices, one device's read,
// and the latency from a udev "add" event to the device being in the registry.
#include <algorithm>
#include <chrono>
#include <memory>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include "percentile.h"
#include "device/udev_ptr.h"
#include "device/udev_reader.h"
#include "device/udev_watcher.h"
#include "support/event_loop.h"
#include "support/mock_environment.h"
#include "support/testbed.h"

namespace {

using vhp::bench::percentile;

using namespace vhp;

// 500 USB devices: a root hub and 499 sticks behind it.
std::string add_500_devices(test::Testbed& tb) {
  auto xhci = tb.add_pci({.address = "0000:00:14.0", .class_code = 0x0c0330});
  auto root = tb.add_usb({.parent = xhci, .name = "usb1", .busnum = 1, .devnum = 1, .cls = 9,
                          .interfaces = {{9, 0, 0, "hub"}}});
  for (int n = 0; n < 499; ++n)
    tb.add_usb({.parent = root, .name = "1-" + std::to_string(n / 7 + 1) + "." + std::to_string(n % 7 + 1),
                .busnum = 1, .devnum = n + 2, .vid = "0781", .pid = "5581", .serial = std::to_string(n),
                .interfaces = {{8, 6, 0x50, "usb-storage"}}});
  return root;
}

void BM_StartupScan500(benchmark::State& state) {
  test::Testbed tb;
  add_500_devices(tb);
  for (auto _ : state) {
    boost::asio::io_context io;
    DeviceRegistry registry;
    UdevWatcher watcher(io, registry);
    watcher.start();
    if (registry.usb_devices().size() != 500) state.SkipWithError("scan incomplete");
  }
  state.counters["devices"] = 500;
}
BENCHMARK(BM_StartupScan500)->Unit(benchmark::kMillisecond);

// One USB device as the scan makes and reads each: a fresh libudev device each time (libudev caches
// what it read), and with `read`, read_usb_device of it; without, the libudev device alone.
void BM_UsbDeviceFromSysfs(benchmark::State& state, bool read) {
  test::Testbed tb;
  auto path = add_500_devices(tb) + "/1-1.1";
  UdevPtr udev(udev_new());
  for (auto _ : state) {
    UdevDevicePtr dev(udev_device_new_from_syspath(udev.get(), path.c_str()));
    if (read) benchmark::DoNotOptimize(read_usb_device(dev.get()));
    benchmark::DoNotOptimize(dev.get());
  }
}
BENCHMARK_CAPTURE(BM_UsbDeviceFromSysfs, made, false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UsbDeviceFromSysfs, made_and_read, true)->Unit(benchmark::kMicrosecond);

// The device stays in sysfs; a "remove" event takes it out of the registry and an "add" event,
// the timed part, puts it back: umockdev's netlink emulation → libudev → our read → registry.
void BM_AddEventToRegistry(benchmark::State& state) {
  test::Testbed tb;
  auto root = add_500_devices(tb);
  auto path = root + "/1-1.1";
  boost::asio::io_context io;
  DeviceRegistry registry;
  UdevWatcher watcher(io, registry);
  watcher.start();
  std::vector<double> micros;
  for (auto _ : state) {
    tb.uevent(path, "remove");
    test::run_until(io, [&] { return registry.find_usb(path) == nullptr; });
    auto start = std::chrono::steady_clock::now();
    tb.uevent(path, "add");
    while (!registry.find_usb(path)) io.run_one();
    auto elapsed = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    micros.push_back(elapsed);
    state.SetIterationTime(elapsed / 1e6);
  }
  state.counters["p50_us"] = percentile(micros, 0.50);
  state.counters["p99_us"] = percentile(micros, 0.99);
}
BENCHMARK(BM_AddEventToRegistry)->UseManualTime()->Iterations(300)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  vhp::test::enter_mock_environment(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
