#pragma once
// PCI devices where the policy says: bound to vfio-pci on the host (VfioBinding), hot-plugged into
// their rule's VM, given back to their host driver when no VM holds their IOMMU group any more.
// Driven by Passthrough (which owns the VMs) on the event loop: PCI uevents, VMs coming and going,
// the API's pci_attach / pci_detach. An attach re-checks the intent when the VM answers: a detach
// that arrived meanwhile wins.
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/async_mutex.h"
#include "device/vfio_binding.h"
#include "manager/caller.h"
#include "manager/commands.h"
#include "manager/device_manager.h"
#include "vmm/vm.h"

namespace vhp {

class Passthrough;

class PciPassthrough {
 public:
  PciPassthrough(boost::asio::io_context& io, Passthrough& owner, DeviceManager& manager, VfioBinding& vfio, bool attach_connected);
  ~PciPassthrough();

  // -a: every device a rule sends to a VM (and the user has not detached) belongs there.
  void start();
  void plugged(const PciDevice& d);
  void unplugged(const PciDevice& d);
  boost::asio::awaitable<void> vm_up(std::string vm);
  void vm_down(const std::string& vm);
  void reapply_policy();

  boost::asio::awaitable<CommandResult> attach_command(PciAttach command, Cause cause);
  boost::asio::awaitable<CommandResult> detach_command(PciDetach command, Cause cause);
  // Host suspend: attached devices leave their VMs (and go back to their host drivers, which
  // suspend them properly), except skipOnSuspend ones; resume: the reference's attach_connected_pci,
  // failing with the reason when a device cannot be attached (Ghaf then restarts the VM).
  boost::asio::awaitable<CommandResult> suspend_command(PciSuspend command, Cause cause);
  boost::asio::awaitable<CommandResult> resume_command(PciResume command, Cause cause);
  // Binds the device's IOMMU group to vfio-pci for a VM that opens it at start (vmm_args). Throws.
  boost::asio::awaitable<void> prepare_cold_plug(PciDevice d);

 private:
  // Binds the device's IOMMU group to vfio-pci, hot-plugs it (and with pciIommuAddAll the rest of
  // its group) into `vm`; publishes PciAttached. Throws with the reference's texts. Operations on
  // one IOMMU group run one at a time (group_lock), so a quick detach-attach keeps its order.
  boost::asio::awaitable<void> attach(PciDevice d, std::string vm, Cause cause);
  // Takes it (with pciIommuAddAll, its group) out of its VM, publishes PciDetached, and gives the
  // group back to its host drivers once no VM holds any of it. No-op when not attached. Throws.
  boost::asio::awaitable<void> detach(PciDevice d, Cause cause);
  boost::asio::awaitable<void> detach_holding_lock(PciDevice d, Cause cause);
  // Host drivers remembered (on disk), then the group bound to vfio-pci. Throws VmError.
  boost::asio::awaitable<void> bind_host_side(PciDevice d);
  boost::asio::awaitable<AsyncMutex::Lock> group_lock(const PciDevice& d);
  // After a failed hot-plug: gives the group back only once the VM is seen holding none of it
  // (QEMU may still have the device open: unbinding it then would block in the kernel).
  boost::asio::awaitable<void> give_back_if_released(Vm& vm, PciDevice d);
  // The VM a pciIommuAddAll rule sends `address`'s group to, when `address` is one of its members.
  std::optional<std::string> group_target(const std::string& address) const;
  boost::asio::awaitable<void> detach_or_log(PciDevice d, Cause cause, const char* what);
  boost::asio::awaitable<void> attach_when_possible(PciDevice d, std::string vm, Cause cause);
  boost::asio::awaitable<void> reapply(PciDevice d);
  // Host drivers back for every member of the group, unless a VM still holds one of them.
  void give_back_group(const PciDevice& d);
  void spawn(boost::asio::awaitable<void> work, const char* what);

  boost::asio::io_context& io_;
  Passthrough& owner_;
  DeviceManager& manager_;
  PciPlacements& placements_;
  VfioBinding& vfio_;
  bool attach_connected_;
  std::map<std::string, std::unique_ptr<AsyncMutex>> group_locks_;  // by IOMMU group (or address)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vhp
