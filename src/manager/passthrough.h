#pragma once
// Puts devices where the policy says, as they come and go and as VMs come and go, and runs the
// API's attach and detach requests. Lives on the event loop; VM operations are serialised per VM
// by QemuVm, different VMs proceed in parallel.
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "manager/device_manager.h"
#include "vmm/qemu_vm.h"

namespace vhp {

class Passthrough {
 public:
  // `attach_connected` (-a): devices present at start are handled as if just plugged, except that a
  // device whose rule offers several VMs goes to the user's saved choice or else the first (as the reference).
  Passthrough(boost::asio::io_context& io, DeviceManager& manager, bool attach_connected, QemuTimeouts timeouts = {});
  ~Passthrough();
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // Connects to the config's QEMU VMs and starts following devices. Call after the registry's first scan.
  void start();
  void stop();

  // Runs an API request; never throws: failures are {"result":"failed","error":…}.
  boost::asio::awaitable<nlohmann::ordered_json> run(const Command& command);

 private:
  void on_device_event(const DeviceEvent& event);
  boost::asio::awaitable<void> plugged(UsbDevice d, bool at_start);
  boost::asio::awaitable<void> unplugged(UsbDevice d);
  boost::asio::awaitable<void> vm_up(std::string vm);
  void vm_down(const std::string& vm);

  // Attach to `vm` (moving it from another VM first); publishes usb_attached. Throws VmError.
  boost::asio::awaitable<void> attach(const UsbDevice& d, const std::string& vm);
  // Detach from whichever VM has it; publishes usb_detached. No-op when not attached. Throws VmError.
  boost::asio::awaitable<void> detach(const UsbDevice& d);
  // detach(), logging instead of throwing.
  boost::asio::awaitable<void> detach_or_log(const UsbDevice& d, const char* what);
  // attach(), logging instead of throwing, and quietly waiting for a VM that is not up yet.
  boost::asio::awaitable<void> attach_when_possible(UsbDevice d, std::string vm);

  boost::asio::awaitable<nlohmann::ordered_json> attach_command(const UsbAttach& command);
  boost::asio::awaitable<nlohmann::ordered_json> detach_command(const UsbDetach& command);
  QemuVm& running_vm(const std::string& name);  // throws VmError with the reference's texts
  // The user's saved VM if the rule still allows it; autoselect: that, else the first allowed VM.
  std::optional<std::string> saved_choice(const UsbDevice& d, const UsbMatch& match) const;
  std::string autoselect(const UsbDevice& d, const UsbMatch& match) const;

  boost::asio::io_context& io_;
  DeviceManager& manager_;
  bool attach_connected_;
  QemuTimeouts timeouts_;
  std::map<std::string, std::unique_ptr<QemuVm>> vms_;
  Subscription devices_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vhp
