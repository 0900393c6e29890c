// pci_attach and pci_detach round trips through the real daemon (a child process) on a umockdev
// host, where VFIO cannot run: the sysfs writes answered by FakeVfioKernel (FIFOs, a thread), the
// VM a monitor answering with QEMU 7.2's captured replies (FakeQemuPci). So the figures are the
// daemon's own path (API, binding, QMP session, bookkeeping, give-back), not a real kernel's or
// guest's; the wait for /dev/vfio/<group> is reported separately, from the daemon's debug log.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "percentile.h"
#include "api/client.h"
#include "support/fake_qemu_pci.h"
#include "support/fake_vfio_kernel.h"
#include "support/host_fixture.h"
#include "support/mock_environment.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/temp_dir.h"

namespace {

using vhp::bench::percentile;

using namespace vhp;
using json = nlohmann::json;

void report(const char* what, const std::vector<double>& ms) {
  std::printf("%-40s p50 %7.3f ms  p90 %7.3f ms  max %7.3f ms  (n=%zu)\n", what, percentile(ms, 0.5), percentile(ms, 0.9),
              *std::ranges::max_element(ms), ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  test::enter_mock_environment(argc, argv);
  constexpr int kRounds = 100;
  test::TempDir dir;
  test::Testbed tb;
  test::add_realistic_host(tb);
  test::FakeVfioKernel kernel(std::filesystem::path(tb.sys_dir()).parent_path(), {"iwlwifi"});
  test::FakeQemuPci vm(dir / "net-vm.qmp");
  std::string socket = dir / "api.sock";
  json config = json::parse(R"({"pciPassthrough": [{"targetVm": "net-vm", "tag": "net", "allow": [{"address": "0000:00:14.3"}]}]})");
  config["vms"] = {{{"name", "net-vm"}, {"type", "qemu"}, {"socket", dir / "net-vm.qmp"}}};
  config["general"] = {{"statePath", dir / "state"}, {"api", {{"transports", {"unix"}}, {"unixSocket", socket}}}};
  std::ofstream(dir / "vhotplug.conf") << config.dump();
  test::Child daemon({VHOTPLUGD_BINARY, "-d", "-c", dir / "vhotplug.conf"}, "/dev/null", dir / "daemon.log");
  test::eventually([&] { return test::unix_socket_accepts(socket); });
  ClientOptions options;
  options.transport = "unix", options.path = socket, options.timeout_ms = 10000;
  ApiClient client(options);

  std::vector<double> attach, detach;
  for (int round = 0; round < kRounds; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    auto a = client.request({{"action", "pci_attach"}, {"address", "0000:00:14.3"}});
    auto t1 = std::chrono::steady_clock::now();
    auto d = client.request({{"action", "pci_detach"}, {"address", "0000:00:14.3"}});
    auto t2 = std::chrono::steady_clock::now();
    if (a["result"] != "ok" || d["result"] != "ok") {
      std::fprintf(stderr, "round %d: %s %s\n", round, a.dump().c_str(), d.dump().c_str());
      return 1;
    }
    attach.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    detach.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    // The host driver is back before the next round binds it again.
    test::eventually([&] { return kernel.driver("0000:00:14.3") == "iwlwifi"; });
  }
  std::vector<double> node_wait;
  std::ifstream log(dir / "daemon.log");
  std::regex appeared(R"(/dev/vfio/6 appeared after (\d+) us)");
  for (std::string line; std::getline(log, line);)
    if (std::smatch m; std::regex_search(line, m, appeared)) node_wait.push_back(std::stod(m[1]) / 1000.0);
  std::printf("vhotplugd PCI passthrough on the fake path (%d rounds)\n", kRounds);
  report("pci_attach request -> reply", attach);
  report("  of which the wait for /dev/vfio/6", node_wait);
  report("pci_detach request -> reply (incl. give-back)", detach);
  if (argc > 1 && std::string(argv[1]) == "--log") std::printf("%s", test::read_file(dir / "daemon.log").c_str());
  return 0;
}
