#pragma once
// The crosvm VMs' USB port book in the state file, under ghaf-device-manager's key and shape:
// "crosvm_usb_ports": {sys_name: {vm, port, socket_generation, vid, pid, serial}}, plus ours
// (busnum, devnum). An entry that is not of that shape is left as it is and not used. A change
// that cannot be written is logged: the attachment itself stands.
#include "manager/state_store.h"
#include "vmm/crosvm_usb_ports.h"

namespace vhp {

class StoredCrosvmUsbPorts : public CrosvmUsbPortBook {
 public:
  explicit StoredCrosvmUsbPorts(StateStore& store) : store_(store) {}
  std::map<std::string, CrosvmUsbPort> ports() const override;
  void record(const std::string& sys_name, const CrosvmUsbPort& port) override;
  void forget(const std::string& sys_name) override;

  static constexpr const char* kKey = "crosvm_usb_ports";

 private:
  void change(const std::string& sys_name, const std::optional<CrosvmUsbPort>& port);
  StateStore& store_;
};

}  // namespace vhp
