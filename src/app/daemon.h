#pragma once
// The one place that builds and wires the daemon: config, device registry and udev watcher, state,
// manager, VMs and passthrough, the API and Thunder servers, signals. main, the in-process
// integration tests and (through the binary) the benchmarks all use it. It owns the event loop, so
// that at shutdown every coroutine has unwound before the objects it uses are destroyed.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "app/service_notifier.h"
#include "device/device_registry.h"
#include "device/udev_watcher.h"
#include "manager/device_manager.h"
#include "manager/passthrough.h"
#include "policy/module_resolver.h"
#include "thunder/server.h"

namespace vhp {

struct DaemonOptions {
  std::string config_path = "/etc/vhotplug.conf";
  bool attach_connected = false;  // -a
  // Makes the VM backends; empty: by vms[].type (tests substitute in-process fakes).
  std::function<std::unique_ptr<Vm>(boost::asio::io_context&, const VmConfig&)> make_vm;
  bool handle_signals = true;
  std::chrono::milliseconds shutdown_grace{3000};  // for operations in flight to unwind
  HostInterfaces host;  // /sys, /dev, mountinfo (tests point them elsewhere)
  // Whether some process grabs an evdev node (tests: no real evdev device exists there).
  std::function<bool(const std::string&)> evdev_grabbed = evdev_grabbed_elsewhere;
};

class Daemon {
 public:
  // Loads the config (or the built-in default when the file does not exist). Throws ConfigError.
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Scans devices, starts the VMs, opens the API and Thunder. Throws std::runtime_error.
  void start();
  // start(), then serves until stop() (SIGTERM, SIGINT); returns once everything has unwound.
  void run();
  // Closes listeners and clients, stops the VMs and the watcher, ends run().
  void stop();
  // SIGHUP: a valid config replaces the rules at once; an invalid one changes nothing.
  void reload();

  boost::asio::io_context& io() { return io_; }
  DeviceManager& manager() { return *manager_; }
  Passthrough& passthrough() { return *passthrough_; }
  DeviceRegistry& registry() { return registry_; }
  // The `status` answer: version, uptime, config, each VM, counts, limits.
  DaemonStatus status() const;

 private:
  void wait_for_hangup();
  void drain();  // runs the loop until the stopped objects' coroutines are done, or the grace ends
  std::string status_line() const;  // systemd's STATUS=

  boost::asio::io_context io_;  // first: destroyed last
  DaemonOptions options_;
  ApiConfig api_config_;
  nlohmann::json applied_;  // the config file as started with, to name what a reload cannot apply
  std::shared_ptr<ModuleResolver> modules_;
  DeviceRegistry registry_;
  UdevWatcher watcher_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<DeviceManager> manager_;
  VfioBinding vfio_;
  std::unique_ptr<Passthrough> passthrough_;
  std::optional<ApiServer> api_;
  std::optional<thunder::ThunderServer> thunder_;
  Subscription logging_;
  boost::asio::signal_set signals_, hangup_;
  ServiceNotifier notifier_;
  WallClock::time_point started_ = WallClock::now(), config_loaded_ = started_;
  std::chrono::steady_clock::time_point started_steady_ = std::chrono::steady_clock::now();
  std::string config_source_;
  std::optional<std::string> reload_error_;
  bool stopped_ = false, drained_ = false;
};

// The config file when there is one, else the built-in default. Throws ConfigError.
Config load_config_or_default(const std::string& path);

}  // namespace vhp
