#pragma once
// A crosvm VM, driven through the `crosvm` command line as the reference does (USB) and as
// ghaf-device-manager does (PCI: `crosvm vfio`), each command a child process on the event loop
// with its deadline. Up while its control socket (SOCK_SEQPACKET) accepts; a new socket (another
// inode) is a restart. crosvm names a USB device by its port only, so the port of each device we
// attach is remembered by its host address, and written in a CrosvmUsbPortBook for the next daemon.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/async_mutex.h"
#include "common/path_watch.h"
#include "vmm/crosvm_usb_ports.h"
#include "vmm/process_watch.h"
#include "vmm/vm.h"

namespace vhp {

struct CrosvmTimeouts {
  std::chrono::milliseconds command{10000};  // each crosvm invocation (ghaf-device-manager's)
  int busy_retries = 5;                      // `no_available_port` (the guest not booted yet) and vfio settling
  std::chrono::milliseconds retry_interval{250};
  std::chrono::milliseconds watch_fallback{500};
};

class CrosvmVm : public Vm {
 public:
  CrosvmVm(boost::asio::io_context& io, std::string name, std::string socket_path, std::string crosvm = "crosvm",
           CrosvmTimeouts timeouts = {}, std::shared_ptr<CrosvmUsbPortBook> book = nullptr);
  ~CrosvmVm() override;

  void start() override;
  void stop() override;
  bool running() const override { return up_; }

  // `crosvm usb attach 00:00:00:00 <node> <socket>` → `ok <port>`.
  boost::asio::awaitable<void> attach_usb(UsbDevice device) override;
  // `crosvm usb detach <port> <socket>` for the port we attached it at.
  boost::asio::awaitable<void> detach_usb(VmUsbDevice device) override;
  // `crosvm usb list <socket>`: the ports we know by host address (also from the book, for this run
  // of the VM); others (not ours) with address 0.
  boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() override;

  // `crosvm vfio add /sys/bus/pci/devices/<a> <socket>`, then seen in `crosvm vfio list`.
  boost::asio::awaitable<void> attach_pci(PciDevice device, bool root_bus) override;
  boost::asio::awaitable<void> detach_pci(VmPciDevice device) override;
  boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() override;

  boost::asio::awaitable<void> attach_evdev(EvdevDevice device) override;  // the reference's refusal
  boost::asio::awaitable<void> detach_evdev(EvdevDevice device) override;

  static std::string usb_id(int port);  // crosvm-usb-<port>

 private:
  using Lock = AsyncMutex::Lock;
  boost::asio::awaitable<Lock> begin(const char* what);  // its turn, and the VM up
  // One crosvm command: its standard output, or VmError with what it printed.
  boost::asio::awaitable<std::string> crosvm(std::vector<std::string> args);
  boost::asio::awaitable<std::vector<std::pair<int, std::string>>> usb_ports();  // port, "vid:pid"
  boost::asio::awaitable<std::vector<std::string>> vfio_paths();
  static constexpr int kRefusedRetries = 10;
  void check(int retries = 0);  // the socket now: up, down, or replaced; one that refuses is looked at `retries` times more
  std::string generation(pid_t& pid) const;  // device:inode:birth:pid of the socket and its server; "" when it does not accept
  struct Port {
    int port = 0;
    std::string sys_name, ids;  // ids: "vid:pid"
  };
  using HostAddress = std::pair<int, int>;  // bus, device number
  void read_book();  // the ports the book holds for this run of the VM; those of another run are forgotten
  void remember(const UsbDevice& device, int port);
  void forget(const HostAddress& address);

  boost::asio::io_context& io_;
  std::string socket_path_, crosvm_;
  CrosvmTimeouts timeouts_;
  AsyncMutex operations_;
  PathWatch socket_watch_;
  ProcessWatch process_;  // the crosvm serving the socket
  boost::asio::steady_timer retry_timer_;
  std::string generation_;
  std::shared_ptr<CrosvmUsbPortBook> book_;  // may be null: nothing outlives the daemon
  std::map<HostAddress, Port> ports_;       // for this generation
  bool up_ = false, stopped_ = true;
};

}  // namespace vhp
