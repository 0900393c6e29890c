#pragma once
// One QEMU VM over QMP: a connection that comes back when the VM's socket does, and USB
// passthrough operations serialised per VM (different VMs proceed in parallel).
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/async_mutex.h"
#include "device/usb_device.h"
#include "vmm/qmp_client.h"

namespace vhp {

// An operation failed; the message is what the API answers (QEMU's own text where it has one).
struct VmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct QemuTimeouts {
  std::chrono::milliseconds connect{2000};
  std::chrono::milliseconds command{5000};
  std::chrono::milliseconds reconnect_interval{500};
  std::chrono::milliseconds device_deleted{5000};
  // QEMU's libusb may not have seen a device udev just announced: retry "failed to find host usb device".
  int attach_retries = 20;
  std::chrono::milliseconds attach_retry_interval{100};
};

// A usb-host device of ours that the VM has (found through its QOM tree).
struct QemuUsbDevice {
  std::string id;
  int hostbus = 0, hostaddr = 0;
  bool attached = false;
};

class QemuVm {
 public:
  QemuVm(boost::asio::io_context& io, std::string name, std::string socket_path, QemuTimeouts timeouts = {});
  ~QemuVm();
  QemuVm(const QemuVm&) = delete;
  QemuVm& operator=(const QemuVm&) = delete;

  void start();  // keep a QMP connection, reconnecting while the VM is away
  void stop();

  const std::string& name() const { return name_; }
  bool running() const { return client_ && client_->connected(); }
  // Called on the loop when QMP comes up (VM started, or we started) and when it goes away.
  std::function<void()> on_up, on_down;

  // The id we give a device: cannot collide, unlike the reference's "usb<bus><dev>".
  static std::string usb_id(int busnum, int devnum);

  // usb-host by hostbus+hostaddr, then verified with qom-get attached. Throws VmError.
  boost::asio::awaitable<void> attach_usb(int busnum, int devnum);
  // device_del, then DEVICE_DELETED. A device QEMU no longer has counts as detached. Throws VmError.
  boost::asio::awaitable<void> detach_usb(int busnum, int devnum);
  boost::asio::awaitable<std::vector<QemuUsbDevice>> list_usb();

 private:
  boost::asio::awaitable<void> keep_connected();
  boost::asio::awaitable<nlohmann::json> execute(const std::string& command, nlohmann::json arguments);
  std::shared_ptr<QmpClient> client_or_throw();

  boost::asio::io_context& io_;
  std::string name_, socket_path_;
  QemuTimeouts timeouts_;
  std::shared_ptr<QmpClient> client_;
  AsyncMutex operations_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
};

}  // namespace vhp
