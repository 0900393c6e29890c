#pragma once
// A real QEMU 7.2 for tests: q35 under TCG, paused, with an xHCI controller, two pcie-root-ports
// (pci_hotplug_1, pci_hotplug_2) and two QMP sockets
// (one for the daemon, one for the test to look inside). Runs under the caller's environment, so
// under umockdev it sees the testbed's USB devices.
#include <chrono>
#include <memory>
#include <vector>
#include <string>

#include <nlohmann/json.hpp>

#include "support/process.h"

namespace vhp::test {

// What Ghaf's VM stop does (`socat -t1` to the VM's QMP socket): connect, send qmp_capabilities and
// `command` at once, read what comes within `limit`, close. The non-event messages received
// (greeting first); empty when QEMU did not greet in time.
std::vector<nlohmann::json> qmp_one_shot(const std::string& socket, const std::string& command, std::chrono::milliseconds limit);

// One QMP command on a fresh connection to `socket`, in protocol order: the greeting read,
// qmp_capabilities (with "oob" when `oob`, as the daemon negotiates it when offered), the command;
// its reply, events skipped. Throws when the monitor does not answer.
nlohmann::json qmp_session(const std::string& socket, const std::string& command, const nlohmann::json& arguments = nullptr,
                           bool oob = false);

class Qemu {
 public:
  Qemu(std::string dir, std::string name);  // sockets and logs go in `dir`
  ~Qemu();
  void start();  // returns once both QMP sockets accept
  void kill();   // SIGKILL, as a crash
  bool running();
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  const std::string& socket() const { return socket_; }
  // One QMP command on the inspection socket (a fresh connection each time); returns the reply.
  nlohmann::json qmp(const std::string& command, const nlohmann::json& arguments = nullptr);
  // Our usb-host devices in the VM: ids from qom-list.
  std::vector<std::string> usb_ids();

 private:
  std::string dir_, name_, socket_, inspect_;
  std::unique_ptr<Child> process_;
};

}  // namespace vhp::test
