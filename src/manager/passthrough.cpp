#include "manager/passthrough.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include "manager/identity.h"

namespace vhp {

namespace asio = boost::asio;
using ordered_json = nlohmann::ordered_json;

namespace {

ordered_json ok() { return {{"result", "ok"}}; }
ordered_json failed(const std::string& error) { return {{"result", "failed"}, {"error", error}}; }

// The reference sends only the node in usb_detached.
ordered_json detached_event(const UsbDevice& d, const std::string& vm) {
  return {{"event", "usb_detached"}, {"usb_device", {{"device_node", d.device_node}}}, {"vm", vm}};
}

std::string not_found(const DeviceSelector& s) {
  switch (s.kind()) {
    case DeviceSelector::Kind::Node: return "USB device " + *s.device_node + " not found in the system";
    case DeviceSelector::Kind::Place:
      return "USB device with bus " + std::to_string(*s.bus) + " and port " + *s.port + " not found in the system";
    default: return "USB device " + s.vid.value_or("") + ":" + s.pid.value_or("") + " not found in the system";
  }
}

// Runs a VM operation and returns its failure's text ("" when it succeeded). Callers log or
// ignore it; a coroutine cannot co_await inside a catch handler, so this is the one place that catches.
asio::awaitable<std::string> error_of(asio::awaitable<void> operation) {
  std::string error;
  try {
    co_await std::move(operation);
  } catch (const VmError& e) {
    error = e.what();
  }
  co_return error;
}

std::string ambiguous(const std::vector<UsbDevice>& devices) {
  std::string list;
  for (const auto& d : devices) list += (list.empty() ? "" : ", ") + d.device_node + " " + friendly_name(d);
  return "Several USB devices match: " + list + "; select one by device_node";
}

// Still the same device (not unplugged, not replugged at another address)?
bool still_present(const DeviceRegistry& registry, const UsbDevice& d) {
  const auto* now = registry.find_usb(d.sys_path);
  return now && now->busnum == d.busnum && now->devnum == d.devnum;
}

}  // namespace

Passthrough::Passthrough(asio::io_context& io, DeviceManager& manager, bool attach_connected, QemuTimeouts timeouts)
    : io_(io), manager_(manager), attach_connected_(attach_connected), timeouts_(timeouts) {}

Passthrough::~Passthrough() {
  *alive_ = false;
  stop();
}

void Passthrough::start() {
  for (const auto& vm : manager_.policy().config().vms) {
    if (vm.type != "qemu") {
      spdlog::warn("vm {}: type {} has no runtime backend yet; devices for it stay on the host", vm.name, vm.type);
      continue;
    }
    auto qemu = std::make_unique<QemuVm>(io_, vm.name, vm.socket, timeouts_);
    std::string name = vm.name;
    auto alive = alive_;
    qemu->on_up = [this, alive, name] {
      if (*alive) asio::co_spawn(io_, vm_up(name), asio::detached);
    };
    qemu->on_down = [this, alive, name] {
      if (*alive) vm_down(name);
    };
    vms_.emplace(name, std::move(qemu));
  }
  devices_ = manager_.registry().subscribe([this](const DeviceEvent& e) { on_device_event(e); });
  if (attach_connected_)
    for (const auto& d : manager_.registry().usb_devices())
      if (!d.is_hub) asio::co_spawn(io_, plugged(d, true), asio::detached);
  for (auto& [name, vm] : vms_) vm->start();
}

void Passthrough::stop() {
  devices_.reset();
  for (auto& [name, vm] : vms_) vm->stop();
}

void Passthrough::on_device_event(const DeviceEvent& event) {
  if (const auto* usb = std::get_if<UsbEvent>(&event)) {
    if (usb->device.is_hub || usb->action == DeviceAction::Changed) return;
    if (usb->action == DeviceAction::Added) asio::co_spawn(io_, plugged(usb->device, false), asio::detached);
    else asio::co_spawn(io_, unplugged(usb->device), asio::detached);
    return;
  }
  const auto& pci = std::get<PciEvent>(event);
  if (pci.action == DeviceAction::Changed) return;
  bool added = pci.action == DeviceAction::Added;
  manager_.publish({{"event", added ? "pci_connected" : "pci_disconnected"}, {"pci_device", to_json(pci.device)}});
}

asio::awaitable<void> Passthrough::plugged(UsbDevice d, bool at_start) {
  if (!at_start) manager_.publish({{"event", "usb_connected"}, {"usb_device", to_json(d)}});
  auto match = manager_.policy().match_usb(d);
  if (!match) co_return;
  if (manager_.is_disconnected(d)) {
    spdlog::info("usb {}: detached by the user earlier; staying on the host", friendly_name(d));
    co_return;
  }
  std::optional<std::string> vm = match->target_vm;
  if (!vm) vm = at_start ? autoselect(d, *match) : saved_choice(d, *match);
  if (!vm) {
    manager_.runtime().pending_select[d.sys_path] = match->allowed_vms;
    manager_.publish({{"event", "usb_select_vm"}, {"usb_device", to_json(d)}, {"allowed_vms", match->allowed_vms}});
    co_return;
  }
  manager_.runtime().wanted[d.sys_path] = *vm;
  co_await attach_when_possible(d, *vm);
}

asio::awaitable<void> Passthrough::unplugged(UsbDevice d) {
  auto& rt = manager_.runtime();
  rt.pending_select.erase(d.sys_path);
  rt.wanted.erase(d.sys_path);
  if (const auto* a = rt.attachment(d)) {
    // Taken out at once: a replug at the same port must not mistake it for its own.
    Attachment gone = *a;
    rt.attached.erase(d.sys_path);
    std::string error;
    auto vm = vms_.find(gone.vm);
    if (vm != vms_.end() && vm->second->running()) error = co_await error_of(vm->second->detach_usb(gone.busnum, gone.devnum));
    if (!error.empty()) spdlog::error("usb {}: unplugged, but removing it from {} failed: {}", friendly_name(d), gone.vm, error);
    spdlog::info("usb {}: detached from {}", friendly_name(d), gone.vm);
    manager_.publish(detached_event(d, gone.vm));
  }
  manager_.publish({{"event", "usb_disconnected"}, {"usb_device", to_json(d)}});
}

std::optional<std::string> Passthrough::saved_choice(const UsbDevice& d, const UsbMatch& match) const {
  auto saved = manager_.selected_vm(d);
  return saved && match.allows(*saved) ? saved : std::nullopt;
}

std::string Passthrough::autoselect(const UsbDevice& d, const UsbMatch& match) const {
  return saved_choice(d, match).value_or(match.allowed_vms.front());
}

asio::awaitable<void> Passthrough::attach_when_possible(UsbDevice d, std::string vm) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    spdlog::warn("usb {}: VM {} has no runtime backend; staying on the host", friendly_name(d), vm);
    co_return;
  }
  if (!it->second->running()) {
    spdlog::info("usb {}: VM {} is not running; attaching when it starts", friendly_name(d), vm);
    co_return;
  }
  auto error = co_await error_of(attach(d, vm));
  if (!error.empty()) spdlog::error("usb {}: attach to {} failed: {}", friendly_name(d), vm, error);
}

asio::awaitable<void> Passthrough::attach(const UsbDevice& d, const std::string& vm) {
  auto& rt = manager_.runtime();
  if (const auto* a = rt.attachment(d)) {
    if (a->vm == vm) co_return;
    spdlog::info("usb {}: moving from {} to {}", friendly_name(d), a->vm, vm);
    co_await detach_or_log(d, "removing it from its previous VM");
  }
  auto& target = running_vm(vm);
  co_await target.attach_usb(d.busnum, d.devnum);
  // Another attach of this device (a VM coming up while a plug was being handled) may have
  // finished while we waited for the VM: it is attached, and it was announced once already.
  if (const auto* a = rt.attachment(d); a && a->vm == vm) co_return;
  if (!still_present(manager_.registry(), d)) {  // unplugged while QEMU was busy
    co_await error_of(target.detach_usb(d.busnum, d.devnum));  // best effort: the device is gone anyway
    throw VmError("USB device " + d.device_node + " was unplugged during the attach");
  }
  rt.attached[d.sys_path] = Attachment{vm, d.busnum, d.devnum};
  spdlog::info("usb {}: attached to {}", friendly_name(d), vm);
  manager_.publish({{"event", "usb_attached"}, {"usb_device", to_json(d)}, {"vm", vm}});
}

asio::awaitable<void> Passthrough::detach(const UsbDevice& d) {
  auto& rt = manager_.runtime();
  const auto* a = rt.attachment(d);
  if (!a) co_return;
  std::string vm = a->vm;
  auto vm_it = vms_.find(vm);
  if (vm_it != vms_.end() && vm_it->second->running()) co_await vm_it->second->detach_usb(d.busnum, d.devnum);
  rt.attached.erase(d.sys_path);
  spdlog::info("usb {}: detached from {}", friendly_name(d), vm);
  manager_.publish(detached_event(d, vm));
}

asio::awaitable<void> Passthrough::detach_or_log(const UsbDevice& d, const char* what) {
  auto error = co_await error_of(detach(d));
  if (!error.empty()) spdlog::error("usb {}: {} failed: {}", friendly_name(d), what, error);
}

asio::awaitable<void> Passthrough::vm_up(std::string name) {
  auto it = vms_.find(name);
  if (it == vms_.end()) co_return;
  auto& vm = *it->second;
  auto& rt = manager_.runtime();
  // Adopt what the VM already has from us (the daemon restarted), remove what no longer belongs there.
  std::vector<QemuUsbDevice> present;
  try {
    present = co_await vm.list_usb();
  } catch (const VmError& e) {
    spdlog::warn("vm {}: cannot list its USB devices: {}", name, e.what());
  }
  for (const auto& q : present) {
    std::optional<UsbDevice> owner;
    for (const auto& d : manager_.registry().usb_devices())
      if (!d.is_hub && d.busnum == q.hostbus && d.devnum == q.hostaddr) owner = d;
    auto match = owner ? manager_.policy().match_usb(*owner) : std::nullopt;
    bool belongs = owner && q.attached && match && !manager_.is_disconnected(*owner) && match->allows(name);
    if (belongs) {
      rt.attached[owner->sys_path] = Attachment{name, owner->busnum, owner->devnum};
      rt.wanted[owner->sys_path] = name;
      spdlog::info("vm {}: already has {} ({})", name, friendly_name(*owner), q.id);
      manager_.publish({{"event", "usb_attached"}, {"usb_device", to_json(*owner)}, {"vm", name}});
      continue;
    }
    spdlog::info("vm {}: removing stale {}", name, q.id);
    auto error = co_await error_of(vm.detach_usb(q.hostbus, q.hostaddr));
    if (!error.empty()) spdlog::warn("vm {}: removing stale {} failed: {}", name, q.id, error);
  }
  // Then everything that belongs on this VM and is not there yet.
  std::vector<UsbDevice> due;
  for (const auto& [path, vm_name] : rt.wanted)
    if (const auto* d = manager_.registry().find_usb(path); d && vm_name == name && !rt.attachment(*d)) due.push_back(*d);
  for (const auto& d : due) co_await attach_when_possible(d, name);
}

void Passthrough::vm_down(const std::string& name) {
  auto& rt = manager_.runtime();
  std::vector<std::string> gone;
  for (const auto& [path, a] : rt.attached)
    if (a.vm == name) gone.push_back(path);
  for (const auto& path : gone) {  // still wanted there: re-attached when the VM is back
    rt.attached.erase(path);
    if (const auto* d = manager_.registry().find_usb(path)) manager_.publish(detached_event(*d, name));
  }
  if (!gone.empty()) spdlog::warn("vm {}: went away with {} USB device(s) attached", name, gone.size());
}

QemuVm& Passthrough::running_vm(const std::string& name) {
  const auto* config = manager_.policy().config().find_vm(name);
  if (!config) throw VmError("VM " + name + " is not found in the config file");
  auto it = vms_.find(name);
  if (it == vms_.end()) throw VmError("Unsupported vm type: " + config->type);
  if (!it->second->running()) throw VmError("VM " + name + " is not running");
  return *it->second;
}

asio::awaitable<ordered_json> Passthrough::run(const Command& command) {
  try {
    if (const auto* a = std::get_if<UsbAttach>(&command)) co_return co_await attach_command(*a);
    co_return co_await detach_command(std::get<UsbDetach>(command));
  } catch (const VmError& e) {
    co_return failed(e.what());
  } catch (const QmpError& e) {
    co_return failed(e.what());
  }
}

asio::awaitable<ordered_json> Passthrough::attach_command(const UsbAttach& command) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  auto& rt = manager_.runtime();
  if (s.kind() == DeviceSelector::Kind::Tag) {
    // Tag attach: every device of the tag, including ones the user detached (the kill switch's "unblock").
    for (const auto& d : devices) {
      manager_.store().set_disconnected(persistent_id(d), false);
      auto match = manager_.policy().match_usb(d);
      std::string vm = match->target_vm ? *match->target_vm : autoselect(d, *match);
      rt.wanted[d.sys_path] = vm;
      rt.pending_select.erase(d.sys_path);
      co_await attach_when_possible(d, vm);
    }
    co_return ok();
  }
  if (devices.empty()) co_return failed(not_found(s));
  if (devices.size() > 1) co_return failed(ambiguous(devices));
  const auto d = devices.front();
  auto match = manager_.policy().match_usb(d);
  if (!match) co_return failed("No VM found for " + friendly_name(d));
  std::string vm;
  if (match->target_vm) {
    if (command.vm && *command.vm != *match->target_vm)
      co_return failed("Selected VM " + *command.vm + " but target VM is set to " + *match->target_vm);
    vm = *match->target_vm;
  } else if (command.vm) {
    if (!match->allows(*command.vm)) co_return failed("Selected VM " + *command.vm + " is not allowed");
    vm = *command.vm;
    manager_.store().set_selected_vm(persistent_id(d), vm);
  } else {
    vm = autoselect(d, *match);
  }
  running_vm(vm);  // the reference's config and type checks, and ours: the VM must be up
  co_await attach(d, vm);
  manager_.store().set_disconnected(persistent_id(d), false);
  rt.wanted[d.sys_path] = vm;
  rt.pending_select.erase(d.sys_path);
  co_return ok();
}

asio::awaitable<ordered_json> Passthrough::detach_command(const UsbDetach& command) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  auto& rt = manager_.runtime();
  auto forget = [&](const UsbDevice& d) {  // detached by the user: stays on the host until attached again
    manager_.store().set_disconnected(persistent_id(d), true);
    rt.wanted.erase(d.sys_path);
    rt.pending_select.erase(d.sys_path);
  };
  if (s.kind() == DeviceSelector::Kind::Tag) {
    for (const auto& d : devices) {
      forget(d);
      co_await detach_or_log(d, "detach");
    }
    co_return ok();
  }
  if (devices.empty()) co_return failed(not_found(s));
  if (devices.size() > 1) co_return failed(ambiguous(devices));
  const auto d = devices.front();
  forget(d);
  if (!rt.attachment(d)) co_return failed("Device " + friendly_name(d) + " is not attached to any VM");
  co_await detach(d);
  co_return ok();
}

}  // namespace vhp
