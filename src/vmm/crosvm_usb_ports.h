#pragma once
// crosvm names a USB device it holds by its port only. The port of each device we give a crosvm VM
// is written in a book that outlives the daemon (the manager keeps it in the state file as
// ghaf-device-manager's `crosvm_usb_ports`), so that a restarted daemon tells which port is which
// device, identical devices included. An entry holds for one run of the VM: its socket generation.
#include <map>
#include <optional>
#include <string>

namespace vhp {

struct CrosvmUsbPort {
  std::string vm;
  int port = 0;
  std::string socket_generation;
  std::string vid, pid;
  std::optional<std::string> serial;
  int busnum = 0, devnum = 0;  // ours: which plug of the device (ghaf-device-manager keeps none)
  bool operator==(const CrosvmUsbPort&) const = default;
};

class CrosvmUsbPortBook {
 public:
  virtual ~CrosvmUsbPortBook() = default;
  virtual std::map<std::string, CrosvmUsbPort> ports() const = 0;  // by USB sys_name (1-2.3)
  virtual void record(const std::string& sys_name, const CrosvmUsbPort& port) = 0;
  virtual void forget(const std::string& sys_name) = 0;
};

}  // namespace vhp
