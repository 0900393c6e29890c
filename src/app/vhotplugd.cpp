// vhotplugd: watches the host's USB and PCI devices and passes them through to VMs.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/daemon.h"
#include "app/journal_sink.h"

namespace {

// The reference's list shape: hubs are never offered for passthrough, so they are not listed.
nlohmann::ordered_json device_lists(const vhp::DeviceRegistry& registry) {
  nlohmann::ordered_json usb = nlohmann::ordered_json::array(), pci = nlohmann::ordered_json::array();
  for (const auto& d : registry.usb_devices())
    if (!d.is_hub) usb.push_back(vhp::to_json(d));
  for (const auto& d : registry.pci_devices()) pci.push_back(vhp::to_json(d));
  return {{"usb_devices", std::move(usb)}, {"pci_devices", std::move(pci)}};
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

// Started by systemd with standard error going to the journal (JOURNAL_STREAM names that stream):
// then log to the journal itself, with priorities and fields.
bool stderr_is_the_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (!stream || ::fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  return std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && dev == st.st_dev && ino == st.st_ino;
}

int list_devices() {
  boost::asio::io_context io;
  vhp::DeviceRegistry registry;
  vhp::UdevWatcher watcher(io, registry);
  watcher.rescan();
  std::cout << device_lists(registry).dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vhotplugd: USB and PCI passthrough to virtual machines"};
  vhp::DaemonOptions options;
  std::string check_path;
  bool list = false, debug = false;
  app.add_option("-c,--config", options.config_path, "Path to the JSON config file")->capture_default_str();
  app.add_flag("-a,--attach-connected,!--no-attach-connected", options.attach_connected,
               "Attach the devices already connected at start-up (the reference's --no-attach-connected is the default)");
  app.add_flag("--list-devices", list, "Print the host's USB and PCI devices as JSON and exit");
  app.add_option("--check-config", check_path, "Validate a config file, print the verdict and exit 0 (valid) or 1");
  app.add_flag("-d,--debug,!--no-debug", debug, "Verbose logging");
  app.set_version_flag("--version", std::string("vhotplugd ") + VHP_VERSION);
  CLI11_PARSE(app, argc, argv);
  // stdout is for --list-devices
  spdlog::set_default_logger(stderr_is_the_journal()
                                 ? std::make_shared<spdlog::logger>("vhotplugd", std::make_shared<vhp::JournalSink>("vhotplugd"))
                                 : spdlog::stderr_color_mt("vhotplugd"));
  spdlog::set_level(debug ? spdlog::level::debug : spdlog::level::info);
  // Microseconds when debugging: a plug's stages are a few hundred µs apart (docs/BENCHMARKS.md).
  if (debug) spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%f] [%n] [%^%l%$] %v");
  if (!check_path.empty()) return check_config(check_path);

  try {
    if (list) return list_devices();
    vhp::Daemon daemon(options);
    daemon.run();
  } catch (const std::exception& err) {
    spdlog::critical("{}", err.what());
    return 1;
  }
  return 0;
}
