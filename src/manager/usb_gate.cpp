#include "manager/usb_gate.h"

#include <spdlog/spdlog.h>

#include "manager/identity.h"
#include "vmm/vm.h"

namespace vhp {

void UsbGate::set(const UsbDevice& d, bool authorized, const char* why) {
  if (authorizer_.authorized(d) == authorized) return;
  about(d).info("usb {}: {} ({})", friendly_name(d), authorized ? "authorizing" : "deauthorizing", why);
  if (auto error = authorizer_.set(d, authorized)) about(d).warn("usb {}: {}", friendly_name(d), *error);
}

void UsbGate::start() {
  enabled_ = manager_.policy().config().usb_authorization.enable;
  if (!enabled_) return;
  spdlog::info("Enabling USB authorization");
  if (auto problems = authorizer_.deny_by_default(); !problems.empty()) spdlog::warn("usb authorization: {}", problems);
  bool sweep = manager_.policy().config().usb_authorization.deauthorize_unmatched;
  for (const auto& d : manager_.registry().usb_devices()) {
    if (d.is_hub) set(d, true, "a hub");
    else if (manager_.policy().usb_host_allowed(d)) set(d, true, "hostAllow");
    else if (!sweep || manager_.policy().match_usb(d)) continue;  // a rule's device: in its VM, or on its way
    else if (auto why = manager_.held_by_host(d)) about(d).info("usb {}: keeping it authorized: {}", friendly_name(d), *why);
    else set(d, false, "no rule sends it to a VM");
  }
}

void UsbGate::plugged(const UsbDevice& d) {
  if (!enabled()) return;
  if (d.is_hub) set(d, true, "a hub");
  else if (manager_.policy().usb_host_allowed(d)) set(d, true, "hostAllow");
  else if (manager_.held_by_host(d)) set(d, true, "the host's own disk, back after a re-enumeration");
}

void UsbGate::before_attach(const UsbDevice& d) {
  if (!enabled() || authorizer_.authorized(d) == true) return;
  about(d).info("usb {}: authorizing (on its way to a VM)", friendly_name(d));
  if (auto error = authorizer_.set(d, true)) {
    about(d).warn("usb {}: {}", friendly_name(d), *error);
    throw VmError("Failed to authorize " + friendly_name(d));
  }
}

void UsbGate::attach_failed(const UsbDevice& d) {
  // Still in another VM (a move whose detach failed, an attach that lost a race): it stays authorized.
  if (enabled() && manager_.registry().find_usb(d.sys_path) && !manager_.placements().attachment(d))
    set(d, false, "its VM did not take it");
}

void UsbGate::left_vm(const UsbDevice& d) {
  if (!enabled() || !manager_.registry().find_usb(d.sys_path)) return;
  if (manager_.policy().usb_host_allowed(d)) set(d, true, "hostAllow");
  else set(d, false, "it left its VM");
}

}  // namespace vhp
