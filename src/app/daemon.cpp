#include "app/daemon.h"

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <set>

#include <sys/resource.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "device/printable.h"
#include "manager/identity.h"
#include "manager/pci_placements.h"
#include "manager/stored_crosvm_usb_ports.h"

namespace vhp {

namespace {

// Clients are descriptors: take all the kernel allows (soft limit up to the hard one), and say so
// when the configured pools cannot all be served.
void raise_descriptor_limit(const Config& config) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  const auto& api = config.general.api;
  std::size_t wanted = (api.enable ? api.max_clients * api.transports.size() : 0) +
                       (config.general.thunder.enable ? config.general.thunder.max_clients : 0) + 64;  // + VMs, udev, files
  if (limit.rlim_cur != RLIM_INFINITY && wanted > limit.rlim_cur)
    spdlog::warn("the client limits need about {} descriptors but the process may open {}; past that, new clients wait "
                 "in the backlog until others leave",
                 wanted, static_cast<unsigned long long>(limit.rlim_cur));
}

void log_event(const DeviceEvent& event) {
  std::visit(
      [](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, UsbEvent>)
          about(e.device).info("USB {} {} {}:{} {} {}{}", to_string(e.action), e.device.sys_name, e.device.vid, e.device.pid,
                               printable(e.device.vendor_name.value_or("?")), printable(e.device.product_name.value_or("?")),
                               e.device.is_hub ? " (hub)" : "");
        else if constexpr (std::is_same_v<T, PciEvent>)
          about(e.device).info("PCI {} {} {}:{} {} {}", to_string(e.action), e.device.address, e.device.vid, e.device.did,
                               printable(e.device.vendor_name.value_or("?")), printable(e.device.device_name.value_or("?")));
        else
          about(e.device).info("input {} {} {} bus {}", to_string(e.action), e.device.sys_name, friendly_name(e.device),
                               e.device.bus.value_or("?"));
      },
      event);
}

// The file as JSON (null when absent or unreadable: it was validated already, or is about to be).
nlohmann::json raw_config(const std::string& path) {
  std::ifstream in(path);
  return in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
}

// What a reload cannot apply to a running daemon: listeners, access lists, limits, Thunder, the
// state file, the VMs themselves. Named by JSON path, so that nothing is ignored silently.
std::string needs_restart(const nlohmann::json& before, const nlohmann::json& after) {
  auto at = [](const nlohmann::json& j, const std::vector<std::string>& path) {
    const nlohmann::json* node = &j;
    for (const auto& key : path) {
      if (!node->is_object() || !node->contains(key)) return nlohmann::json();
      node = &(*node)[key];
    }
    return *node;
  };
  std::vector<std::string> changed;
  for (const char* section : {"api", "thunder"}) {
    auto old_part = at(before, {"general", section}), new_part = at(after, {"general", section});
    std::set<std::string> keys;
    for (const auto* part : {&old_part, &new_part})
      if (part->is_object())
        for (const auto& [key, value] : part->items()) keys.insert(key);
    for (const auto& key : keys)
      if (at(old_part, {key}) != at(new_part, {key})) changed.push_back(std::string("general.") + section + "." + key);
  }
  for (const char* key : {"statePath", "persistency", "crosvm"})
    if (at(before, {"general", key}) != at(after, {"general", key})) changed.push_back(std::string("general.") + key);
  for (const char* key : {"enable", "deauthorizeUnmatched"})  // acted on at start; hostAllow applies at once
    if (at(before, {"usbAuthorization", key}) != at(after, {"usbAuthorization", key})) changed.push_back(std::string("usbAuthorization.") + key);
  if (at(before, {"vms"}) != at(after, {"vms"})) changed.push_back("vms");
  std::string list;
  for (const auto& c : changed) list += (list.empty() ? "" : ", ") + c;
  return list;
}

}  // namespace

Config load_config_or_default(const std::string& path) {
  std::error_code ec;
  bool exists = std::filesystem::exists(path, ec);
  if (ec) throw ConfigError(path + ": " + ec.message());
  if (!exists) {
    spdlog::info("no config file at {}; running on the built-in default (API on the Unix socket, no VMs, no rules)", path);
    return builtin_config();
  }
  auto config = load_config_file(path);
  for (const auto& w : config.warnings) spdlog::warn("config: {}", w);
  spdlog::info("loaded config {}: {} VMs, {} USB, {} PCI, {} input-device and {} ACPI rule groups", path, config.vms.size(),
               config.usb.size(), config.pci.size(), config.evdev.size(), config.acpi.size());
  return config;
}

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)),
      modules_(make_kmod_resolver()),
      watcher_(io_, registry_),
      vfio_(io_, options_.host),
      signals_(io_),
      hangup_(io_),
      notifier_(io_, [this] { return status_line(); }) {
  auto config = load_config_or_default(options_.config_path);
  config_source_ = config.source;
  applied_ = raw_config(options_.config_path);
  api_config_ = config.general.api;
  store_ = std::make_unique<StateStore>(config.general.persistency ? config.general.state_path : "");
  manager_ = std::make_unique<DeviceManager>(registry_, std::make_shared<const Policy>(std::move(config), modules_), *store_, options_.host);
  VmOptions vm_options;
  vm_options.crosvm_binary = manager_->policy().config().general.crosvm;
  vm_options.crosvm_usb_ports = std::make_shared<StoredCrosvmUsbPorts>(*store_);
  VmFactory make_vm = default_vm_factory(io_, vm_options);
  if (options_.make_vm) make_vm = [this](const VmConfig& c) { return options_.make_vm(io_, c); };
  passthrough_ = std::make_unique<Passthrough>(io_, *manager_, std::move(make_vm), vfio_, options_.attach_connected,
                                               options_.evdev_grabbed);
}

Daemon::~Daemon() {
  stop();
  drain();
}

void Daemon::start() {
  raise_descriptor_limit(manager_->policy().config());
  logging_ = registry_.subscribe(log_event);
  watcher_.start();
  spdlog::info("watching {} USB and {} PCI devices", registry_.usb_devices().size(), registry_.pci_devices().size());
  passthrough_->start();
  // Handlers first: a signal that arrives once clients can connect must find them installed.
  if (options_.handle_signals) {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec) return;
      spdlog::info("signal {}: shutting down", signo);
      stop();
    });
    hangup_.add(SIGHUP);
    wait_for_hangup();
  }
  const auto& config = manager_->policy().config();
  if (api_config_.enable && !api_config_.transports.empty()) {
    api_.emplace(io_, *manager_, api_config_, passthrough_.get());
    api_->set_status_source([this] { return status(); });
    api_->start();
  } else {
    spdlog::info("api: disabled or no transports configured");
  }
  if (config.general.thunder.enable) {
    thunder_.emplace(io_, *manager_, config.general.thunder);
    thunder_->start();
  }
  notifier_.ready();
}

void Daemon::run() {
  start();
  io_.run();
  drain();
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  notifier_.stopping();
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  hangup_.cancel(ignored);
  if (api_) api_->stop();
  if (thunder_) thunder_->stop();
  passthrough_->stop();
  watcher_.stop();
  logging_.reset();
  io_.stop();
}

void Daemon::drain() {
  if (drained_) return;
  drained_ = true;
  io_.restart();
  io_.run_for(options_.shutdown_grace);
  if (!io_.stopped()) spdlog::warn("shutdown: some operations had not finished after {} ms", options_.shutdown_grace.count());
}

void Daemon::wait_for_hangup() {
  hangup_.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    reload();
    wait_for_hangup();
  });
}

void Daemon::reload() {
  notifier_.reloading();
  try {
    // The built-in default is for a host without a config file at start; a file that vanished
    // (or cannot be looked at) later must not drop every rule and VM.
    std::error_code ec;
    bool exists = std::filesystem::exists(options_.config_path, ec);
    if (ec) throw ConfigError(options_.config_path + ": " + ec.message());
    if (!exists) throw ConfigError(options_.config_path + " does not exist");
    auto fresh = load_config_or_default(options_.config_path);
    auto raw = raw_config(options_.config_path);
    if (auto later = needs_restart(applied_, raw); !later.empty())
      spdlog::warn("config: these changes take effect at the next restart: {}", later);
    config_source_ = fresh.source;
    manager_->set_policy(std::make_shared<const Policy>(std::move(fresh), modules_));
    config_loaded_ = WallClock::now();
    reload_error_.reset();
    spdlog::info("config reloaded");
    passthrough_->reapply_policy();
  } catch (const ConfigError& e) {
    reload_error_ = e.what();
    spdlog::error("config reload rejected; keeping the current config:\n{}", e.what());
  }
  notifier_.ready();
}

DaemonStatus Daemon::status() const {
  DaemonStatus s;
  s.version = VHP_VERSION;
  s.started = started_;
  s.uptime = std::chrono::steady_clock::now() - started_steady_;
  s.config_path = config_source_;
  s.config_loaded = config_loaded_;
  s.reload_error = reload_error_;
  const auto& config = manager_->policy().config();
  for (const auto& vm : config.vms) s.vms.push_back({vm.name, vm.type, manager_->vm_health(vm.name)});
  auto on = [&](const std::string& vm) -> VmStatus* {
    auto it = std::ranges::find(s.vms, vm, &VmStatus::name);
    return it == s.vms.end() ? nullptr : &*it;
  };
  for (const auto& d : registry_.usb_devices()) {
    if (d.is_hub) continue;
    ++s.usb_devices;
    if (const auto* a = manager_->placements().attachment(d))
      if (auto* vm = on(a->vm)) ++vm->usb_devices;
  }
  for (const auto& d : registry_.pci_devices()) {
    ++s.pci_devices;
    if (auto where = manager_->pci_placements().vm_of(d.address))
      if (auto* vm = on(*where)) ++vm->pci_devices;
  }
  s.input_devices = registry_.evdev_devices().size();
  for (const auto& [path, where] : manager_->evdev_attachments())
    if (auto* vm = on(where)) ++vm->input_devices;
  s.api_clients = api_ ? api_->client_count() : 0;
  s.thunder_clients = thunder_ ? thunder_->client_count() : 0;
  s.pending_selections = manager_->pending_selections().size();
  s.limits.api_max_clients = api_config_.max_clients;
  s.limits.api_max_line_bytes = api_config_.max_line_bytes;
  s.limits.api_send_queue_bytes = api_config_.send_queue_bytes;
  s.limits.api_send_timeout_ms = api_config_.send_timeout_ms;
  if (thunder_) {
    s.limits.thunder_max_clients = config.general.thunder.max_clients;
    s.limits.thunder_max_message_bytes = config.general.thunder.max_message_bytes;
  }
  return s;
}

std::string Daemon::status_line() const {
  auto s = status();
  auto up = std::ranges::count_if(s.vms, [](const VmStatus& vm) { return vm.health.state == VmHealth::State::Up; });
  auto clients = s.api_clients + s.thunder_clients;
  return std::to_string(s.usb_devices) + " USB, " + std::to_string(s.pci_devices) + " PCI and " + std::to_string(s.input_devices) +
         " input devices; " + std::to_string(up) + "/" + std::to_string(s.vms.size()) + " VMs up; " + std::to_string(clients) +
         (clients == 1 ? " client" : " clients") + (s.reload_error ? "; the last reload was rejected" : "");
}

}  // namespace vhp
