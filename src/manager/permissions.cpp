#include "manager/permissions.h"

#include <algorithm>
#include <stdexcept>

#include <grp.h>
#include <pwd.h>

#include <boost/asio/ip/address.hpp>

#include "manager/identity.h"
#include "manager/device_manager.h"

namespace vhp {
namespace ip = boost::asio::ip;

namespace {

unsigned user_id(const Principal& p, const std::string& path) {
  if (p.id) return *p.id;
  if (passwd* pw = ::getpwnam(p.name.c_str())) return pw->pw_uid;
  throw std::runtime_error(path + ".users: no user named '" + p.name + "'");
}

unsigned group_id(const Principal& p, const std::string& path) {
  if (p.id) return *p.id;
  if (group* gr = ::getgrnam(p.name.c_str())) return gr->gr_gid;
  throw std::runtime_error(path + ".groups: no group named '" + p.name + "'");
}

// "10.0.0.0/8", or one address as a network of one.
void add_network(const std::string& text, std::vector<ip::network_v4>& v4, std::vector<ip::network_v6>& v6) {
  auto slash = text.find('/');
  auto address = ip::make_address(text.substr(0, slash));  // the config reader checked the syntax
  if (address.is_v4()) {
    auto bits = slash == std::string::npos ? 32 : std::stoi(text.substr(slash + 1));
    v4.push_back(ip::make_network_v4(address.to_v4(), static_cast<unsigned short>(bits)).canonical());
  } else {
    auto bits = slash == std::string::npos ? 128 : std::stoi(text.substr(slash + 1));
    v6.push_back(ip::make_network_v6(address.to_v6(), static_cast<unsigned short>(bits)).canonical());
  }
}

std::string vm_list(const std::set<std::string>& vms) {
  std::string out;
  for (const auto& vm : vms) out += (out.empty() ? "" : ", ") + vm;
  return out.empty() ? "none" : out;
}

// A device is the caller's to act on when it is in one of its VMs, or in none and its rule offers one.
std::optional<std::string> device_denial(const Grant& grant, const std::string& what, const std::string& name,
                                         const std::optional<std::string>& in, const std::vector<std::string>& offered) {
  if (in) {
    if (grant.manages(*in)) return std::nullopt;
    return what + " of " + name + ": it is in VM " + *in + ", not one of yours (" + vm_list(*grant.vms) + ")";
  }
  if (grant.manages_any(offered)) return std::nullopt;
  return what + " of " + name + ": its rules give it to none of your VMs (" + vm_list(*grant.vms) + ")";
}

std::optional<std::string> target_denial(const Grant& grant, const std::string& what, const std::string& name,
                                         const std::vector<std::string>& targets) {
  for (const auto& vm : targets)
    if (!grant.manages(vm)) return what + " of " + name + " to VM " + vm + ", not one of yours (" + vm_list(*grant.vms) + ")";
  return std::nullopt;
}

std::optional<std::string> vm_denial(const Grant& grant, const std::string& what, const std::optional<std::string>& vm) {
  if (!vm) return what + " of every VM: name one of yours (" + vm_list(*grant.vms) + ")";
  if (grant.manages(*vm)) return std::nullopt;
  return what + " of VM " + *vm + ", not one of yours (" + vm_list(*grant.vms) + ")";
}

// The VMs a device's rule could send it to (none without a rule).
std::vector<std::string> offered(const Policy& policy, const UsbDevice& d) {
  auto match = policy.match_usb(d);
  return match ? match->vms() : std::vector<std::string>{};
}
std::vector<std::string> offered(const Policy& policy, const PciDevice& d) {
  auto match = policy.match_pci(d);
  return match ? std::vector<std::string>{match->target_vm} : std::vector<std::string>{};
}

std::optional<std::string> usb_where(const DeviceManager& m, const UsbDevice& d) {
  if (const auto* a = m.placements().attachment(d)) return a->vm;
  return m.placements().wanted(d);
}

std::optional<std::string> pci_where(const DeviceManager& m, const PciDevice& d) {
  if (auto vm = m.pci_placements().vm_of(d.address)) return vm;
  return m.pci_placements().wanted(d.address);
}

}  // namespace

bool Grant::manages_any(const std::vector<std::string>& names) const {
  return std::ranges::any_of(names, [&](const std::string& vm) { return manages(vm); });
}

Permissions::Permissions(const std::vector<ApiPermission>& entries) : configured_(true) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    auto path = "general.api.permissions[" + std::to_string(i) + "]";
    Entry entry;
    for (const auto& u : e.users) entry.uids.insert(user_id(u, path));
    for (const auto& g : e.groups) entry.gids.insert(group_id(g, path));
    entry.cids.insert(e.cids.begin(), e.cids.end());
    for (const auto& a : e.addresses) add_network(a, entry.v4, entry.v6);
    entry.matches_everyone = e.users.empty() && e.groups.empty() && e.cids.empty() && e.addresses.empty();
    Grant grant{path, {}, std::nullopt};
    for (const auto& a : e.actions) {
      if (a == "*") grant.rights.insert(kApiActions.begin(), kApiActions.end());
      else grant.rights.insert(a);
    }
    auto vms = e.vms ? *e.vms : e.vm ? std::vector<std::string>{*e.vm} : std::vector<std::string>{"*"};
    if (std::ranges::find(vms, "*") == vms.end()) grant.vms = std::set<std::string>(vms.begin(), vms.end());
    entry.grant = std::make_shared<const Grant>(std::move(grant));
    entries_.push_back(std::move(entry));
  }
}

bool Permissions::Entry::matches(const Caller& caller) const {
  if (matches_everyone) return true;
  if (caller.uid && uids.contains(*caller.uid)) return true;
  if (std::ranges::any_of(caller.groups, [&](gid_t g) { return gids.contains(g); })) return true;
  if (caller.cid && cids.contains(*caller.cid)) return true;
  if (!caller.ip) return false;
  boost::system::error_code ec;
  auto address = ip::make_address(*caller.ip, ec);
  if (ec) return false;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) address = ip::make_address_v4(ip::v4_mapped, address.to_v6());
  if (address.is_v4())
    return std::ranges::any_of(v4, [&](const auto& n) { return n == ip::make_network_v4(address.to_v4(), n.prefix_length()).canonical(); });
  return std::ranges::any_of(v6, [&](const auto& n) { return n == ip::make_network_v6(address.to_v6(), n.prefix_length()).canonical(); });
}

std::shared_ptr<const Grant> Permissions::grant_for(const Caller& caller) const {
  if (!configured_) return nullptr;
  for (const auto& e : entries_)
    if (e.matches(caller)) return e.grant;
  return nothing_;
}

std::optional<std::string> scope_denial(const DeviceManager& m, const Grant& grant, const Command& command) {
  if (grant.everywhere()) return std::nullopt;
  const auto& policy = m.policy();
  if (const auto* a = std::get_if<UsbAttach>(&command)) {
    for (const auto& d : m.select(a->selector)) {
      auto vms = offered(policy, d);
      if (auto why = device_denial(grant, "usb_attach", friendly_name(d), usb_where(m, d), vms)) return why;
      // Where it would go: the VM asked for, else every VM its rule may send it to.
      if (auto why = target_denial(grant, "usb_attach", friendly_name(d), a->vm ? std::vector<std::string>{*a->vm} : vms)) return why;
    }
    return std::nullopt;
  }
  if (const auto* d = std::get_if<UsbDetach>(&command)) {
    for (const auto& device : m.select(d->selector))
      if (auto why = device_denial(grant, "usb_detach", friendly_name(device), usb_where(m, device), offered(policy, device))) return why;
    return std::nullopt;
  }
  if (const auto* a = std::get_if<PciAttach>(&command)) {
    for (const auto& d : m.select(a->selector)) {
      auto vms = offered(policy, d);
      if (auto why = device_denial(grant, "pci_attach", friendly_name(d), pci_where(m, d), vms)) return why;
      if (auto why = target_denial(grant, "pci_attach", friendly_name(d), a->vm ? std::vector<std::string>{*a->vm} : vms)) return why;
    }
    return std::nullopt;
  }
  if (const auto* d = std::get_if<PciDetach>(&command)) {
    for (const auto& device : m.select(d->selector))
      if (auto why = device_denial(grant, "pci_detach", friendly_name(device), pci_where(m, device), offered(policy, device))) return why;
    return std::nullopt;
  }
  if (const auto* s = std::get_if<UsbSuspend>(&command)) return vm_denial(grant, "usb_suspend", s->vm);
  if (const auto* r = std::get_if<UsbResume>(&command)) return vm_denial(grant, "usb_resume", r->vm);
  if (const auto* s = std::get_if<PciSuspend>(&command)) return vm_denial(grant, "pci_suspend", s->vm);
  if (const auto* r = std::get_if<PciResume>(&command)) return vm_denial(grant, "pci_resume", r->vm);
  return vm_denial(grant, "vmm_args", std::get<VmmArgs>(command).vm);
}

bool concerns(const DeviceManager& m, const Grant& grant, const ManagerEvent& event) {
  if (grant.everywhere()) return true;
  auto device = [&](const auto& d, const std::optional<std::string>& vm) {
    return (vm && grant.manages(*vm)) || grant.manages_any(offered(m.policy(), d));
  };
  return std::visit(
      [&](const auto& e) -> bool {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, UsbAttached> || std::is_same_v<E, UsbDetached>) return device(e.device, e.vm);
        else if constexpr (std::is_same_v<E, UsbConnected> || std::is_same_v<E, UsbDisconnected>) return device(e.device, std::nullopt);
        else if constexpr (std::is_same_v<E, UsbSelectVm>) return grant.manages_any(e.allowed_vms);
        else if constexpr (std::is_same_v<E, PciAttached> || std::is_same_v<E, PciDetached>) return device(e.device, e.vm);
        else if constexpr (std::is_same_v<E, PciConnected> || std::is_same_v<E, PciDisconnected>) return device(e.device, std::nullopt);
        else return grant.manages(e.vm);  // VmStarted, VmStopped
      },
      event);
}

}  // namespace vhp
