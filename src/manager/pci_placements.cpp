#include "manager/pci_placements.h"

#include <spdlog/spdlog.h>

#include "device/printable.h"

namespace vhp {

std::string friendly_name(const PciDevice& d) {
  return d.address + " " + d.vid + ":" + d.did + " (" + printable(d.vendor_name.value_or("None")) + " " + printable(d.device_name.value_or("None")) + ")";
}

std::string persistent_id(const PciDevice& d) { return "pci-" + d.address; }

std::optional<std::string> PciPlacements::vm_of(const std::string& address) const {
  auto it = attached_.find(address);
  return it == attached_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

void PciPlacements::record_attached(const PciDevice& d, const std::string& vm, const Cause& cause) {
  attached_[d.address] = vm;
  about(d).vm(vm).caller(cause.caller).info("pci {}: attached to {} ({})", friendly_name(d), vm, cause.text);
}

std::optional<std::string> PciPlacements::record_detached(const PciDevice& d, const Cause& cause) {
  auto it = attached_.find(d.address);
  if (it == attached_.end()) return std::nullopt;
  std::string vm = it->second;
  attached_.erase(it);
  about(d).vm(vm).caller(cause.caller).info("pci {}: detached from {} ({})", friendly_name(d), vm, cause.text);
  return vm;
}

std::vector<std::string> PciPlacements::attached_to(const std::string& vm) const {
  std::vector<std::string> out;
  for (const auto& [address, in] : attached_)
    if (in == vm) out.push_back(address);
  return out;
}

std::optional<std::string> PciPlacements::wanted(const std::string& address) const {
  auto it = wanted_.find(address);
  return it == wanted_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

void PciPlacements::want(const PciDevice& d, const std::string& vm, const Cause& cause) {
  wanted_[d.address] = vm;
  about(d).vm(vm).caller(cause.caller).debug("pci {}: belongs on {} ({})", friendly_name(d), vm, cause.text);
}

void PciPlacements::unwant(const PciDevice& d, const Cause& cause) {
  if (wanted_.erase(d.address))
    about(d).caller(cause.caller).debug("pci {}: belongs on no VM now ({})", friendly_name(d), cause.text);
}

std::vector<std::string> PciPlacements::wanted_on(const std::string& vm) const {
  std::vector<std::string> out;
  for (const auto& [address, on] : wanted_)
    if (on == vm) out.push_back(address);
  return out;
}

bool PciPlacements::is_disconnected(const std::string& address) const {
  return store_.state().disconnected_devices.contains("pci-" + address);
}

void PciPlacements::set_disconnected(const PciDevice& d, bool disconnected, const Cause& cause) {
  if (is_disconnected(d.address) == disconnected) return;
  store_.set_disconnected(persistent_id(d), disconnected);
  about(d).caller(cause.caller)
      .info("pci {}: {} ({})", friendly_name(d),
            disconnected ? "detached by the user: stays on the host until attached again" : "no longer marked as detached by the user",
            cause.text);
}

std::optional<std::string> PciPlacements::host_driver(const std::string& address) const {
  const auto& drivers = store_.state().pci_host_drivers;
  auto it = drivers.find(address);
  return it == drivers.end() ? std::nullopt : std::optional<std::string>(it->second);
}

void PciPlacements::remember_host_driver(const std::string& address, const std::string& driver) {
  store_.update([&](PersistentState& s) { s.pci_host_drivers[address] = driver; });
}

void PciPlacements::forget_host_driver(const std::string& address) {
  store_.update([&](PersistentState& s) { s.pci_host_drivers.erase(address); });
}

}  // namespace vhp
