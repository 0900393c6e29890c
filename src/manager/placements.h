#pragma once
// Where each USB device is and where it should be, behind named operations: attached (this very
// plug of a device, in which VM), wanted (the VM it belongs on; re-attached when that VM comes
// up), a pending choice (the user has to pick a VM), and what the user decided (saved choice,
// detached: persisted in the state file). Every change is logged once with its cause.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "device/usb_device.h"
#include "manager/caller.h"
#include "manager/state_store.h"

namespace vhp {

// A device in a VM. The address tells this plug of the device from an earlier one at the same port.
struct Attachment {
  std::string vm;
  int busnum = 0, devnum = 0;
  bool is(const UsbDevice& d) const { return busnum == d.busnum && devnum == d.devnum; }
};

class Placements {
 public:
  explicit Placements(StateStore& store) : store_(store) {}

  // Attached: of this very plug of the device.
  const Attachment* attachment(const UsbDevice& d) const;
  void record_attached(const UsbDevice& d, const std::string& vm, const Cause& cause);
  // Forgets the attachment at the device's port, whichever plug it was; returns it.
  std::optional<Attachment> record_detached(const UsbDevice& d, const Cause& cause);
  std::vector<std::string> attached_to(const std::string& vm) const;  // sys_paths
  // Counts the attachments recorded and forgotten: the same number, the same attachments.
  std::uint64_t attachments_version() const { return attachments_version_; }
  std::uint64_t store_version() const { return store_.version(); }  // the user's choices and disconnections

  // Wanted: the VM a device belongs on (intent; an operation in flight re-checks it when it ends).
  std::optional<std::string> wanted(const UsbDevice& d) const;
  void want(const UsbDevice& d, const std::string& vm, const Cause& cause);
  void unwant(const UsbDevice& d, const Cause& cause);
  std::vector<std::string> wanted_on(const std::string& vm) const;  // sys_paths

  // A choice the user has to make.
  void ask(const UsbDevice& d, std::vector<std::string> allowed_vms);
  void answered(const UsbDevice& d);
  const std::map<std::string, std::vector<std::string>>& pending() const { return pending_; }

  // Taken out of `vm` for a host suspend: usb_resume puts it back there, whatever its address then.
  void suspended(const UsbDevice& d, const std::string& vm);
  std::optional<std::string> take_suspended(const UsbDevice& d);  // and forgets it
  void forget_suspended() { suspended_.clear(); }

  // The device is gone: nothing runtime about it stays (the persisted choices do).
  void unplugged(const UsbDevice& d);

  // Persisted. A device the user detached stays on the host until attached again.
  bool is_disconnected(const UsbDevice& d) const;
  void set_disconnected(const UsbDevice& d, bool disconnected, const Cause& cause);
  std::optional<std::string> saved_choice(const UsbDevice& d) const;
  void save_choice(const UsbDevice& d, const std::string& vm, const Cause& cause);
  // Entries the reference wrote for serial-less devices ("usb-<vid>:<pid>:None") are rewritten in
  // our identity for these devices, once. Throws StateError when that cannot be written.
  void migrate_reference_ids(const std::vector<UsbDevice>& devices);

 private:
  StateStore& store_;
  std::map<std::string, Attachment> attached_;                  // sys_path →
  std::map<std::string, std::string> wanted_;                   // sys_path → VM
  std::map<std::string, std::vector<std::string>> pending_;     // sys_path → allowed VMs
  std::map<std::string, std::string> suspended_;                // persistent id → VM
  std::uint64_t attachments_version_ = 0;
};

}  // namespace vhp
