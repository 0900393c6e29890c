#pragma once
// A cloud-hypervisor VM over its REST API (HTTP/1.1 on the VM's API socket, Boost.Beast): PCI
// hot-plug with PUT vm.add-device / vm.remove-device, what it holds and whether it runs from GET
// vm.info. Every request on its own connection with a deadline and a bounded answer. It has no USB
// or input hot-plug: those answer a clear error.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/async_mutex.h"
#include "common/path_watch.h"
#include "vmm/vm.h"

namespace vhp {

struct CloudHypervisorTimeouts {
  std::chrono::milliseconds request{5000};  // connect, send, answer: each request as a whole
  std::chrono::milliseconds watch_fallback{500};
  std::chrono::milliseconds not_running_recheck{1000};  // a VM that answers but does not run yet
  int refused_retries = 10;  // a socket that is there but refuses: cloud-hypervisor between bind() and listen()
  std::chrono::milliseconds refused_retry_interval{100};
  std::size_t max_answer_bytes = 1024 * 1024;
};

class CloudHypervisorVm : public Vm {
 public:
  CloudHypervisorVm(boost::asio::io_context& io, std::string name, std::string socket_path, CloudHypervisorTimeouts timeouts = {});
  ~CloudHypervisorVm() override;

  void start() override;
  void stop() override;
  bool running() const override { return up_; }
  std::optional<std::string> usb_unsupported() const override;

  boost::asio::awaitable<void> attach_usb(UsbDevice device) override;  // no USB hot-plug: an error
  boost::asio::awaitable<void> detach_usb(VmUsbDevice device) override;
  boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() override;  // nothing
  boost::asio::awaitable<void> attach_pci(PciDevice device, bool root_bus) override;
  boost::asio::awaitable<void> detach_pci(VmPciDevice device) override;
  boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() override;  // vm.info's config.devices
  boost::asio::awaitable<void> attach_evdev(EvdevDevice device) override;
  boost::asio::awaitable<void> detach_evdev(EvdevDevice device) override;

  struct Answer {
    unsigned status = 0;
    std::string body;
  };

 private:
  // One HTTP request; throws VmError when the VM cannot be reached or answers malformed.
  boost::asio::awaitable<Answer> request(std::string method, std::string target, std::string body);
  // The request, an error unless 2xx: "VM X: cloud-hypervisor answered 404 Not Found: <its message>".
  boost::asio::awaitable<Answer> expect_success(std::string method, std::string target, std::string body);
  VmError refusal(const Answer& answer) const;
  boost::asio::awaitable<void> probe();
  void check();

  boost::asio::io_context& io_;
  std::string socket_path_;
  CloudHypervisorTimeouts timeouts_;
  AsyncMutex operations_;
  PathWatch socket_watch_;
  boost::asio::steady_timer recheck_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool up_ = false, stopped_ = true, probing_ = false, probe_again_ = false;
  std::string identity_;  // of the API socket of the run that is up (socket_identity)
  int refused_left_ = 0;  // looks left at a socket that refuses, since it last changed
};

}  // namespace vhp
