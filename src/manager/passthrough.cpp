#include "manager/passthrough.h"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include "common/log_failure.h"
#include "manager/error_of.h"
#include "manager/identity.h"

namespace vhp {

namespace asio = boost::asio;

namespace {

std::string not_found(const DeviceSelector& s) {
  switch (s.kind()) {
    case DeviceSelector::Kind::Node: return "USB device " + *s.device_node + " not found in the system";
    case DeviceSelector::Kind::Place:
      return "USB device with bus " + std::to_string(*s.bus) + " and port " + *s.port + " not found in the system";
    default: return "USB device " + s.vid.value_or("") + ":" + s.pid.value_or("") + " not found in the system";
  }
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

VmUsbDevice held_at(int busnum, int devnum) { return VmUsbDevice{"", busnum, devnum, true}; }

// What the reference names a usb-host it adds ("usb<bus><dev>"), and what we name one.
bool named_by_us_or_the_reference(const VmUsbDevice& held) {
  return held.id.starts_with("vhp-usb-") || held.id == "usb" + std::to_string(held.hostbus) + std::to_string(held.hostaddr);
}

}  // namespace

Passthrough::Passthrough(asio::io_context& io, DeviceManager& manager, VmFactory make_vm, VfioBinding& vfio, bool attach_connected,
                         EvdevPassthrough::GrabProbe evdev_grabbed)
    : io_(io),
      manager_(manager),
      placements_(manager.placements()),
      make_vm_(std::move(make_vm)),
      attach_connected_(attach_connected),
      pci_(io, *this, manager, vfio, attach_connected),
      evdev_(io, *this, manager, attach_connected, std::move(evdev_grabbed)),
      cold_plug_(manager, pci_),
      gate_(manager) {}

Passthrough::~Passthrough() {
  *alive_ = false;
  stop();
}

void Passthrough::spawn(asio::awaitable<void> work, const char* what) {
  asio::co_spawn(io_, std::move(work), log_failure(std::string("passthrough: ") + what));
}

void Passthrough::start() {
  stopped_ = false;
  for (const auto& config : manager_.policy().config().vms) {
    auto vm = make_vm_(config);
    if (auto why = vm->unsupported()) about_vm(config.name).warn("vm {}: {}; devices for it stay on the host", config.name, *why);
    auto alive = alive_;
    std::string name = config.name;
    vm->on_up = [this, alive, name] {
      if (*alive && !stopped_) spawn(vm_up(name), "a VM coming up");
    };
    vm->on_down = [this, alive, name] {
      if (*alive && !stopped_) vm_down(name);
    };
    vms_.emplace(name, std::move(vm));
  }
  devices_ = manager_.registry().subscribe([this](const DeviceEvent& e) { on_device_event(e); });
  gate_.start();
  migrate_reference_ids(manager_.registry().usb_devices());
  for (const auto& d : manager_.registry().usb_devices()) (void)manager_.held_by_host(d);  // learn the host's disks now, before any re-enumeration
  if (attach_connected_)
    for (const auto& d : manager_.registry().usb_devices())
      if (!d.is_hub) spawn(plugged(d, Arrival::Start), "attaching a connected device");
  pci_.start();
  evdev_.start();
  for (auto& [name, vm] : vms_) vm->start();
}

void Passthrough::stop() {
  stopped_ = true;
  devices_.reset();
  for (auto& [name, vm] : vms_) vm->stop();
}

Vm* Passthrough::vm(const std::string& name) {
  auto it = vms_.find(name);
  return it == vms_.end() ? nullptr : it->second.get();
}

void Passthrough::reapply_policy() {
  if (stopped_) return;
  for (const auto& d : manager_.registry().usb_devices())
    if (!d.is_hub) spawn(reapply(d), "re-applying the rules");
  pci_.reapply_policy();
  evdev_.reapply_policy();
}

asio::awaitable<void> Passthrough::reapply(UsbDevice d) {
  auto match = manager_.policy().match_usb(d);
  const auto* a = placements_.attachment(d);
  if (a) {
    if (match && match->allows(a->vm) && (!match->target_vm || *match->target_vm == a->vm)) co_return;  // still right
    placements_.unwant(d, Cause::policy());
    co_await detach_or_log(d, Cause::policy(), "taking it out of its VM");
  } else if (placements_.wanted(d)) {
    if (match && match->allows(*placements_.wanted(d))) co_return;  // on its way (its VM is down, or busy)
    placements_.unwant(d, Cause::policy());
  } else if (placements_.pending().contains(d.sys_path)) {
    if (match && !match->target_vm && match->allowed_vms == placements_.pending().at(d.sys_path)) co_return;  // still asked
    placements_.answered(d);
  }
  if (match) co_await plugged(d, Arrival::Reload);  // newly allowed, or moved: as on a plug
}

void Passthrough::on_device_event(const DeviceEvent& event) {
  if (const auto* usb = std::get_if<UsbEvent>(&event)) {
    if (usb->action == DeviceAction::Added) gate_.plugged(usb->device);
    if (usb->device.is_hub || usb->action == DeviceAction::Changed) return;
    if (usb->action == DeviceAction::Added) spawn(plugged(usb->device, Arrival::Plug), "a plug");
    else spawn(unplugged(usb->device), "an unplug");
    return;
  }
  if (const auto* pci = std::get_if<PciEvent>(&event)) {
    if (pci->action == DeviceAction::Added) pci_.plugged(pci->device);
    else if (pci->action == DeviceAction::Removed) pci_.unplugged(pci->device);
    return;
  }
  const auto& evdev = std::get<EvdevEvent>(event);
  if (evdev.action == DeviceAction::Added) evdev_.plugged(evdev.device);
  else if (evdev.action == DeviceAction::Removed) evdev_.unplugged(evdev.device);
}

void Passthrough::migrate_reference_ids(const std::vector<UsbDevice>& devices) {
  try {
    placements_.migrate_reference_ids(devices);
  } catch (const StateError& e) {  // the old entries still apply when read; only the rewrite waits
    spdlog::error("state: {}", e.what());
  }
}

asio::awaitable<void> Passthrough::plugged(UsbDevice d, Arrival arrival) {
  bool at_start = arrival == Arrival::Start;
  if (arrival == Arrival::Plug) {
    manager_.publish(UsbConnected{d});
    migrate_reference_ids({d});
  }
  auto match = manager_.policy().match_usb(d);
  if (!match) co_return;
  if (auto why = manager_.held_by_host(d)) {  // the host's own disk: no rule gives it away, nobody is asked
    about(d).warn("usb {}: {}", friendly_name(d), *why);
    co_return;
  }
  if (placements_.is_disconnected(d)) {
    about(d).info("usb {}: detached by the user earlier; staying on the host", friendly_name(d));
    co_return;
  }
  std::optional<std::string> vm = match->target_vm;
  if (!vm) vm = at_start ? autoselect(d, *match) : saved_choice(d, *match);
  if (!vm) {
    placements_.ask(d, match->allowed_vms);
    manager_.publish(UsbSelectVm{d, match->allowed_vms});
    co_return;
  }
  auto cause = at_start ? Cause::start() : arrival == Arrival::Reload ? Cause::reload() : Cause::plug();
  placements_.want(d, *vm, cause);
  co_await attach_when_possible(d, *vm, cause);
}

asio::awaitable<void> Passthrough::unplugged(UsbDevice d) {
  placements_.unplugged(d);
  if (placements_.attachment(d)) {
    // Taken out at once: a replug at the same port must not mistake it for its own.
    auto gone = *placements_.record_detached(d, Cause::unplug());
    std::string error;
    if (auto* vm = this->vm(gone.vm); vm && vm->running()) error = co_await error_of(vm->detach_usb(held_at(gone.busnum, gone.devnum)));
    if (!error.empty())
      about(d).vm(gone.vm).error("usb {}: unplugged, but removing it from {} failed: {}", friendly_name(d), gone.vm, error);
    manager_.publish(UsbDetached{d, gone.vm});
  }
  manager_.publish(UsbDisconnected{d});
}

std::optional<std::string> Passthrough::saved_choice(const UsbDevice& d, const UsbMatch& match) const {
  auto saved = placements_.saved_choice(d);
  return saved && match.allows(*saved) ? saved : std::nullopt;
}

std::string Passthrough::autoselect(const UsbDevice& d, const UsbMatch& match) const {
  return saved_choice(d, match).value_or(match.allowed_vms.front());
}

asio::awaitable<void> Passthrough::attach_when_possible(UsbDevice d, std::string vm_name, Cause cause) {
  auto* vm = this->vm(vm_name);
  if (!vm) {
    about(d).vm(vm_name).caller(cause.caller)
        .warn("usb {}: VM {} is {}; staying on the host", friendly_name(d), vm_name,
              manager_.policy().config().find_vm(vm_name) ? "not managed (added to the config since start?)"
                                                          : "not found in the config file");
    co_return;
  }
  if (auto why = vm->unsupported()) {
    about(d).vm(vm_name).caller(cause.caller)
        .error("usb {}: cannot attach to {}: {}; staying on the host", friendly_name(d), vm_name, *why);
    co_return;
  }
  if (!vm->running()) {
    about(d).vm(vm_name).caller(cause.caller)
        .info("usb {}: VM {} is not running; attaching when it starts", friendly_name(d), vm_name);
    co_return;
  }
  auto error = co_await error_of(attach(d, vm_name, cause));
  if (error.empty()) co_return;
  about(d).vm(vm_name).caller(cause.caller).error("usb {}: attach to {} failed: {}", friendly_name(d), vm_name, error);
  manager_.vm_failed(vm_name, "usb " + friendly_name(d) + ": attach failed: " + error);
}

asio::awaitable<void> Passthrough::attach(UsbDevice d, std::string vm, Cause cause) {
  if (auto why = manager_.held_by_host(d)) throw VmError(*why);  // every path to a VM passes here, checked afresh
  if (const auto* a = placements_.attachment(d)) {
    if (a->vm == vm) co_return;
    about(d).vm(vm).caller(cause.caller).info("usb {}: moving from {} to {}", friendly_name(d), a->vm, vm);
    co_await detach_or_log(d, cause, "removing it from its previous VM");
    if (auto why = manager_.held_by_host(d)) throw VmError(*why);  // mounted meanwhile
  }
  auto& target = usb_vm(vm);
  gate_.before_attach(d);
  if (auto error = co_await error_of(target.attach_usb(d)); !error.empty()) {
    gate_.attach_failed(d);
    throw VmError(error);
  }
  // Another attach of this device (a VM coming up while a plug was being handled) may have
  // finished while we waited for the VM: it is attached, and it was announced once already.
  if (const auto* a = placements_.attachment(d); a && a->vm == vm) co_return;
  // What changed while the VM worked wins: an unplug, a user's detach or move, a reload.
  std::string undone;
  auto match = manager_.policy().match_usb(d);
  if (!still_present(manager_.registry(), d)) undone = "was unplugged during the attach";
  else if (placements_.wanted(d) != vm) undone = "was detached or moved during the attach";
  else if (!match || !match->allows(vm)) undone = "is no longer allowed on " + vm + " (the config changed during the attach)";
  if (!undone.empty()) {
    auto error = co_await error_of(target.detach_usb(held_at(d.busnum, d.devnum)));
    about(d).vm(vm).caller(cause.caller).info("usb {}: {}; taken out of {} again{}", friendly_name(d), undone, vm,
                                              error.empty() ? "" : " (failed: " + error + ")");
    gate_.left_vm(d);
    throw VmError("USB device " + d.device_node + " " + undone);
  }
  placements_.record_attached(d, vm, cause);
  manager_.publish(UsbAttached{d, vm});
}

asio::awaitable<void> Passthrough::detach(UsbDevice d, Cause cause) {
  const auto* a = placements_.attachment(d);
  if (!a) co_return;
  Attachment at = *a;
  if (auto* vm = this->vm(at.vm); vm && vm->running()) co_await vm->detach_usb(held_at(at.busnum, at.devnum));
  if (placements_.attachment(d) && placements_.record_detached(d, cause)) manager_.publish(UsbDetached{d, at.vm});
  gate_.left_vm(d);
}

asio::awaitable<void> Passthrough::detach_or_log(UsbDevice d, Cause cause, const char* what) {
  std::string vm;  // where it is, for the log line
  if (const auto* a = placements_.attachment(d)) vm = a->vm;
  auto error = co_await error_of(detach(d, cause));
  if (!error.empty()) about(d).vm(vm).caller(cause.caller).error("usb {}: {} failed: {}", friendly_name(d), what, error);
}

asio::awaitable<void> Passthrough::vm_up(std::string name) {
  auto* vm = this->vm(name);
  if (!vm) co_return;
  manager_.vm_came_up(name);
  manager_.publish(VmStarted{name});
  auto cause = Cause::vm_up(name);
  // Adopt what the VM already holds for us (the daemon restarted, or replaced the reference): a
  // usb-host is recognised by its host address, whatever its id. Remove what no longer belongs.
  std::vector<VmUsbDevice> present;
  try {
    present = co_await vm->list_usb();
  } catch (const std::exception& e) {
    about_vm(name).warn("vm {}: cannot list its USB devices: {}", name, e.what());
  }
  for (const auto& held : present) {
    std::optional<UsbDevice> owner;
    for (const auto& d : manager_.registry().usb_devices())
      if (!d.is_hub && d.busnum == held.hostbus && d.devnum == held.hostaddr) owner = d;
    auto match = owner ? manager_.policy().match_usb(*owner) : std::nullopt;
    bool belongs = owner && held.attached && match && !placements_.is_disconnected(*owner) && match->allows(name) && !manager_.held_by_host(*owner) &&
                   placements_.wanted(*owner).value_or(name) == name;
    if (belongs) {
      placements_.want(*owner, name, cause);
      if (placements_.attachment(*owner)) continue;
      about(*owner).vm(name).caller(cause.caller).info("vm {}: already holds {} ({})", name, friendly_name(*owner), held.id);
      placements_.record_attached(*owner, name, cause);
      manager_.publish(UsbAttached{*owner, name});
      continue;
    }
    if (!named_by_us_or_the_reference(held)) {  // someone else's (a start script's): not ours to remove
      about_vm(name).info("vm {}: holds {} (host {}:{}), not added by vhotplug; leaving it", name, held.id, held.hostbus,
                          held.hostaddr);
      continue;
    }
    about_vm(name).info("vm {}: removing stale {}", name, held.id);
    auto error = co_await error_of(vm->detach_usb(held));
    if (!error.empty()) about_vm(name).warn("vm {}: removing stale {} failed: {}", name, held.id, error);
  }
  // Then everything that belongs on this VM and is not there yet, if the rules still say so.
  std::vector<UsbDevice> due;
  for (const auto& path : placements_.wanted_on(name)) {
    const auto* d = manager_.registry().find_usb(path);
    if (!d || placements_.attachment(*d)) continue;
    auto match = manager_.policy().match_usb(*d);
    if (!match || !match->allows(name) || placements_.is_disconnected(*d)) {
      placements_.unwant(*d, Cause::policy());
      continue;
    }
    due.push_back(*d);
  }
  for (const auto& d : due) co_await attach_when_possible(d, name, cause);
  evdev_.vm_up(name);
  co_await pci_.vm_up(name);
  about_vm(name).info("vm {}: devices reconciled ({} USB held, {} due)", name, present.size(), due.size());
}

void Passthrough::vm_down(const std::string& name) {
  manager_.vm_went_down(name);
  manager_.publish(VmStopped{name});
  pci_.vm_down(name);
  evdev_.vm_down(name);
  auto gone = placements_.attached_to(name);
  for (const auto& path : gone)  // still wanted there: re-attached when the VM is back
    if (const auto* d = manager_.registry().find_usb(path)) {
      UsbDevice device = *d;
      if (placements_.record_detached(device, Cause::vm_down(name))) manager_.publish(UsbDetached{device, name});
      gate_.left_vm(device);
    }
  if (!gone.empty()) about_vm(name).warn("vm {}: went away with {} USB device(s) attached", name, gone.size());
}

Vm& Passthrough::usb_vm(const std::string& name) {
  if (auto* v = vm(name); v && v->usb_unsupported()) throw VmError(*v->usb_unsupported());
  return running_vm(name);
}

Vm& Passthrough::running_vm(const std::string& name) {
  const auto* config = manager_.policy().config().find_vm(name);
  if (!config) throw VmError("VM " + name + " is not found in the config file");
  auto* vm = this->vm(name);
  if (!vm) throw VmError("VM " + name + " is not managed until the daemon restarts");
  if (auto why = vm->unsupported()) throw VmError(*why);
  if (!vm->running()) throw VmError("VM " + name + " is not running");
  return *vm;
}

asio::awaitable<CommandResult> Passthrough::run(Command command, Caller caller) {
  auto cause = Cause::request(caller);
  try {
    if (const auto* a = std::get_if<UsbAttach>(&command)) co_return co_await attach_command(*a, cause);
    if (const auto* d = std::get_if<UsbDetach>(&command)) co_return co_await detach_command(*d, cause);
    if (const auto* a = std::get_if<PciAttach>(&command)) co_return co_await pci_.attach_command(*a, cause);
    if (const auto* d = std::get_if<PciDetach>(&command)) co_return co_await pci_.detach_command(*d, cause);
    if (const auto* s = std::get_if<UsbSuspend>(&command)) co_return co_await suspend_command(*s, cause);
    if (const auto* r = std::get_if<UsbResume>(&command)) co_return co_await resume_command(*r, cause);
    if (const auto* s = std::get_if<PciSuspend>(&command)) co_return co_await pci_.suspend_command(*s, cause);
    if (const auto* r = std::get_if<PciResume>(&command)) co_return co_await pci_.resume_command(*r, cause);
    CommandResult result;
    result.vmm_args = co_await cold_plug_.args(std::get<VmmArgs>(command));
    co_return result;
  } catch (const std::exception& e) {
    co_return CommandResult::failed(e.what());
  }
}

asio::awaitable<CommandResult> Passthrough::attach_command(UsbAttach command, Cause cause) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  if (s.kind() == DeviceSelector::Kind::Tag) {
    // Tag attach: every device of the tag, including ones the user detached (the kill switch's "unblock").
    // As the reference, a device's own attach failure is logged and the answer stays ok; but when the
    // rules change under the request (a reload), the answer says so instead of pretending.
    std::string changed;
    auto still_tagged = [&](const UsbDevice& d) {
      auto now = manager_.policy().match_usb(d);
      if (now && now->tag == s.tag) return true;
      changed += (changed.empty() ? "" : ", ") + d.device_node;
      return false;
    };
    for (const auto& d : devices) {
      if (!still_tagged(d)) continue;  // the policy may have been reloaded during an earlier device's attach
      auto match = manager_.policy().match_usb(d);
      placements_.set_disconnected(d, false, cause);
      std::string vm = match->target_vm ? *match->target_vm : autoselect(d, *match);
      placements_.want(d, vm, cause);
      placements_.answered(d);
      co_await attach_when_possible(d, vm, cause);
      still_tagged(d);
    }
    if (!changed.empty())
      co_return CommandResult::failed("The rules changed during the attach of tag " + *s.tag + ": no longer tagged: " + changed);
    co_return CommandResult::ok();
  }
  if (devices.empty()) co_return CommandResult::failed(not_found(s));
  if (devices.size() > 1) co_return CommandResult::failed(ambiguous(devices));
  const auto d = devices.front();
  if (auto why = manager_.held_by_host(d)) co_return CommandResult::failed(*why);  // first, as the reference
  auto match = manager_.policy().match_usb(d);
  if (!match) co_return CommandResult::failed("No VM found for " + friendly_name(d));
  std::string vm;
  if (match->target_vm) {
    if (command.vm && *command.vm != *match->target_vm)
      co_return CommandResult::failed("Selected VM " + *command.vm + " but target VM is set to " + *match->target_vm);
    vm = *match->target_vm;
  } else if (command.vm) {
    if (!match->allows(*command.vm)) co_return CommandResult::failed("Selected VM " + *command.vm + " is not allowed");
    vm = *command.vm;
    placements_.save_choice(d, vm, cause);
  } else {
    vm = autoselect(d, *match);
  }
  usb_vm(vm);  // the reference's config and type checks, and ours: the VM must be up and take USB
  auto before = placements_.wanted(d);
  std::optional<std::string> was_in;
  if (const auto* a = placements_.attachment(d)) was_in = a->vm;
  bool was_disconnected = placements_.is_disconnected(d);
  placements_.set_disconnected(d, false, cause);  // first: a failed write fails the request before anything moves
  placements_.want(d, vm, cause);
  auto error = co_await error_of(attach(d, vm, cause));
  if (!error.empty()) {
    manager_.vm_failed(vm, "usb " + friendly_name(d) + ": attach failed: " + error);
    if (placements_.wanted(d) == vm) {  // nothing else changed the intent meanwhile: put it back
      if (before) placements_.want(d, *before, cause);
      else placements_.unwant(d, cause);
      if (was_in && *was_in != vm && !placements_.attachment(d))  // a move that failed after leaving its VM
        spawn(attach_when_possible(d, *was_in, cause), "putting a device back after a failed move");
    }
    if (was_disconnected) {
      try {
        placements_.set_disconnected(d, true, cause);
      } catch (const StateError& e) {
        about(d).vm(vm).caller(cause.caller).error("usb {}: {}", friendly_name(d), e.what());
      }
    }
    co_return CommandResult::failed(error);
  }
  placements_.answered(d);
  co_return CommandResult::ok();
}

asio::awaitable<CommandResult> Passthrough::detach_command(UsbDetach command, Cause cause) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  auto forget = [&](const UsbDevice& d) {  // detached by the user: stays on the host until attached again
    placements_.set_disconnected(d, true, cause);
    placements_.unwant(d, cause);
    placements_.answered(d);
  };
  if (s.kind() == DeviceSelector::Kind::Tag) {
    for (const auto& d : devices) {
      forget(d);
      co_await detach_or_log(d, cause, "detach");
    }
    co_return CommandResult::ok();
  }
  if (devices.empty()) co_return CommandResult::failed(not_found(s));
  if (devices.size() > 1) co_return CommandResult::failed(ambiguous(devices));
  const auto d = devices.front();
  // Not attached and not on its way (an attach in flight, or waiting for its VM, or taken out for a
  // host suspend): nothing changes, as the reference.
  bool suspended = placements_.take_suspended(d).has_value();
  if (!placements_.attachment(d) && !placements_.wanted(d) && !suspended)
    co_return CommandResult::failed("Device " + friendly_name(d) + " is not attached to any VM");
  forget(d);
  co_await detach(d, cause);
  co_return CommandResult::ok();
}

asio::awaitable<CommandResult> Passthrough::suspend_command(UsbSuspend command, Cause cause) {
  std::vector<std::pair<UsbDevice, std::string>> leaving;
  for (const auto& [name, vm] : vms_) {
    if (command.vm && *command.vm != name) continue;
    for (const auto& path : placements_.attached_to(name)) {
      const auto* d = manager_.registry().find_usb(path);
      if (!d) continue;
      if (auto match = manager_.policy().match_usb(*d); match && match->skip_on_suspend) {
        about(*d).vm(name).caller(cause.caller)
            .info("usb {}: stays in {} over the suspend (skipOnSuspend)", friendly_name(*d), name);
        continue;
      }
      leaving.emplace_back(*d, name);
    }
    for (const auto& path : placements_.wanted_on(name)) {  // on its way: its attach is undone when it ends
      const auto* d = manager_.registry().find_usb(path);
      if (!d || placements_.attachment(*d)) continue;
      if (auto match = manager_.policy().match_usb(*d); match && match->skip_on_suspend) continue;
      placements_.suspended(*d, name);
      placements_.unwant(*d, cause);
    }
  }
  for (const auto& [d, vm] : leaving) {  // not the user's detach: nothing is persisted
    placements_.suspended(d, vm);
    placements_.unwant(d, cause);
    co_await detach_or_log(d, cause, "suspend");
  }
  co_return CommandResult::ok();
}

asio::awaitable<CommandResult> Passthrough::resume_command(UsbResume command, Cause cause) {
  std::string failures;
  const auto devices = manager_.registry().usb_devices();  // a copy: plugs and unplugs go on meanwhile
  for (const auto& d : devices) {
    if (d.is_hub) continue;
    // What the suspend took, found by identity whatever its address now, and what was on its way.
    auto was_in = placements_.take_suspended(d);
    auto wanted = placements_.wanted(d);
    if (!was_in && !wanted) continue;
    auto match = manager_.policy().match_usb(d);
    if (!match || placements_.is_disconnected(d) || manager_.held_by_host(d)) continue;
    std::string vm = was_in && match->allows(*was_in)   ? *was_in
                     : wanted && match->allows(*wanted) ? *wanted
                     : match->target_vm                 ? *match->target_vm
                                                        : autoselect(d, *match);
    if (command.vm && *command.vm != vm) {
      if (was_in) placements_.suspended(d, *was_in);  // another VM's resume will want it
      continue;
    }
    if (const auto* a = placements_.attachment(d); a && a->vm == vm) continue;
    if (!still_present(manager_.registry(), d)) continue;  // unplugged during an earlier device's attach
    placements_.want(d, vm, cause);
    placements_.answered(d);
    if (auto* target = this->vm(vm); !target || target->unsupported() || !target->running()) {  // not a failed attach
      about(d).vm(vm).caller(cause.caller)
          .info("usb {}: resume: VM {} cannot take it now; it stays wanted there", friendly_name(d), vm);
      continue;
    }
    auto error = co_await error_of(attach(d, vm, cause));
    if (error.empty()) continue;
    about(d).vm(vm).caller(cause.caller).error("usb {}: resume: attach to {} failed: {}", friendly_name(d), vm, error);
    failures += (failures.empty() ? "" : "; ") + error;
  }
  if (!command.vm) placements_.forget_suspended();  // what did not come back is no longer the suspend's
  if (!failures.empty()) co_return CommandResult::failed(failures);
  co_return CommandResult::ok();
}

}  // namespace vhp
