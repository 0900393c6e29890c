#pragma once
// An in-process VM that keeps the Vm contract (vmm/vm.h) without a hypervisor, so that every
// passthrough decision can be tested on its own, races included: operations are serialised, an
// attach can be held in flight until the test releases it, made to fail, or cut short by the VM
// going down; the VM can go down and come back (a restart) at any point.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/async_event.h"
#include "common/async_mutex.h"
#include "vmm/vm.h"

namespace vhp::test {

class FakeVm : public Vm {
 public:
  FakeVm(boost::asio::io_context& io, std::string name) : Vm(std::move(name)), io_(io), operations_(io.get_executor()) {}

  void start() override;
  void stop() override { stopped_ = true; }
  bool running() const override { return up_ && !stopped_; }

  boost::asio::awaitable<void> attach_usb(UsbDevice device) override;
  boost::asio::awaitable<void> detach_usb(VmUsbDevice device) override;
  boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() override;
  boost::asio::awaitable<void> attach_pci(PciDevice device, bool root_bus) override;
  boost::asio::awaitable<void> detach_pci(VmPciDevice device) override;
  boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() override;
  boost::asio::awaitable<void> attach_evdev(EvdevDevice device) override;
  boost::asio::awaitable<void> detach_evdev(EvdevDevice device) override;

  // Test controls.
  void hold_attaches();          // attaches from now on wait in flight until release()
  void hold_detaches();          // PCI and input detaches from now on wait in flight (a guest slow to let go) until release()
  void release();                // lets the held attaches and detaches finish
  void fail_next_attach(std::string error) { fail_next_ = std::move(error); }
  std::function<void(const UsbDevice&)> on_usb_attach;  // sees each USB attach as it reaches the VM
  void go_down();                // the VM stops: it holds nothing, operations in flight fail
  void come_up();                // it starts again
  void put(VmUsbDevice device) { held_.push_back(std::move(device)); }  // something it holds already
  void put(VmPciDevice device) { held_pci_.push_back(std::move(device)); }
  void fail_next_detach(std::string error) { fail_next_detach_ = std::move(error); }  // PCI: the guest does not let go
  void fail_next_list(std::string error) { fail_next_list_ = std::move(error); }      // PCI: list_pci

  const std::vector<VmUsbDevice>& held() const { return held_; }
  bool holds(int busnum, int devnum) const;
  bool holds_pci(const std::string& host) const;
  const std::vector<VmPciDevice>& held_pci() const { return held_pci_; }
  bool holds_evdev(const std::string& device_node) const;
  int evdev_attaches() const { return evdev_attaches_; }
  int evdev_detaches_started() const { return evdev_detaches_started_; }
  bool last_pci_root_bus() const { return last_pci_root_bus_; }
  int attaches_started() const { return attaches_started_; }
  int attaches_done() const { return attaches_done_; }
  int pci_lists() const { return pci_lists_; }
  int pci_detaches_started() const { return pci_detaches_started_; }

 private:
  boost::asio::io_context& io_;
  AsyncMutex operations_;
  std::shared_ptr<AsyncEvent> gate_, detach_gate_;
  boost::asio::awaitable<void> begin_attach();  // the shared part: gate, failure, VM going away

  std::optional<std::string> fail_next_, fail_next_detach_, fail_next_list_;
  std::vector<VmUsbDevice> held_;
  std::vector<VmPciDevice> held_pci_;
  std::vector<std::string> held_evdev_;  // device nodes
  int evdev_attaches_ = 0, evdev_detaches_started_ = 0;
  bool last_pci_root_bus_ = false;
  bool up_ = true, stopped_ = true;
  int generation_ = 0;  // changes when the VM goes down: what was in flight is cut short
  int attaches_started_ = 0, attaches_done_ = 0, pci_lists_ = 0, pci_detaches_started_ = 0;
};

}  // namespace vhp::test
