#include "vmm/vm_factory.h"

namespace vhp {
namespace {

class UnsupportedVm : public Vm {
 public:
  UnsupportedVm(std::string name, std::string reason) : Vm(std::move(name)), reason_(std::move(reason)) {}
  void start() override {}
  void stop() override {}
  bool running() const override { return false; }
  std::optional<std::string> unsupported() const override { return reason_; }
  // Coroutines (not plain throws), so the failure surfaces where the caller awaits it.
  boost::asio::awaitable<void> attach_usb(UsbDevice) override {
    throw VmError(reason_);
    co_return;
  }
  boost::asio::awaitable<void> detach_usb(VmUsbDevice) override {
    throw VmError(reason_);
    co_return;
  }
  boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() override {
    throw VmError(reason_);
    co_return std::vector<VmUsbDevice>{};
  }
  boost::asio::awaitable<void> attach_pci(PciDevice, bool) override {
    throw VmError(reason_);
    co_return;
  }
  boost::asio::awaitable<void> detach_pci(VmPciDevice) override {
    throw VmError(reason_);
    co_return;
  }
  boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() override {
    throw VmError(reason_);
    co_return std::vector<VmPciDevice>{};
  }
  boost::asio::awaitable<void> attach_evdev(EvdevDevice) override {
    throw VmError(reason_);
    co_return;
  }
  boost::asio::awaitable<void> detach_evdev(EvdevDevice) override {
    throw VmError(reason_);
    co_return;
  }

 private:
  std::string reason_;
};

}  // namespace

std::unique_ptr<Vm> make_vm(boost::asio::io_context& io, const VmConfig& config, const VmOptions& options) {
  if (config.type == "qemu") return std::make_unique<QemuVm>(io, config.name, config.socket, options.qemu);
  if (config.type == "cloud-hypervisor") {
    if (config.socket.empty())  // enough for vmm_args; nothing to hot-plug through
      return std::make_unique<UnsupportedVm>(config.name, "VM " + config.name + " has no API socket in the config (vms[].socket)");
    return std::make_unique<CloudHypervisorVm>(io, config.name, config.socket, options.cloud_hypervisor);
  }
  if (config.type == "crosvm") return std::make_unique<CrosvmVm>(io, config.name, config.socket, options.crosvm_binary, options.crosvm,
                                      options.crosvm_usb_ports);
  return std::make_unique<UnsupportedVm>(config.name, "Unsupported vm type: " + config.type);
}

VmFactory default_vm_factory(boost::asio::io_context& io, VmOptions options) {
  return [&io, options](const VmConfig& config) { return make_vm(io, config, options); };
}

}  // namespace vhp
