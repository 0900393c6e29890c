#include "support/fake_vm.h"

#include <algorithm>

namespace vhp::test {

namespace asio = boost::asio;

void FakeVm::start() {
  stopped_ = false;
  if (up_) announce_up();
}

void FakeVm::hold_attaches() { gate_ = std::make_shared<AsyncEvent>(io_.get_executor()); }

void FakeVm::hold_detaches() { detach_gate_ = std::make_shared<AsyncEvent>(io_.get_executor()); }

void FakeVm::release() {
  if (gate_) gate_->set();
  gate_.reset();
  if (detach_gate_) detach_gate_->set();
  detach_gate_.reset();
}

void FakeVm::go_down() {
  up_ = false;
  ++generation_;
  held_.clear();
  held_pci_.clear();
  held_evdev_.clear();
  release();
  announce_down();
}

void FakeVm::come_up() {
  up_ = true;
  announce_up();
}

bool FakeVm::holds(int busnum, int devnum) const {
  return std::ranges::any_of(held_, [&](const VmUsbDevice& d) { return d.hostbus == busnum && d.hostaddr == devnum; });
}

asio::awaitable<void> FakeVm::begin_attach() {
  if (!running()) throw VmError("VM " + name() + " is not running");
  ++attaches_started_;
  int generation = generation_;
  if (auto gate = gate_)
    while (!co_await gate->wait(std::chrono::hours(1))) {
    }
  if (generation != generation_ || !running()) throw VmError("VM " + name() + " went away during device_add");
  if (auto error = std::exchange(fail_next_, std::nullopt)) throw VmError(*error);
}

asio::awaitable<void> FakeVm::attach_usb(UsbDevice device) {
  auto lock = co_await operations_.lock();
  if (on_usb_attach) on_usb_attach(device);
  co_await begin_attach();
  if (!holds(device.busnum, device.devnum))
    held_.push_back({"fake-" + std::to_string(device.busnum) + "-" + std::to_string(device.devnum), device.busnum, device.devnum, true});
  ++attaches_done_;
}

asio::awaitable<void> FakeVm::detach_usb(VmUsbDevice device) {
  auto lock = co_await operations_.lock();
  if (!running()) throw VmError("VM " + name() + " is not running");
  std::erase_if(held_, [&](const VmUsbDevice& d) { return d.hostbus == device.hostbus && d.hostaddr == device.hostaddr; });
}

asio::awaitable<std::vector<VmUsbDevice>> FakeVm::list_usb() {
  auto lock = co_await operations_.lock();
  if (!running()) throw VmError("VM " + name() + " is not running");
  co_return held_;
}

bool FakeVm::holds_pci(const std::string& host) const {
  return std::ranges::any_of(held_pci_, [&](const VmPciDevice& d) { return d.host == host; });
}

asio::awaitable<void> FakeVm::attach_pci(PciDevice device, bool root_bus) {
  auto lock = co_await operations_.lock();
  co_await begin_attach();
  last_pci_root_bus_ = root_bus;
  if (!holds_pci(device.address)) held_pci_.push_back({"vhp-pci-fake-" + device.address, device.address});
  ++attaches_done_;
}

asio::awaitable<void> FakeVm::detach_pci(VmPciDevice device) {
  auto lock = co_await operations_.lock();
  if (!running()) throw VmError("VM " + name() + " is not running");
  ++pci_detaches_started_;
  if (auto gate = detach_gate_)
    while (!co_await gate->wait(std::chrono::hours(1))) {
    }
  if (auto error = std::exchange(fail_next_detach_, std::nullopt)) throw VmError(*error);
  std::erase_if(held_pci_, [&](const VmPciDevice& d) { return d.host == device.host; });
}

asio::awaitable<std::vector<VmPciDevice>> FakeVm::list_pci() {
  auto lock = co_await operations_.lock();
  if (!running()) throw VmError("VM " + name() + " is not running");
  ++pci_lists_;
  if (auto error = std::exchange(fail_next_list_, std::nullopt)) throw VmError(*error);
  co_return held_pci_;
}

asio::awaitable<void> FakeVm::attach_evdev(EvdevDevice device) {
  auto lock = co_await operations_.lock();
  co_await begin_attach();
  ++evdev_attaches_;
  if (!holds_evdev(device.device_node)) held_evdev_.push_back(device.device_node);
  ++attaches_done_;
}

asio::awaitable<void> FakeVm::detach_evdev(EvdevDevice device) {
  auto lock = co_await operations_.lock();
  if (!running()) throw VmError("VM " + name() + " is not running");
  ++evdev_detaches_started_;
  if (auto gate = detach_gate_)  // it still grabs the node meanwhile, as QEMU until DEVICE_DELETED
    while (!co_await gate->wait(std::chrono::hours(1))) {
    }
  std::erase(held_evdev_, device.device_node);
}

bool FakeVm::holds_evdev(const std::string& device_node) const {
  return std::ranges::find(held_evdev_, device_node) != held_evdev_.end();
}

}  // namespace vhp::test
