#pragma once
// A QEMU VM over QMP, with its monitor borrowed, never kept: QEMU serves one monitor client at a
// time, and the VM's owner needs it too (Ghaf stops VMs with `system_powerdown` on that socket).
// The connection is opened when an operation starts, handed on to the operations queued behind
// it, and closed when the queue is empty. Whether the VM is up is learnt without holding it:
// inotify on the socket's directory and a pidfd on the QEMU process, each confirmed by a probe
// (connect, capabilities, query-status, close).
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/async_mutex.h"
#include "common/path_watch.h"
#include "vmm/process_watch.h"
#include "vmm/qmp_connection.h"
#include "vmm/vm.h"

namespace vhp {

struct QemuTimeouts {
  std::chrono::milliseconds connect{2000};     // connect, greeting and capabilities
  std::chrono::milliseconds command{5000};     // each command
  std::chrono::milliseconds operation{15000};  // a whole operation, its wait for its turn included
  std::chrono::milliseconds device_deleted{5000};
  std::chrono::milliseconds pci_deleted{10000};  // a PCI unplug waits for the guest (ACPI or PCIe hot-plug)
  // A probe after the socket changed may find QEMU between bind() and listen(): it is tried again.
  int probe_retries = 10;
  std::chrono::milliseconds probe_retry_interval{100};
  std::chrono::milliseconds busy_retry_interval{1000};  // the monitor is someone else's for now
  std::chrono::milliseconds watch_fallback{500};        // probe interval where the directory cannot be watched
  // QEMU's libusb may not have seen a device udev just announced: retry "failed to find host usb device".
  int attach_retries = 20;
  std::chrono::milliseconds attach_retry_interval{100};
};

class QemuVm : public Vm {
 public:
  QemuVm(boost::asio::io_context& io, std::string name, std::string socket_path, QemuTimeouts timeouts = {});
  ~QemuVm() override;

  void start() override;
  void stop() override;
  bool running() const override { return up_; }

  // usb-host by hostbus+hostaddr, then verified with qom-get attached.
  boost::asio::awaitable<void> attach_usb(UsbDevice device) override;
  // device_del, then DEVICE_DELETED.
  boost::asio::awaitable<void> detach_usb(VmUsbDevice device) override;
  // Every usb-host in /machine/peripheral and /machine/peripheral-anon, by its QOM properties.
  boost::asio::awaitable<std::vector<VmUsbDevice>> list_usb() override;

  // vfio-pci into the first free pcie-root-port (query-pci), then verified with query-pci.
  boost::asio::awaitable<void> attach_pci(PciDevice device, bool root_bus) override;
  // device_del, then DEVICE_DELETED (the guest has to release the device first).
  boost::asio::awaitable<void> detach_pci(VmPciDevice device) override;
  // Every vfio-pci in /machine/peripheral and /machine/peripheral-anon, by its `host` property.
  boost::asio::awaitable<std::vector<VmPciDevice>> list_pci() override;

  // virtio-input-host-pci into the first free pcie-root-port, as the reference (which names it so too).
  boost::asio::awaitable<void> attach_evdev(EvdevDevice device) override;
  boost::asio::awaitable<void> detach_evdev(EvdevDevice device) override;
  static std::string evdev_id(const std::string& sys_name);  // evdev-event3

  // The id we give a device: cannot collide, unlike the reference's "usb<bus><dev>".
  static std::string usb_id(int busnum, int devnum);
  // Whether a connection to the monitor is open now (it is only while operations are queued).
  bool monitor_open() const { return conn_ && conn_->is_open(); }
  // Whether the socket's directory is watched with inotify (else probed on the fallback timer).
  bool watching_socket() const { return socket_watch_.watching(); }

 private:
  using Body = std::function<boost::asio::awaitable<void>(QmpConnection&)>;
  // Runs `body` with the monitor: waits for its turn, connects unless the operation before it left
  // the connection open for it, and closes the connection when nothing else is queued.
  boost::asio::awaitable<void> borrowed(std::string what, Body body, bool need_up = true);
  // A command; QEMU's own errors come back as QmpError, the rest as VmError.
  boost::asio::awaitable<nlohmann::json> execute(QmpConnection& c, const std::string& command, nlohmann::json arguments);
  // The same in two steps, so that a command can be sent behind another before its answer is read.
  boost::asio::awaitable<std::uint64_t> send(QmpConnection& c, const std::string& command, nlohmann::json arguments);
  boost::asio::awaitable<nlohmann::json> receive(QmpConnection& c, std::uint64_t id, const std::string& command);
  // A local failure of the session (no answer, a garbled one, the connection gone) as the VmError
  // an operation reports; closes the connection.
  VmError session_failure(QmpConnection& c, const std::string& command, const QmpError& e);
  boost::asio::awaitable<std::vector<VmUsbDevice>> scan_usb(QmpConnection& c);
  // device_add of a PCI device (`device`: driver and its properties) into a free hot-plug port, or the
  // root bus; then verified with query-pci. A device with that id already there counts as added.
  boost::asio::awaitable<void> plug_into_port(QmpConnection& c, nlohmann::json device, std::string id, bool root_bus);
  // device_del, then DEVICE_DELETED; a device QEMU does not have counts as removed.
  boost::asio::awaitable<void> unplug_by_id(QmpConnection& c, std::string id);
  boost::asio::awaitable<std::vector<VmPciDevice>> scan_pci(QmpConnection& c);
  // The QOM children of /machine/peripheral and peripheral-anon of a type: (id for device_del, QOM path).
  boost::asio::awaitable<std::vector<std::pair<std::string, std::string>>> peripherals(QmpConnection& c, std::string type);
  // Waits for DEVICE_DELETED of `id`, failing with a VmError that says what did not happen.
  boost::asio::awaitable<void> wait_deleted(QmpConnection& c, std::string id, std::chrono::milliseconds timeout, std::string why);

  void probe(int retries = 0);  // starts a probe unless one runs; then it runs once more
  boost::asio::awaitable<void> probe_loop(int retries);
  void probe_later(std::chrono::milliseconds after, int retries);
  void set_up(std::optional<pid_t> pid, const std::string& identity);
  void set_down(const std::string& why);

  boost::asio::io_context& io_;
  std::string socket_path_;
  QemuTimeouts timeouts_;
  AsyncMutex operations_;
  std::shared_ptr<QmpConnection> conn_;  // only while operations are queued
  PathWatch socket_watch_;
  ProcessWatch process_;
  std::string identity_;  // of the QMP socket of the run that is up (socket_identity)
  boost::asio::steady_timer probe_timer_;
  std::map<std::pair<int, int>, std::string> ids_;  // what QEMU calls the device at a host address
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool up_ = false, stopped_ = true, probing_ = false, probe_again_ = false;
  int probe_again_retries_ = 0;
};

}  // namespace vhp
