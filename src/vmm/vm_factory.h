#pragma once
// Makes the VM backend for a config entry, from its `type`.
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "policy/config.h"
#include "vmm/cloud_hypervisor_vm.h"
#include "vmm/crosvm_vm.h"
#include "vmm/qemu_vm.h"
#include "vmm/vm.h"

namespace vhp {

struct VmOptions {
  QemuTimeouts qemu;
  CrosvmTimeouts crosvm;
  CloudHypervisorTimeouts cloud_hypervisor;
  std::string crosvm_binary = "crosvm";  // general.crosvm
  std::shared_ptr<CrosvmUsbPortBook> crosvm_usb_ports;  // where crosvm VMs write their USB ports; none: memory only
};

// A type without a runtime backend gets a VM that is never up and whose operations fail with
// "Unsupported vm type: <type>".
std::unique_ptr<Vm> make_vm(boost::asio::io_context& io, const VmConfig& config, const VmOptions& options);

// What the manager uses to make its VMs; tests substitute in-process fakes.
using VmFactory = std::function<std::unique_ptr<Vm>(const VmConfig&)>;
VmFactory default_vm_factory(boost::asio::io_context& io, VmOptions options = {});

}  // namespace vhp
