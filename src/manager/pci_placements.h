#pragma once
// Where each PCI device is and should be, by host address: attached (in which VM), wanted (the VM
// it belongs on; attached when that VM comes up), detached by the user (persisted as the
// reference's "pci-<address>"), and the host driver it had before vfio-pci (persisted, ours), so
// that it can be given back after a daemon restart too. Every change is logged once with its cause.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/log_fields.h"
#include "device/pci_device.h"
#include "manager/caller.h"
#include "manager/state_store.h"

namespace vhp {

// "address vid:did (vendor device)", as the reference's error texts show PCI devices.
std::string friendly_name(const PciDevice& d);
// The reference's state-file identity: "pci-<address>".
std::string persistent_id(const PciDevice& d);
inline LogFields about(const PciDevice& d) { return LogFields().device(persistent_id(d)); }

class PciPlacements {
 public:
  explicit PciPlacements(StateStore& store) : store_(store) {}

  std::optional<std::string> vm_of(const std::string& address) const;
  void record_attached(const PciDevice& d, const std::string& vm, const Cause& cause);
  std::optional<std::string> record_detached(const PciDevice& d, const Cause& cause);  // the VM it was in
  std::vector<std::string> attached_to(const std::string& vm) const;  // addresses

  std::optional<std::string> wanted(const std::string& address) const;
  void want(const PciDevice& d, const std::string& vm, const Cause& cause);
  void unwant(const PciDevice& d, const Cause& cause);
  std::vector<std::string> wanted_on(const std::string& vm) const;  // addresses

  // Persisted. Throws StateError when that cannot be written (nothing changes then).
  bool is_disconnected(const std::string& address) const;
  void set_disconnected(const PciDevice& d, bool disconnected, const Cause& cause);
  std::optional<std::string> host_driver(const std::string& address) const;  // "" = it had none
  void remember_host_driver(const std::string& address, const std::string& driver);
  void forget_host_driver(const std::string& address);

 private:
  StateStore& store_;
  std::map<std::string, std::string> attached_, wanted_;  // address → VM
};

}  // namespace vhp
