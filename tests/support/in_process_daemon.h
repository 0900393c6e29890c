#pragma once
// A test fixture: the real Daemon object in-process on a umockdev laptop host, its VMs (vm1, vm2)
// in-process fakes (support/fake_vm.h), its typed events recorded, and API requests run as the
// API would run them. For passthrough decisions and their races.
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/daemon.h"
#include "support/event_loop.h"
#include "support/fake_vm.h"
#include "support/host_fixture.h"
#include "support/temp_dir.h"

namespace vhp::test {

class InProcessDaemon : public testing::Test {
 protected:
  InProcessDaemon() { host = add_realistic_host(tb); }
  ~InProcessDaemon() override { daemon.reset(); }

  // The rules in `config`, plus vm1 and vm2 (fakes), the state file in the test's directory, no API.
  void write_config(nlohmann::json config) {
    config["vms"] = {{{"name", "vm1"}, {"type", "qemu"}, {"socket", dir / "vm1.qmp"}},
                     {{"name", "vm2"}, {"type", "qemu"}, {"socket", dir / "vm2.qmp"}}};
    config["general"] = {{"statePath", dir / "state.json"}, {"api", {{"enable", false}}}};
    std::ofstream(dir / "vhotplug.conf") << config.dump(2);
  }

  void start(bool attach_connected = false) {
    DaemonOptions options;
    options.config_path = dir / "vhotplug.conf";
    options.handle_signals = false;
    options.attach_connected = attach_connected;
    options.host = host_files;
    if (evdev_grabbed) options.evdev_grabbed = evdev_grabbed;
    options.make_vm = [this](boost::asio::io_context& io, const VmConfig& c) {
      auto vm = std::make_unique<FakeVm>(io, c.name);
      for (const auto& held : already_held[c.name]) vm->put(held);
      if (on_vm_made) on_vm_made(*vm);
      fakes[c.name] = vm.get();
      return vm;
    };
    daemon.emplace(options);
    daemon->start();
    events = daemon->manager().subscribe([this](const ManagerEvent& e) { seen.push_back(e); });
  }

  boost::asio::io_context& io() { return daemon->io(); }
  FakeVm& vm(const std::string& name) { return *fakes.at(name); }

  // A request as the API would run it; `result` is set when it is answered.
  void request(Command command, std::optional<CommandResult>& result) {
    Caller caller{"unix", "test", std::nullopt, 1000, 1000, 4242, {1000}, std::nullopt};
    boost::asio::co_spawn(io(), daemon->passthrough().run(command, caller),
                          [&result](std::exception_ptr, CommandResult r) { result = std::move(r); });
  }
  CommandResult request(Command command) {
    std::optional<CommandResult> result;
    request(std::move(command), result);
    EXPECT_TRUE(run_until(io(), [&] { return result.has_value(); }));
    return result.value_or(CommandResult::failed("no answer"));
  }

  Testbed tb;
  HostPaths host;
  TempDir dir;
  std::map<std::string, std::vector<VmPciDevice>> already_held;  // what each fake VM holds when made
  std::function<void(FakeVm&)> on_vm_made;
  std::function<bool(const std::string&)> evdev_grabbed;  // the EVIOCGRAB probe's answer; empty: the real probe
  HostInterfaces host_files;  // the daemon's mountinfo and swaps (tests write their own)
  std::optional<Daemon> daemon;
  std::map<std::string, FakeVm*> fakes;
  std::vector<ManagerEvent> seen;
  Subscription events;
};

}  // namespace vhp::test
