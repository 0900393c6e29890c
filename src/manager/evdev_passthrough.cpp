#include "manager/evdev_passthrough.h"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include "common/log_failure.h"
#include "manager/error_of.h"
#include "manager/identity.h"
#include "manager/passthrough.h"

namespace vhp {

namespace asio = boost::asio;

EvdevPassthrough::EvdevPassthrough(asio::io_context& io, Passthrough& owner, DeviceManager& manager, bool attach_connected,
                                   GrabProbe grabbed_elsewhere)
    : io_(io), owner_(owner), manager_(manager), attach_connected_(attach_connected), grabbed_elsewhere_(std::move(grabbed_elsewhere)) {}

EvdevPassthrough::~EvdevPassthrough() { *alive_ = false; }

void EvdevPassthrough::spawn(asio::awaitable<void> work, const char* what) {
  asio::co_spawn(io_, std::move(work), log_failure(std::string("evdev: ") + what));
}

void EvdevPassthrough::start() {  // -a: what is present now belongs in its VM, which gets it when it is seen up
  if (attach_connected_)
    for (const auto& d : manager_.registry().evdev_devices()) wanted_.insert(d.sys_path);
}

void EvdevPassthrough::plugged(const EvdevDevice& d) {
  wanted_.insert(d.sys_path);
  if (auto match = manager_.policy().match_evdev(d)) spawn(attach(d, match->target_vm), "attaching an input device");
}

void EvdevPassthrough::unplugged(const EvdevDevice& d) {
  wanted_.erase(d.sys_path);
  auto& attached = manager_.evdev_attachments();
  auto it = attached.find(d.sys_path);
  if (it == attached.end()) return;
  std::string vm = it->second;
  attached.erase(it);
  spawn(detach(d, vm), "removing an unplugged input device");
}

void EvdevPassthrough::vm_up(const std::string& vm) {
  for (const auto& d : manager_.registry().evdev_devices()) {
    auto match = manager_.policy().match_evdev(d);
    if (match && match->target_vm == vm && wanted_.contains(d.sys_path))
      spawn(attach(d, vm), "attaching an input device to a VM that came up");
  }
}

void EvdevPassthrough::vm_down(const std::string& vm) { std::erase_if(manager_.evdev_attachments(), [&](const auto& a) { return a.second == vm; }); }

void EvdevPassthrough::reapply_policy() {
  for (const auto& d : manager_.registry().evdev_devices()) {
    if (in_flight_.contains(d.sys_path)) continue;  // that attach re-checks the rules when its VM answers
    auto match = manager_.policy().match_evdev(d);
    auto& attached = manager_.evdev_attachments();
    auto it = attached.find(d.sys_path);
    std::optional<std::string> now = it == attached.end() ? std::nullopt : std::optional(it->second);
    if (now && match && match->target_vm == *now) continue;
    if (now) {
      attached.erase(it);
      spawn(move(d, *now, match && wanted_.contains(d.sys_path) ? std::optional(match->target_vm) : std::nullopt),
            "moving an input device the rules now send elsewhere");
    } else if (match && wanted_.contains(d.sys_path)) {
      spawn(attach(d, match->target_vm), "attaching an input device the rules now send");
    }
  }
}

// Out of its old VM first: until QEMU lets the node go, it grabs it, and the next VM's probe would
// take that for "already there".
asio::awaitable<void> EvdevPassthrough::move(EvdevDevice d, std::string from, std::optional<std::string> to) {
  co_await detach(d, from);
  if (to) co_await attach(d, *to);
}

asio::awaitable<void> EvdevPassthrough::attach(EvdevDevice d, std::string vm_name) {
  auto* vm = owner_.vm(vm_name);
  if (!vm || vm->unsupported() || !vm->running()) {
    about(d).vm(vm_name).info("evdev {}: VM {} is not running; it gets the device when it comes up", friendly_name(d), vm_name);
    co_return;
  }
  if (manager_.evdev_attachments().contains(d.sys_path) || !in_flight_.insert(d.sys_path).second) co_return;
  auto alive = alive_;
  std::string next;  // where the rules send it once this attach is over, if elsewhere
  {
    InFlight guard{alive, in_flight_, d.sys_path};
    if (grabbed_elsewhere_(d.device_node)) {
      about(d).vm(vm_name)
          .info("evdev {}: grabbed by another process, likely already in the VM; not adding it again", friendly_name(d));
      co_return;
    }
    about(d).vm(vm_name).info("evdev {}: attaching to {}", friendly_name(d), vm_name);
    auto error = co_await error_of(vm->attach_evdev(d));
    if (!*alive) co_return;
    if (!error.empty()) {
      about(d).vm(vm_name).error("evdev {}: attaching to {} failed: {}", friendly_name(d), vm_name, error);
      manager_.vm_failed(vm_name, "evdev " + friendly_name(d) + ": attach failed: " + error);
      co_return;
    }
    // What changed while the VM worked wins: an unplug, the VM stopping, a reload.
    auto match = manager_.policy().match_evdev(d);
    if (!vm->running()) co_return;  // it went down with the device: it gets it again when it comes up
    if (manager_.registry().find_evdev(d.sys_path) && match && match->target_vm == vm_name) {
      manager_.evdev_attachments()[d.sys_path] = vm_name;
      about(d).vm(vm_name).info("evdev {}: attached to {}", friendly_name(d), vm_name);
      co_return;
    }
    about(d).vm(vm_name).info("evdev {}: unplugged or no longer for {} during the attach; taking it out again", friendly_name(d),
                              vm_name);
    co_await detach(d, vm_name);
    if (!*alive || !match || !manager_.registry().find_evdev(d.sys_path) || !wanted_.contains(d.sys_path)) co_return;
    next = match->target_vm;
  }
  co_await attach(d, next);
}

EvdevPassthrough::InFlight::~InFlight() {
  if (*alive) set.erase(path);
}

asio::awaitable<void> EvdevPassthrough::detach(EvdevDevice d, std::string vm_name) {
  auto* vm = owner_.vm(vm_name);
  if (!vm || !vm->running()) co_return;  // a VM that is down holds nothing
  auto error = co_await error_of(vm->detach_evdev(d));
  if (!error.empty()) about(d).vm(vm_name).error("evdev {}: removing it from {} failed: {}", friendly_name(d), vm_name, error);
  else about(d).vm(vm_name).info("evdev {}: detached from {}", friendly_name(d), vm_name);
}

}  // namespace vhp
