// vhotplugd: watches the host's USB and PCI devices and passes them through to VMs.
#include <filesystem>
#include <functional>
#include <iostream>
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
#include "policy/config.h"

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
  spdlog::info("loaded config {}", path);
  return config;
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
  std::string config_path = kDefaultConfig;
  bool attach_connected = false, list_devices = false, debug = false;
  app.add_option("-c,--config", config_path, "Path to the JSON config file")->capture_default_str();
  app.add_flag("-a,--attach-connected", attach_connected, "Attach devices that are already connected at start-up");
  app.add_flag("--list-devices", list_devices, "Print the host's USB and PCI devices as JSON and exit");
  app.add_flag("-d,--debug", debug, "Verbose logging");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_default_logger(spdlog::stderr_color_mt("vhotplugd"));  // stdout is for --list-devices
  spdlog::set_level(debug ? spdlog::level::debug : spdlog::level::info);

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

    auto logging = registry.subscribe(log_event);
    watcher.start();
    spdlog::info("watching {} USB and {} PCI devices", registry.usb_devices().size(), registry.pci_devices().size());

    vhp::DeviceManager manager(registry);
    std::optional<vhp::ApiServer> api;
    if (config.api.enable && !config.api.transports.empty()) {
      api.emplace(io, manager, config.api);
      api->start();
    } else {
      spdlog::info("api: disabled or no transports configured");
    }

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int signo) {
      spdlog::info("signal {}: shutting down", signo);
      sd_notify(0, "STOPPING=1");
      if (api) api->stop();
      watcher.stop();
      io.stop();
    });
    // Reserved for config reload; until then it must not kill the daemon (its default action).
    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void(boost::system::error_code, int)> on_hangup = [&](boost::system::error_code ec, int) {
      if (ec) return;
      spdlog::warn("SIGHUP: config reload is not implemented yet; keeping the current config");
      hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);
    sd_notify(0, "READY=1");
    io.run();
  } catch (const std::exception& err) {
    spdlog::critical("{}", err.what());
    return 1;
  }
  return 0;
}
