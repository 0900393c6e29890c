#pragma once
// Puts USB devices where the policy says (and has PciPassthrough do the same for PCI devices), as they come and go and as VMs come and go, and runs the
// API's attach and detach requests. Lives on the event loop. Talks to VMs only through the Vm
// interface (vmm/vm.h), which serialises operations per VM; different VMs proceed in parallel.
// An operation re-checks the intent (Placements::wanted), the device and the policy when it ends:
// what changed while a VM was busy wins (a detach during an attach leaves the device detached).
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "manager/caller.h"
#include "device/evdev_grab.h"
#include "manager/cold_plug.h"
#include "manager/device_manager.h"
#include "manager/evdev_passthrough.h"
#include "manager/pci_passthrough.h"
#include "manager/usb_gate.h"
#include "vmm/vm_factory.h"

namespace vhp {

class Passthrough {
 public:
  // `attach_connected` (-a): devices present at start are handled as if just plugged, except that a
  // device whose rule offers several VMs goes to the user's saved choice or else the first (as the reference).
  Passthrough(boost::asio::io_context& io, DeviceManager& manager, VmFactory make_vm, VfioBinding& vfio, bool attach_connected,
              EvdevPassthrough::GrabProbe evdev_grabbed = evdev_grabbed_elsewhere);
  ~Passthrough();
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // Makes the config's VMs and starts following devices. Call after the registry's first scan.
  void start();
  void stop();

  // Runs an API request; never throws.
  boost::asio::awaitable<CommandResult> run(Command command, Caller caller);  // by value: a coroutine outlives its caller's temporaries

  Vm* vm(const std::string& name);
  Vm& running_vm(const std::string& name);  // throws VmError with the reference's texts
  Vm& usb_vm(const std::string& name);      // running_vm, and one that can take USB devices

  // After a reload: what the rules no longer allow leaves its VM, what they now allow arrives as on
  // a plug (without usb_connected), pending choices and wishes they no longer allow are dropped.
  void reapply_policy();

 private:
  void on_device_event(const DeviceEvent& event);
  enum class Arrival { Plug, Start, Reload };
  boost::asio::awaitable<void> plugged(UsbDevice d, Arrival arrival);
  boost::asio::awaitable<void> reapply(UsbDevice d);
  boost::asio::awaitable<void> unplugged(UsbDevice d);
  boost::asio::awaitable<void> vm_up(std::string vm);
  void vm_down(const std::string& vm);

  // Coroutines take their arguments by value: they start later than the call that makes them.
  // Attach to `vm` (moving it from another VM first); publishes UsbAttached. Throws VmError.
  boost::asio::awaitable<void> attach(UsbDevice d, std::string vm, Cause cause);
  // Detach from whichever VM has it; publishes UsbDetached. No-op when not attached. Throws VmError.
  boost::asio::awaitable<void> detach(UsbDevice d, Cause cause);
  boost::asio::awaitable<void> detach_or_log(UsbDevice d, Cause cause, const char* what);
  // attach(), logging instead of throwing, and quietly waiting for a VM that is not up yet.
  boost::asio::awaitable<void> attach_when_possible(UsbDevice d, std::string vm, Cause cause);

  boost::asio::awaitable<CommandResult> attach_command(UsbAttach command, Cause cause);
  boost::asio::awaitable<CommandResult> detach_command(UsbDetach command, Cause cause);
  boost::asio::awaitable<CommandResult> suspend_command(UsbSuspend command, Cause cause);
  // What the suspend took (found by identity, whatever its address now) and what was on its way to
  // a VM goes back, if the rules still allow it and the user has not detached it; no prompt.
  boost::asio::awaitable<CommandResult> resume_command(UsbResume command, Cause cause);
  // The user's saved VM if the rule still allows it; autoselect: that, else the first allowed VM.
  std::optional<std::string> saved_choice(const UsbDevice& d, const UsbMatch& match) const;
  std::string autoselect(const UsbDevice& d, const UsbMatch& match) const;
  void spawn(boost::asio::awaitable<void> work, const char* what);
  void migrate_reference_ids(const std::vector<UsbDevice>& devices);  // logs instead of throwing

  boost::asio::io_context& io_;
  DeviceManager& manager_;
  Placements& placements_;
  VmFactory make_vm_;
  bool attach_connected_;
  std::map<std::string, std::unique_ptr<Vm>> vms_;
  PciPassthrough pci_;
  EvdevPassthrough evdev_;
  ColdPlug cold_plug_;
  UsbGate gate_;
  Subscription devices_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
};

}  // namespace vhp
