// Issue 17's table, for vhotplugd and, given `--reference "COMMAND"`, for the reference in the same
// run: each daemon started as a child (`COMMAND -c CONFIG`) on one umockdev laptop host with two
// fresh real QEMU VMs (q35, TCG, paused), once they are quiet, then measured the same way (the
// start as the median of five). Printed as Markdown. A plug's
// clock starts when its "add" uevent is sent; "visible in QEMU" is polled on the VM's second monitor,
// in rounds of its own (the poll slows QEMU's reading of the daemon's commands). A last column, the
// testbed's floor, takes the uevent and plug rows with no daemon at all (measure_floor).
// With `--trace`, then one more plug on vhotplugd with `-d`: its debug log from the uevent to the
// usb_attached event, each line with its offset from the uevent (the stages of a plug), and then of
// its unplug, to usb_disconnected and the usb-host gone from QEMU.
//   ./build/bench/bench_table [--reference "/usr/bin/env PYTHONPATH=… /usr/bin/python3 -m vhotplug"] [--rounds N] [--trace]
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "event_stream.h"
#include "log_time.h"
#include "bench_facts.h"
#include "percentile.h"
#include "testbed_floor.h"
#include "api/client.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/qemu.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace {

using namespace vhp;
using json = nlohmann::json;
using vhp::bench::EventStream;
using vhp::bench::log_time_us;
using vhp::bench::percentile;
using vhp::bench::node_of;
using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0, clock_type::time_point t1 = clock_type::now()) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

constexpr int kStarts = 5;  // the start is taken as the median of these

struct Figures {
  std::vector<double> api_ready_ms;  // one per start
  double first_uevent_ms = 0;
  double rss_mib = 0, pss_mib = 0;
  std::vector<double> list_us, connected_ms, disconnected_ms, attached_ms, visible_ms, gone_ms;
  double list_per_s = 0;
};

std::pair<double, double> rss_pss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  double rss = 0, pss = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double kib = 0;
    fields >> key >> kib;
    if (key == "Rss:") rss = kib / 1024;
    if (key == "Pss:") pss = kib / 1024;
  }
  return {rss, pss};
}

// USB addresses run 1..127: plugs take 40..127 in turn (each is unplugged before the address comes round again).
int next_address(int& plugs) { return 40 + (plugs++ % 88); }

// The config both daemons run: vm1 and vm2, and three devices listed: the key (vm1 by rule), the
// stick (either VM), the webcam (vm2 by rule).
void write_config(const std::string& dir, const test::Qemu& vm1, const test::Qemu& vm2) {
  std::string socket = dir + "/api.sock";
  json config = json::parse(R"({"usbPassthrough": [
      {"targetVm": "vm1", "allow": [{"vendorId": "1050", "productId": "0407"}]},
      {"allowedVms": ["vm1", "vm2"], "allow": [{"interfaceClass": 8}]},
      {"targetVm": "vm2", "allow": [{"interfaceClass": 14}]}]})");
  config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", vm1.socket()}},
                   {{"name", "vm2"}, {"type", "qemu"}, {"socket", vm2.socket()}}};
  config["general"] = {{"statePath", dir + "/state"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir + "/vhotplug.conf") << config.dump();
}

// A key, distinct at each call, that the rules send to vm1.
test::UsbSpec key(const test::HostPaths& host, int devnum) {
  auto spec = test::security_key_spec(host.root_hub);
  spec.name = "1-8", spec.devnum = devnum, spec.serial = "T" + std::to_string(devnum), spec.dev_node = true;
  return spec;
}

// A serial adapter at address `devnum`, which no rule passes: usb_connected and usb_disconnected only.
test::UsbSpec serial_adapter(const test::HostPaths& host, int devnum) {
  return {.parent = host.root_hub, .name = "1-9", .busnum = 1, .devnum = devnum, .vid = "1a86", .pid = "7523",
          .interfaces = {{0xff, 1, 2, "ch341"}}};
}

// vm's usb-host count, polled (its second monitor) until it differs from `from` or 10 s have
// passed: the count and the moment of the poll that saw it, in ms since `since`.
std::pair<std::size_t, double> usb_count_change(test::Qemu& vm, std::size_t from, clock_type::time_point since) {
  for (;;) {
    auto count = vm.usb_ids().size();
    double at = ms_since(since);
    if (count != from || at >= 10000) return {count, at};
  }
}

// The start is measured on a quiet host: the VMs' own start-up done, not sharing the two cores.
void settle(test::Qemu& vm1, test::Qemu& vm2) {
  if (!bench::wait_until_quiet({vm1.pid(), vm2.pid()})) std::fprintf(stderr, "warning: the VMs were still busy after 10 s\n");
}

void wait_for_api(const std::string& socket, clock_type::time_point since, const std::string& log) {
  for (;;) {
    test::Fd fd(test::connect_unix(socket));
    if (fd.get() >= 0 && ::write(fd.get(), "{\"action\":\"usb_list\"}\n", 22) == 22 && !test::read_line_fd(fd.get()).empty()) return;
    if (ms_since(since) > 60000) throw std::runtime_error("the API did not answer within 60 s; see " + log);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Figures measure(test::Testbed& tb, const test::HostPaths& host, const std::vector<std::string>& command, const std::string& dir,
                int rounds, int& plugs) {
  Figures f;
  test::Qemu vm1(dir, "vm1"), vm2(dir, "vm2");
  vm1.start();
  vm2.start();
  settle(vm1, vm2);
  write_config(dir, vm1, vm2);
  std::string socket = dir + "/api.sock";
  ClientOptions options;
  options.transport = "unix", options.path = socket, options.timeout_ms = 30000;

  // Start: the API's first answer, then the first uevent handled (the add is sent again every 20 ms
  // until a usb_connected says it was seen: a monitor not yet listening loses it).
  // This 2-core VM's start times wander by half between runs: five starts, each on quiet VMs.
  std::vector<std::string> argv = command;
  argv.insert(argv.end(), {"-c", dir + "/vhotplug.conf"});
  std::unique_ptr<test::Child> daemon;  // the last start's stays for the rest
  clock_type::time_point t0;
  for (int i = 0; i < kStarts; ++i) {
    if (daemon) {
      daemon->stop(SIGTERM);
      settle(vm1, vm2);
    }
    t0 = clock_type::now();
    daemon = std::make_unique<test::Child>(argv, "/dev/null", dir + "/daemon.log");
    wait_for_api(socket, t0, dir + "/daemon.log");
    f.api_ready_ms.push_back(ms_since(t0));
  }
  EventStream events(socket);
  int devnum = next_address(plugs);
  auto probe = tb.add_usb(serial_adapter(host, devnum));
  for (;;) {
    tb.uevent(probe, "add");
    if (auto at = events.wait("usb_connected", node_of(1, devnum), std::chrono::milliseconds(20))) {
      f.first_uevent_ms = ms_since(t0, *at);
      break;
    }
    if (ms_since(t0) > 60000) throw std::runtime_error("no usb_connected within 60 s");
  }
  tb.unplug(probe);
  events.wait("usb_disconnected", node_of(1, devnum), std::chrono::milliseconds(10000));

  std::this_thread::sleep_for(std::chrono::seconds(2));  // idle
  std::tie(f.rss_mib, f.pss_mib) = rss_pss_mib(daemon->pid());

  {  // usb_list on one connection
    ApiClient client(options);
    constexpr int kLists = 2000;
    auto start = clock_type::now();
    for (int i = 0; i < kLists; ++i) {
      auto t = clock_type::now();
      client.send_raw("{\"action\":\"usb_list\"}\n");
      if (client.read_line().find("\"usb_devices\"") == std::string::npos) throw std::runtime_error("usb_list failed");
      f.list_us.push_back(ms_since(t) * 1000);
    }
    f.list_per_s = kLists / (ms_since(start) / 1000);
  }

  // Plug and unplug of a device no rule passes: usb_connected / usb_disconnected.
  for (int i = 0; i < rounds; ++i) {
    int n = next_address(plugs);
    auto path = tb.add_usb(serial_adapter(host, n));
    auto t = clock_type::now();
    tb.uevent(path, "add");
    if (auto at = events.wait("usb_connected", node_of(1, n), std::chrono::milliseconds(10000))) f.connected_ms.push_back(ms_since(t, *at));
    t = clock_type::now();
    tb.unplug(path);
    if (auto at = events.wait("usb_disconnected", node_of(1, n), std::chrono::milliseconds(10000))) f.disconnected_ms.push_back(ms_since(t, *at));
  }

  // A key plugged (to vm1 by rule) and unplugged: usb_attached, with nothing else talking to QEMU.
  // QEMU reads a QMP socket one byte per pass of its loop, so a poller on its second monitor would
  // slow the daemon's session down: "visible" and "gone" have rounds of their own, below.
  // A new key's sysfs entry, then its one "add" uevent: its address, path, vm1's usb-host count
  // before, and the moment of the uevent.
  auto plug_key = [&] {
    int n = next_address(plugs);
    auto path = tb.add_usb(key(host, n));
    auto before = vm1.usb_ids().size();
    auto t = clock_type::now();
    tb.uevent(path, "add");
    return std::tuple{n, path, before, t};
  };
  for (int i = 0; i < rounds; ++i) {
    auto [n, path, before, t] = plug_key();
    if (auto at = events.wait("usb_attached", node_of(1, n), std::chrono::milliseconds(10000))) f.attached_ms.push_back(ms_since(t, *at));
    tb.unplug(path);
    events.wait("usb_disconnected", node_of(1, n), std::chrono::milliseconds(10000));
    for (auto waited = clock_type::now(); vm1.usb_ids().size() > before && ms_since(waited) < 10000;) {}  // its detach done
  }
  // The same plugs with vm1's second monitor polled (`qom-list`, a connection each time): usb-host
  // there, and gone again after the unplug.
  for (int i = 0; i < rounds; ++i) {
    auto [n, path, before, t] = plug_key();
    if (auto [count, at] = usb_count_change(vm1, before, t); count > before) f.visible_ms.push_back(at);
    events.wait("usb_attached", node_of(1, n), std::chrono::milliseconds(10000));
    auto held = vm1.usb_ids().size();
    t = clock_type::now();
    tb.unplug(path);
    if (auto [count, at] = usb_count_change(vm1, held, t); count < held) f.gone_ms.push_back(at);
    events.wait("usb_disconnected", node_of(1, n), std::chrono::milliseconds(10000));
  }
  daemon->stop(SIGTERM);
  vm1.kill();
  vm2.kill();
  return f;
}

// The same rows with no daemon: the bench's own libudev monitor sees each uevent (UeventProbe), then
// the bench does what any daemon must for the row on a fresh QMP connection to vm1 (`device_add` of
// the key's usb-host; `device_del` after its unplug) and polls vm1's second monitor. What is left of
// a daemon's figure above this is the daemon's own: its reading, rules, checks and events.
Figures measure_floor(test::Testbed& tb, const test::HostPaths& host, const std::string& dir, int rounds, int& plugs) {
  Figures f;
  test::Qemu vm1(dir, "vm1"), vm2(dir, "vm2");
  vm1.start();
  vm2.start();
  settle(vm1, vm2);
  bench::UeventProbe probe;
  auto arrived = [&](const char* action, const std::string& path, clock_type::time_point t) -> std::optional<double> {
    auto at = probe.wait(action, path, std::chrono::milliseconds(10000));
    return at ? std::optional(ms_since(t, *at)) : std::nullopt;
  };
  for (int i = 0; i < rounds; ++i) {
    int n = next_address(plugs);
    auto path = tb.add_usb(serial_adapter(host, n));
    auto t = clock_type::now();
    tb.uevent(path, "add");
    if (auto ms = arrived("add", path, t)) f.connected_ms.push_back(*ms);
    t = clock_type::now();
    tb.unplug(path);
    if (auto ms = arrived("remove", path, t)) f.disconnected_ms.push_back(*ms);
  }
  for (int i = 0; i < rounds; ++i) {
    int n = next_address(plugs);
    auto path = tb.add_usb(key(host, n));
    auto before = vm1.usb_ids().size();
    std::string id = "floor-" + std::to_string(n);
    auto t = clock_type::now();
    tb.uevent(path, "add");
    if (!arrived("add", path, t)) continue;
    auto reply = test::qmp_session(vm1.socket(), "device_add", {{"driver", "usb-host"}, {"id", id}, {"hostbus", 1}, {"hostaddr", n}}, true);
    if (reply.contains("return")) f.attached_ms.push_back(ms_since(t));
    if (auto [count, at] = usb_count_change(vm1, before, t); count > before) f.visible_ms.push_back(at);
    auto held = vm1.usb_ids().size();
    t = clock_type::now();
    tb.unplug(path);
    if (!arrived("remove", path, t)) continue;
    test::qmp_session(vm1.socket(), "device_del", {{"id", id}}, true);
    if (auto [count, at] = usb_count_change(vm1, held, t); count < held) f.gone_ms.push_back(at);
  }
  vm1.kill();
  vm2.kill();
  return f;
}

// The debug log's lines from `origin` to `until_ms` after it, each with its offset.
void print_log(const std::string& log_path, std::chrono::system_clock::time_point origin, double until_ms) {
  auto origin_us = std::chrono::duration<double, std::micro>(origin.time_since_epoch()).count();
  std::ifstream log(log_path);
  static const std::regex stamped(R"(^\[([0-9-]+ [0-9:.]+)\] \[[^\]]*\] \[[^\]]*\] (.*)$)");
  for (std::string line; std::getline(log, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, stamped)) continue;
    double at_ms = (log_time_us(m[1]) - origin_us) / 1000;
    if (at_ms < 0 || at_ms > until_ms) continue;
    std::printf("    %+8.3f ms  %s\n", at_ms, m[2].str().substr(0, 150).c_str());
  }
}

// vhotplugd -d started, then one plug: the debug log's lines from the spawn to the API's first
// answer, and from the uevent to usb_attached, with offsets.
void trace(test::Testbed& tb, const test::HostPaths& host, const std::string& dir, int devnum) {
  test::Qemu vm1(dir, "vm1"), vm2(dir, "vm2");
  vm1.start();
  vm2.start();
  settle(vm1, vm2);
  write_config(dir, vm1, vm2);
  auto spawned = std::chrono::system_clock::now();
  auto t0 = clock_type::now();
  test::Child daemon({VHOTPLUGD_BINARY, "-d", "-c", dir + "/vhotplug.conf"}, "/dev/null", dir + "/daemon.log");
  wait_for_api(dir + "/api.sock", t0, dir + "/daemon.log");
  double ready_ms = ms_since(t0);
  EventStream events(dir + "/api.sock");
  std::this_thread::sleep_for(std::chrono::seconds(1));  // idle, as a plug finds the daemon
  auto path = tb.add_usb(key(host, devnum));
  auto uevent = std::chrono::system_clock::now();
  auto t = clock_type::now();
  tb.uevent(path, "add");
  auto attached = events.wait("usb_attached", node_of(1, devnum), std::chrono::milliseconds(10000));
  if (!attached) throw std::runtime_error("trace: no usb_attached; see " + dir + "/daemon.log");
  double attached_ms = ms_since(t, *attached);
  // Then its unplug, until QEMU's usb-host is gone (vm1's second monitor polled, as the table's row).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto held = vm1.usb_ids().size();
  auto unplugged = std::chrono::system_clock::now();
  t = clock_type::now();
  tb.unplug(path);
  double gone_ms = usb_count_change(vm1, held, t).second;
  auto disconnected = events.wait("usb_disconnected", node_of(1, devnum), std::chrono::milliseconds(10000));
  if (!disconnected) throw std::runtime_error("trace: no usb_disconnected; see " + dir + "/daemon.log");
  double disconnected_ms = ms_since(t, *disconnected);
  daemon.stop(SIGTERM);
  vm1.kill();
  vm2.kill();
  std::printf("\nThe start of `vhotplugd -d` (its log; offsets from the spawn):\n\n");
  print_log(dir + "/daemon.log", spawned, ready_ms);
  std::printf("    %+8.3f ms  the first usb_list answered\n", ready_ms);
  std::printf("\nOne plug on `vhotplugd -d` (its log; offsets from the uevent):\n\n");
  print_log(dir + "/daemon.log", uevent, attached_ms);
  std::printf("    %+8.3f ms  usb_attached read by the client\n", attached_ms);
  std::printf("\nIts unplug (offsets from the remove uevent):\n\n");
  print_log(dir + "/daemon.log", unplugged, std::max(gone_ms, disconnected_ms));
  std::printf("    %+8.3f ms  usb_disconnected read by the client\n", disconnected_ms);
  std::printf("    %+8.3f ms  usb-host gone from vm1 (its second monitor polled)\n", gone_ms);
}

std::string p50_p99(const std::vector<double>& v, const char* unit, int decimals) {
  if (v.empty()) return "—";
  char text[96];
  std::snprintf(text, sizeof text, "%.*f / %.*f %s", decimals, percentile(v, 0.5), decimals, percentile(v, 0.99), unit);
  return text;
}

std::string one(double value, const char* unit, int decimals) {
  if (value == 0) return "—";  // not measured (the floor column)
  char text[64];
  std::snprintf(text, sizeof text, "%.*f %s", decimals, value, unit);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  test::disable_automatic_uevents();  // one "add" per plug, sent once sysfs is complete: the clock starts there
  std::vector<std::string> reference;
  int rounds = 30;
  bool tracing = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--trace") {
      tracing = true;
      continue;
    }
    if (i + 1 >= argc) break;
    if (flag == "--reference") {
      std::istringstream words(argv[i + 1]);
      for (std::string w; words >> w;) reference.push_back(w);
    } else if (flag == "--rounds") {
      rounds = std::stoi(argv[i + 1]);
    }
    ++i;
  }
  try {  // a failure says what and unwinds: the VMs, the daemons and the temporary directory go
    test::TempDir dir;
    test::Testbed tb;
    auto host = test::add_realistic_host(tb);
    int plugs = 0;
    std::vector<std::pair<std::string, Figures>> runs;
    std::filesystem::create_directories(dir / "vhotplugd");
    runs.emplace_back("vhotplugd", measure(tb, host, {VHOTPLUGD_BINARY}, dir / "vhotplugd", rounds, plugs));
    if (!reference.empty()) {
      std::filesystem::create_directories(dir / "reference");
      runs.emplace_back("reference", measure(tb, host, reference, dir / "reference", rounds, plugs));
    }
    std::filesystem::create_directories(dir / "floor");
    runs.emplace_back("testbed floor (no daemon)", measure_floor(tb, host, dir / "floor", rounds, plugs));

    std::printf("| figure |");
    for (const auto& [name, f] : runs) std::printf(" %s |", name.c_str());
    std::printf("\n|---|");
    for (std::size_t i = 0; i < runs.size(); ++i) std::printf("---|");
    std::printf("\n");
    auto row = [&](const char* figure, auto cell) {
      std::printf("| %s |", figure);
      for (const auto& [name, f] : runs) std::printf(" %s |", cell(f).c_str());
      std::printf("\n");
    };
    row("start → API ready", [](const Figures& f) {
      if (f.api_ready_ms.empty()) return std::string("—");
      char text[96];
      auto [low, high] = std::ranges::minmax(f.api_ready_ms);
      std::snprintf(text, sizeof text, "%.1f ms (%.1f–%.1f, %d starts)", percentile(f.api_ready_ms, 0.5), low, high, kStarts);
      return std::string(text);
    });
    row("start → first uevent handled", [](const Figures& f) { return one(f.first_uevent_ms, "ms", 1); });
    row("idle RSS / PSS", [](const Figures& f) {
      if (f.rss_mib == 0) return std::string("—");
      char text[64];
      std::snprintf(text, sizeof text, "%.1f / %.1f MiB", f.rss_mib, f.pss_mib);
      return std::string(text);
    });
    row("`usb_list` round trip p50 / p99 (3 devices, one Unix connection)", [](const Figures& f) { return p50_p99(f.list_us, "µs", 0); });
    row("`usb_list` sequential throughput", [](const Figures& f) { return one(f.list_per_s, "req/s", 0); });
    row("uevent add → `usb_connected` p50 / p99", [](const Figures& f) { return p50_p99(f.connected_ms, "ms", 2); });
    row("uevent remove → `usb_disconnected` p50 / p99", [](const Figures& f) { return p50_p99(f.disconnected_ms, "ms", 2); });
    row("plug → `usb_attached` p50 / p99", [](const Figures& f) { return p50_p99(f.attached_ms, "ms", 1); });
    row("plug → `usb-host` visible in QEMU p50 / p99", [](const Figures& f) { return p50_p99(f.visible_ms, "ms", 1); });
    row("unplug → `usb-host` gone p50 / p99", [](const Figures& f) { return p50_p99(f.gone_ms, "ms", 1); });
    std::printf("\n%d rounds of each plug; samples: ", rounds);
    for (const auto& [name, f] : runs)
      std::printf("%s %zu/%zu/%zu/%zu/%zu  ", name.c_str(), f.connected_ms.size(), f.disconnected_ms.size(), f.attached_ms.size(),
                  f.visible_ms.size(), f.gone_ms.size());
    std::printf("(connected/disconnected/attached/visible/gone)\n");
    if (tracing) {
      std::filesystem::create_directories(dir / "trace");
      trace(tb, host, dir / "trace", next_address(plugs));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_table: %s\n", e.what());
    return 1;
  }
  return 0;
}
