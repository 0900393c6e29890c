#include "manager/pci_passthrough.h"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include "common/log_failure.h"
#include "manager/error_of.h"
#include "manager/passthrough.h"

namespace vhp {

namespace asio = boost::asio;

namespace {

std::string not_found(const PciDeviceSelector& s) {
  if (s.kind() == PciDeviceSelector::Kind::Address) return "PCI device " + *s.address + " not found in the system";
  return "PCI device " + s.vid.value_or("") + ":" + s.did.value_or("") + " not found in the system";
}

std::string ambiguous(const std::vector<PciDevice>& devices) {
  std::string list;
  for (const auto& d : devices) list += (list.empty() ? "" : ", ") + friendly_name(d);
  return "Several PCI devices match: " + list + "; select one by address";
}

// What the reference names a vfio-pci it adds ("pci-0000-00-14.3"), and what we name one.
bool named_by_us_or_the_reference(const VmPciDevice& held) {
  return held.id.starts_with("vhp-pci-") || held.id.starts_with("pci-");
}

VmPciDevice held_at(const std::string& address) { return VmPciDevice{"", address}; }

// The log fields of a line about a PCI device known only by its address (a group member).
LogFields about_pci(const std::string& address) {
  PciDevice d;
  d.address = address;
  return about(d);
}

}  // namespace

PciPassthrough::PciPassthrough(asio::io_context& io, Passthrough& owner, DeviceManager& manager, VfioBinding& vfio, bool attach_connected)
    : io_(io), owner_(owner), manager_(manager), placements_(manager.pci_placements()), vfio_(vfio), attach_connected_(attach_connected) {}

PciPassthrough::~PciPassthrough() { *alive_ = false; }

void PciPassthrough::spawn(asio::awaitable<void> work, const char* what) {
  asio::co_spawn(io_, std::move(work), log_failure(std::string("pci passthrough: ") + what));
}

void PciPassthrough::start() {
  if (!manager_.policy().config().pci.empty() && !vfio_.available())
    spdlog::warn("vfio-pci is not loaded: PCI devices stay on the host until it is (modprobe vfio-pci)");
  if (!attach_connected_) return;
  for (const auto& [d, match] : manager_.pci_matched())
    if (!placements_.is_disconnected(d.address)) placements_.want(d, match.target_vm, Cause::start());
    else about(d).info("pci {}: detached by the user earlier; staying on the host", friendly_name(d));
}

void PciPassthrough::plugged(const PciDevice& d) {
  manager_.publish(PciConnected{d});
  auto match = manager_.policy().match_pci(d);
  if (!match || match->skips(d)) return;
  if (placements_.is_disconnected(d.address)) {
    about(d).info("pci {}: detached by the user earlier; staying on the host", friendly_name(d));
    return;
  }
  placements_.want(d, match->target_vm, Cause::plug());
  spawn(attach_when_possible(d, match->target_vm, Cause::plug()), "a PCI plug");
}

void PciPassthrough::unplugged(const PciDevice& d) {
  placements_.unwant(d, Cause::unplug());
  if (auto vm = placements_.record_detached(d, Cause::unplug())) {
    manager_.publish(PciDetached{d, *vm});
    if (auto* v = owner_.vm(*vm); v && v->running()) {
      auto detach_gone = [](Vm* v, PciDevice d, std::string vm) -> asio::awaitable<void> {
        auto error = co_await error_of(v->detach_pci(held_at(d.address)));
        if (!error.empty())
          about(d).vm(vm).warn("pci {}: removed from the host, but taking it out of {} failed: {}", d.address, vm, error);
      };
      spawn(detach_gone(v, d, *vm), "a PCI unplug");
    }
  }
  if (placements_.host_driver(d.address)) {
    try {
      placements_.forget_host_driver(d.address);  // gone from the host: nothing to give back
    } catch (const StateError& e) {
      about(d).error("pci {}: {}", friendly_name(d), e.what());
    }
  }
  manager_.publish(PciDisconnected{d});
}

asio::awaitable<void> PciPassthrough::attach_when_possible(PciDevice d, std::string vm_name, Cause cause) {
  auto* vm = owner_.vm(vm_name);
  if (!vm || vm->unsupported() || !vm->running()) {
    about(d).vm(vm_name).caller(cause.caller)
        .info("pci {}: VM {} is not running{}; attaching when it starts", friendly_name(d), vm_name,
              vm && vm->unsupported() ? " (" + *vm->unsupported() + ")" : "");
    co_return;
  }
  auto error = co_await error_of(attach(d, vm_name, cause));
  if (error.empty()) co_return;
  about(d).vm(vm_name).caller(cause.caller).error("pci {}: attach to {} failed: {}", friendly_name(d), vm_name, error);
  manager_.vm_failed(vm_name, "pci " + friendly_name(d) + ": attach failed: " + error);
}

asio::awaitable<AsyncMutex::Lock> PciPassthrough::group_lock(const PciDevice& d) {
  auto key = d.iommu_group ? "group " + std::to_string(*d.iommu_group) : d.address;
  auto& mutex = group_locks_[key];
  if (!mutex) mutex = std::make_unique<AsyncMutex>(io_.get_executor());
  co_return co_await mutex->lock();
}

asio::awaitable<void> PciPassthrough::bind_host_side(PciDevice d) {
  // The drivers to give back are on disk before anything is unbound, then the whole IOMMU group
  // goes to vfio-pci (a failed binding gives back what it touched itself).
  std::vector<std::string> recorded;
  for (const auto& [member, driver] : vfio_.plan(d.address))
    if (!placements_.host_driver(member)) {
      placements_.remember_host_driver(member, driver);  // throws StateError: nothing was unbound
      recorded.push_back(member);
    }
  auto bind = [](VfioBinding& vfio, std::string address) -> asio::awaitable<void> { co_await vfio.bind_group(address); };
  auto error = co_await error_of(bind(vfio_, d.address));
  if (error.empty()) co_return;
  for (const auto& member : recorded) {
    try {
      placements_.forget_host_driver(member);
    } catch (const StateError& e) {
      about_pci(member).error("pci {}: {}", member, e.what());
    }
  }
  throw VmError(error);
}

asio::awaitable<void> PciPassthrough::prepare_cold_plug(PciDevice d) {
  auto lock = co_await group_lock(d);
  co_await bind_host_side(d);
}

asio::awaitable<void> PciPassthrough::attach(PciDevice d, std::string vm, Cause cause) {
  auto lock = co_await group_lock(d);
  if (auto in = placements_.vm_of(d.address)) {
    if (*in == vm) co_return;  // another attach got there first
    about(d).vm(vm).caller(cause.caller).info("pci {}: moving from {} to {}", friendly_name(d), *in, vm);
    co_await detach_holding_lock(d, cause);
  }
  auto& target = owner_.running_vm(vm);
  auto match = manager_.policy().match_pci(d);
  bool root_bus = match && match->qemu_use_root_bus;

  co_await bind_host_side(d);
  auto error = co_await error_of(target.attach_pci(d, root_bus));
  if (!error.empty()) {
    co_await give_back_if_released(target, d);  // QEMU refused: the host has its device back
    throw VmError(error);
  }
  // What changed while the VM worked wins: an unplug, a user's detach, a reload.
  std::string undone;
  auto now = manager_.policy().match_pci(d);
  if (!manager_.registry().find_pci(d.address)) undone = "was unplugged during the attach";
  else if (placements_.wanted(d.address) != vm) undone = "was detached or moved during the attach";
  else if (!now || now->target_vm != vm) undone = "is no longer allowed on " + vm + " (the config changed during the attach)";
  if (!undone.empty()) {
    auto failed = co_await error_of(target.detach_pci(held_at(d.address)));
    about(d).vm(vm).caller(cause.caller).info("pci {}: {}; taken out of {} again{}", friendly_name(d), undone, vm,
                                              failed.empty() ? "" : " (failed: " + failed + ")");
    if (failed.empty()) give_back_group(d);
    throw VmError("PCI device " + d.address + " " + undone);
  }
  placements_.record_attached(d, vm, cause);
  manager_.publish(PciAttached{d, vm});

  // pciIommuAddAll: the rest of the group goes along (members another VM holds, members with a
  // rule of their own and members the user detached stay where they are). Bridges stay on the host.
  if (!match || !match->iommu_add_all) co_return;
  for (const auto& address : d.iommu_group_members) {
    const auto* member = manager_.registry().find_pci(address);
    if (!member || address == d.address || (member->pci_class == 0x06 && member->pci_subclass == 0x04)) continue;
    if (manager_.policy().match_pci(*member) || placements_.is_disconnected(address)) continue;
    if (auto in = placements_.vm_of(address)) {
      if (*in != vm)
        about(*member).vm(*in).caller(cause.caller)
            .warn("pci {}: in the IOMMU group of {}, but attached to {}; leaving it", address, d.address, *in);
      continue;
    }
    PciDevice m = *member;
    placements_.want(m, vm, cause);
    auto member_error = co_await error_of(target.attach_pci(m, root_bus));
    if (!member_error.empty()) {
      about(m).vm(vm).caller(cause.caller)
          .error("pci {}: attach to {} with its IOMMU group failed: {}", friendly_name(m), vm, member_error);
      continue;
    }
    placements_.record_attached(m, vm, cause);
    manager_.publish(PciAttached{m, vm});
    if (placements_.wanted(d.address) != vm) break;  // detached meanwhile: its detach (waiting for this group) takes the members out
  }
}

asio::awaitable<void> PciPassthrough::give_back_if_released(Vm& vm, PciDevice d) {
  std::vector<VmPciDevice> held;
  std::string why;
  try {
    held = co_await vm.list_pci();
  } catch (const std::exception& e) {
    why = std::string("cannot tell whether ") + vm.name() + " holds it: " + e.what();
  }
  for (const auto& h : held)
    if (std::ranges::find(d.iommu_group_members, h.host) != d.iommu_group_members.end() || h.host == d.address)
      why = vm.name() + " holds " + h.host + " (" + h.id + ")";
  if (!why.empty()) {
    about(d).vm(vm.name()).warn("pci {}: stays on vfio-pci: {}", d.address, why);
    co_return;
  }
  give_back_group(d);
}

asio::awaitable<void> PciPassthrough::detach(PciDevice d, Cause cause) {
  auto lock = co_await group_lock(d);
  co_await detach_holding_lock(std::move(d), std::move(cause));
}

asio::awaitable<void> PciPassthrough::detach_holding_lock(PciDevice d, Cause cause) {
  auto in = placements_.vm_of(d.address);
  if (!in) co_return;
  std::string vm = *in;
  std::vector<PciDevice> leaving{d};
  if (auto match = manager_.policy().match_pci(d); match && match->iommu_add_all)
    for (const auto& address : d.iommu_group_members)
      if (const auto* member = manager_.registry().find_pci(address); member && address != d.address && placements_.vm_of(address) == vm)
        leaving.push_back(*member);
  auto* v = owner_.vm(vm);
  for (const auto& device : leaving) {
    if (v && v->running()) co_await v->detach_pci(held_at(device.address));  // throws: it stays where it is
    if (placements_.record_detached(device, cause)) manager_.publish(PciDetached{device, vm});
    if (device.address != d.address) placements_.unwant(device, cause);
  }
  give_back_group(d);
}

asio::awaitable<void> PciPassthrough::detach_or_log(PciDevice d, Cause cause, const char* what) {
  std::string vm = placements_.vm_of(d.address).value_or("");  // where it is, for the log line
  auto error = co_await error_of(detach(d, cause));
  if (!error.empty()) about(d).vm(vm).caller(cause.caller).error("pci {}: {} failed: {}", friendly_name(d), what, error);
}

void PciPassthrough::give_back_group(const PciDevice& d) {
  std::vector<std::string> members = d.iommu_group_members;
  if (members.empty()) members.push_back(d.address);
  for (const auto& address : members)
    if (auto vm = placements_.vm_of(address)) {
      about(d).vm(*vm).info("pci {}: stays on vfio-pci: {} of its IOMMU group is in {}", d.address, address, *vm);
      return;
    }
  auto match = manager_.policy().match_pci(d);
  if (match && !match->restore_host_driver) {
    about(d).info("pci {}: stays on vfio-pci (restoreHostDriver is off)", d.address);
    return;
  }
  for (const auto& address : members) {
    auto driver = placements_.host_driver(address);
    if (!driver) continue;  // not ours to give back (it was on vfio-pci before us)
    try {
      vfio_.give_back(address, *driver);
      placements_.forget_host_driver(address);
    } catch (const std::exception& e) {
      about_pci(address).error("pci {}: giving it back to {} failed: {}", address, driver->empty() ? "the host" : *driver,
                               e.what());
    }
  }
}

asio::awaitable<void> PciPassthrough::vm_up(std::string name) {
  auto* vm = owner_.vm(name);
  if (!vm) co_return;
  auto cause = Cause::vm_up(name);
  // Adopt what the VM already holds for us, by host address; take out what the user detached
  // (the reference's detach_disconnected_pci) and what no longer belongs; leave others' devices.
  std::vector<VmPciDevice> present;
  try {
    present = co_await vm->list_pci();
  } catch (const std::exception& e) {
    about_vm(name).warn("vm {}: cannot list its PCI devices: {}", name, e.what());
  }
  for (const auto& held : present) {
    std::optional<PciDevice> owner;  // a copy: the registry may change while this awaits
    if (const auto* found = manager_.registry().find_pci(held.host)) owner = *found;
    auto match = owner ? manager_.policy().match_pci(*owner) : std::nullopt;
    bool ours = match ? match->target_vm == name : group_target(held.host) == name;  // a group member has no rule of its own
    bool belongs = owner && ours && !placements_.is_disconnected(held.host) && placements_.wanted(held.host).value_or(name) == name;
    if (belongs) {
      placements_.want(*owner, name, cause);
      if (placements_.vm_of(held.host)) continue;
      about(*owner).vm(name).caller(cause.caller).info("vm {}: already holds {} ({})", name, friendly_name(*owner), held.id);
      placements_.record_attached(*owner, name, cause);
      manager_.publish(PciAttached{*owner, name});
      continue;
    }
    if (!named_by_us_or_the_reference(held)) {
      about_pci(held.host).vm(name)
          .info("vm {}: holds {} (host {}), not added by vhotplug; leaving it", name, held.id, held.host);
      continue;
    }
    about_pci(held.host).vm(name).info("vm {}: removing {} (host {}): {}", name, held.id, held.host,
                                       owner && placements_.is_disconnected(held.host) ? "detached by the user"
                                                                                       : "it no longer belongs there");
    auto error = co_await error_of(vm->detach_pci(held));
    if (!error.empty()) about_pci(held.host).vm(name).warn("vm {}: removing {} failed: {}", name, held.id, error);
    else if (owner) give_back_group(*owner);
  }
  // Then what belongs there and is not there yet, in rule order.
  std::vector<PciDevice> due;
  for (const auto& [d, match] : manager_.pci_matched()) {
    if (placements_.wanted(d.address) != name || placements_.vm_of(d.address)) continue;
    if (match.target_vm != name || placements_.is_disconnected(d.address)) {
      placements_.unwant(d, Cause::policy());
      continue;
    }
    due.push_back(d);
  }
  for (const auto& d : due) co_await attach_when_possible(d, name, cause);
}

std::optional<std::string> PciPassthrough::group_target(const std::string& address) const {
  for (const auto& [d, match] : manager_.pci_matched())
    if (match.iommu_add_all && !placements_.is_disconnected(d.address) &&
        std::ranges::find(d.iommu_group_members, address) != d.iommu_group_members.end())
      return match.target_vm;
  return std::nullopt;
}

void PciPassthrough::vm_down(const std::string& name) {
  // Still wanted there: attached again when the VM is back; meanwhile they stay on vfio-pci.
  for (const auto& address : placements_.attached_to(name))
    if (const auto* d = manager_.registry().find_pci(address)) {
      PciDevice device = *d;
      if (placements_.record_detached(device, Cause::vm_down(name))) manager_.publish(PciDetached{device, name});
    }
}

void PciPassthrough::reapply_policy() {
  for (const auto& d : manager_.registry().pci_devices()) spawn(reapply(d), "re-applying the rules");
}

asio::awaitable<void> PciPassthrough::reapply(PciDevice d) {
  auto match = manager_.policy().match_pci(d);
  auto in = placements_.vm_of(d.address);
  bool listed = match && !match->skips(d);
  if (in && (!match || match->target_vm != *in || !listed)) {
    placements_.unwant(d, Cause::policy());
    co_await detach_or_log(d, Cause::policy(), "taking it out of its VM");
    if (!match || !listed) co_return;
    in = placements_.vm_of(d.address);  // moved to another VM: from here on a newly allowed device
  }
  if (!match || !listed || in || placements_.is_disconnected(d.address)) {
    if (!in && (!match || !listed)) placements_.unwant(d, Cause::policy());
    co_return;
  }
  // Newly allowed devices are attached by a reload only where they would be at start (-a): a PCI
  // device is the host's own until a rule, -a, a plug or a request hands it over.
  if (!attach_connected_ || placements_.wanted(d.address) == match->target_vm) co_return;
  placements_.want(d, match->target_vm, Cause::reload());
  co_await attach_when_possible(d, match->target_vm, Cause::reload());
}

asio::awaitable<CommandResult> PciPassthrough::attach_command(PciAttach command, Cause cause) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  if (s.kind() == PciDeviceSelector::Kind::Tag) {
    // Every device of the tag, the ones the user detached included (the kill switch's "unblock");
    // as the reference, a device's own failure is logged and the answer stays ok.
    for (const auto& d : devices) {
      auto match = manager_.policy().match_pci(d);
      if (!match || match->tag != s.tag) continue;  // the rules changed during an earlier device's attach
      placements_.set_disconnected(d, false, cause);
      placements_.want(d, match->target_vm, cause);
      co_await attach_when_possible(d, match->target_vm, cause);
    }
    co_return CommandResult::ok();
  }
  if (devices.empty()) co_return CommandResult::failed(not_found(s));
  if (devices.size() > 1) co_return CommandResult::failed(ambiguous(devices));
  const auto d = devices.front();
  auto match = manager_.policy().match_pci(d);
  if (!match) co_return CommandResult::failed("No VM found for " + friendly_name(d));
  if (command.vm && *command.vm != match->target_vm)
    co_return CommandResult::failed("Selected VM " + *command.vm + " but target VM is set to " + match->target_vm);
  if (match->skips(d))
    co_return CommandResult::failed("PCI device " + d.address + " shares its IOMMU group and its rule (pciIommuSkipIfShared) keeps it on the host");
  std::string vm = match->target_vm;
  owner_.running_vm(vm);  // the config and type checks, and ours: the VM must be up
  auto before = placements_.wanted(d.address);
  bool was_disconnected = placements_.is_disconnected(d.address);
  placements_.set_disconnected(d, false, cause);  // first: a failed write fails the request before anything moves
  placements_.want(d, vm, cause);
  auto error = co_await error_of(attach(d, vm, cause));
  if (error.empty()) co_return CommandResult::ok();
  manager_.vm_failed(vm, "pci " + friendly_name(d) + ": attach failed: " + error);
  if (placements_.wanted(d.address) == vm) {  // nothing else changed the intent meanwhile: put it back
    if (before) placements_.want(d, *before, cause);
    else placements_.unwant(d, cause);
  }
  if (was_disconnected) {
    try {
      placements_.set_disconnected(d, true, cause);
    } catch (const StateError& e) {
      about(d).vm(vm).caller(cause.caller).error("pci {}: {}", friendly_name(d), e.what());
    }
  }
  co_return CommandResult::failed(error);
}

asio::awaitable<CommandResult> PciPassthrough::detach_command(PciDetach command, Cause cause) {
  const auto& s = command.selector;
  auto devices = manager_.select(s);
  if (s.kind() == PciDeviceSelector::Kind::Tag) {
    for (const auto& d : devices) {  // detached by the user: stays on the host until attached again
      placements_.set_disconnected(d, true, cause);
      placements_.unwant(d, cause);
      co_await detach_or_log(d, cause, "detach");
    }
    co_return CommandResult::ok();
  }
  if (devices.empty()) co_return CommandResult::failed(not_found(s));
  if (devices.size() > 1) co_return CommandResult::failed(ambiguous(devices));
  const auto d = devices.front();
  // Not attached and not on its way: nothing changes, as the reference.
  if (!placements_.vm_of(d.address) && !placements_.wanted(d.address))
    co_return CommandResult::failed("Device " + friendly_name(d) + " is not attached to any VM");
  placements_.set_disconnected(d, true, cause);
  placements_.unwant(d, cause);
  co_await detach(d, cause);
  co_return CommandResult::ok();
}

asio::awaitable<CommandResult> PciPassthrough::suspend_command(PciSuspend command, Cause cause) {
  std::vector<PciDevice> leaving;
  for (const auto& [d, match] : manager_.pci_matched()) {
    auto in = placements_.vm_of(d.address);
    if (!in && placements_.wanted(d.address) && (!command.vm || *command.vm == *placements_.wanted(d.address)) && !match.skip_on_suspend) {
      placements_.unwant(d, cause);  // on its way: its attach is undone when it ends
      continue;
    }
    if (!in || (command.vm && *command.vm != *in)) continue;
    if (match.skip_on_suspend) {
      about(d).vm(*in).caller(cause.caller).info("pci {}: stays in {} over the suspend (skipOnSuspend)", friendly_name(d), *in);
      continue;
    }
    leaving.push_back(d);
  }
  for (const auto& d : leaving) {  // not the user's detach: nothing is persisted
    placements_.unwant(d, cause);
    co_await detach_or_log(d, cause, "suspend");
  }
  co_return CommandResult::ok();
}

asio::awaitable<CommandResult> PciPassthrough::resume_command(PciResume command, Cause cause) {
  std::string failures;
  for (const auto& [d, match] : manager_.pci_matched()) {
    if (placements_.is_disconnected(d.address) || (command.vm && *command.vm != match.target_vm)) continue;
    if (placements_.vm_of(d.address) == match.target_vm) continue;
    placements_.want(d, match.target_vm, cause);
    if (auto* target = owner_.vm(match.target_vm); !target || target->unsupported() || !target->running()) {  // not a failed attach
      about(d).vm(match.target_vm).caller(cause.caller)
          .info("pci {}: resume: VM {} cannot take it now; it stays wanted there", friendly_name(d), match.target_vm);
      continue;
    }
    auto error = co_await error_of(attach(d, match.target_vm, cause));
    if (error.empty()) continue;
    about(d).vm(match.target_vm).caller(cause.caller)
        .error("pci {}: resume: attach to {} failed: {}", friendly_name(d), match.target_vm, error);
    failures += (failures.empty() ? "" : "; ") + error;
  }
  if (!failures.empty()) co_return CommandResult::failed(failures);
  co_return CommandResult::ok();
}

}  // namespace vhp
