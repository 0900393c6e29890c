// vhotplugd: watches the host's USB and PCI devices and passes them through to VMs.
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "api/server.h"
#include "device/device_registry.h"
#include "device/udev_watcher.h"
#include "manager/device_manager.h"
#include "manager/passthrough.h"
#include "policy/policy.h"
#include "thunder/server.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/vhotplug.conf";

// The reference's list shape: hubs are never offered for passthrough, so they are not listed.
nlohmann::ordered_json device_lists(const vhp::DeviceRegistry& registry) {
  nlohmann::ordered_json usb = nlohmann::ordered_json::array(), pci = nlohmann::ordered_json::array();
  for (const auto& d : registry.usb_devices())
    if (!d.is_hub) usb.push_back(vhp::to_json(d));
  for (const auto& d : registry.pci_devices()) pci.push_back(vhp::to_json(d));
  return {{"usb_devices", std::move(usb)}, {"pci_devices", std::move(pci)}};
}

// The config file when there is one, else the built-in default. Throws ConfigError.
vhp::Config load_config(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    spdlog::info("no config file at {}; running on the built-in default (API on the Unix socket, no VMs, no rules)", path);
    return vhp::builtin_config();
  }
  auto config = vhp::load_config_file(path);
  for (const auto& w : config.warnings) spdlog::warn("config: {}", w);
  spdlog::info("loaded config {}: {} VMs, {} USB and {} PCI rule groups", path, config.vms.size(), config.usb.size(),
               config.pci.size());
  return config;
}

// --check-config: the verdict on stdout, every problem on its own line.
int check_config(const std::string& path) {
  try {
    auto config = vhp::load_config_file(path);
    for (const auto& w : config.warnings) std::cout << "warning: " << w << "\n";
    std::cout << path << ": OK\n";
    return 0;
  } catch (const vhp::ConfigError& e) {
    std::cout << e.what() << "\n" << path << ": INVALID\n";
    return 1;
  }
}

void log_event(const vhp::DeviceEvent& event) {
  std::visit(
      [](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, vhp::UsbEvent>)
          spdlog::info("USB {} {} {}:{} {} {}{}", vhp::to_string(e.action), e.device.sys_name, e.device.vid,
                       e.device.pid, e.device.vendor_name.value_or("?"), e.device.product_name.value_or("?"),
                       e.device.is_hub ? " (hub)" : "");
        else
          spdlog::info("PCI {} {} {}:{} {} {}", vhp::to_string(e.action), e.device.address, e.device.vid,
                       e.device.did, e.device.vendor_name.value_or("?"), e.device.device_name.value_or("?"));
      },
      event);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vhotplugd: USB and PCI passthrough to virtual machines"};
  std::string config_path = kDefaultConfig, check_path;
  bool attach_connected = false, list_devices = false, debug = false;
  app.add_option("-c,--config", config_path, "Path to the JSON config file")->capture_default_str();
  app.add_flag("-a,--attach-connected", attach_connected, "Attach the devices already connected at start-up");
  app.add_flag("--list-devices", list_devices, "Print the host's USB and PCI devices as JSON and exit");
  app.add_option("--check-config", check_path, "Validate a config file, print the verdict and exit 0 (valid) or 1");
  app.add_flag("-d,--debug", debug, "Verbose logging");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_default_logger(spdlog::stderr_color_mt("vhotplugd"));  // stdout is for --list-devices
  spdlog::set_level(debug ? spdlog::level::debug : spdlog::level::info);
  if (!check_path.empty()) return check_config(check_path);

  try {
    boost::asio::io_context io;
    vhp::DeviceRegistry registry;
    vhp::UdevWatcher watcher(io, registry);
    if (list_devices) {
      watcher.rescan();
      std::cout << device_lists(registry).dump(2) << "\n";
      return 0;
    }
    auto config = load_config(config_path);
    std::shared_ptr<vhp::ModuleResolver> modules = vhp::make_kmod_resolver();
    auto api_config = config.general.api;
    auto thunder_config = config.general.thunder;
    vhp::StateStore store(config.general.persistency ? config.general.state_path : "");

    auto logging = registry.subscribe(log_event);
    watcher.start();
    spdlog::info("watching {} USB and {} PCI devices", registry.usb_devices().size(), registry.pci_devices().size());

    vhp::DeviceManager manager(registry, std::make_shared<const vhp::Policy>(std::move(config), modules), store);
    vhp::Passthrough passthrough(io, manager, attach_connected);
    passthrough.start();
    std::optional<vhp::ApiServer> api;
    std::optional<vhp::thunder::ThunderServer> thunder;

    // Handlers first: a signal that arrives once clients can connect must find them installed.
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int signo) {
      spdlog::info("signal {}: shutting down", signo);
      sd_notify(0, "STOPPING=1");
      if (api) api->stop();
      if (thunder) thunder->stop();
      passthrough.stop();
      watcher.stop();
      io.stop();
    });
    // SIGHUP: reload. A valid config replaces the rules at once; an invalid one changes nothing.
    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void(boost::system::error_code, int)> on_hangup = [&](boost::system::error_code ec, int) {
      if (ec) return;
      try {
        auto fresh = load_config(config_path);
        if (nlohmann::json(fresh.general.api.transports) != nlohmann::json(api_config.transports) ||
            fresh.general.api.port != api_config.port || fresh.general.api.unix_socket != api_config.unix_socket)
          spdlog::warn("config: changes to general.api take effect at the next restart");
        if (fresh.vms.size() != manager.policy().config().vms.size())
          spdlog::warn("config: changes to vms take effect at the next restart");
        manager.set_policy(std::make_shared<const vhp::Policy>(std::move(fresh), modules));
        spdlog::info("config reloaded");
      } catch (const vhp::ConfigError& e) {
        spdlog::error("config reload rejected; keeping the current config:\n{}", e.what());
      }
      hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);

    if (api_config.enable && !api_config.transports.empty()) {
      api.emplace(io, manager, api_config, &passthrough);
      api->start();
    } else {
      spdlog::info("api: disabled or no transports configured");
    }
    if (thunder_config.enable) {
      thunder.emplace(io, manager, thunder_config);
      thunder->start();
    }

    sd_notify(0, "READY=1");
    io.run();
  } catch (const std::exception& err) {
    spdlog::critical("{}", err.what());
    return 1;
  }
  return 0;
}
