#pragma once
// Input devices (evdev, not on USB) where the evdevPassthrough rules say: hot-plugged into their
// VM as virtio-input-host devices when they appear, at start with -a, when their VM comes up, and
// taken out when they go. The reference adds them only at start and on a VM restart, and never
// takes them out. A node some process already grabs (the VM's own QEMU, from its command line or
// before a daemon restart) is not added twice: the reference's EVIOCGRAB probe. Driven by
// Passthrough (which owns the VMs) on the event loop.
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/io_context.hpp>

#include "manager/device_manager.h"
#include "vmm/vm.h"

namespace vhp {

class Passthrough;

class EvdevPassthrough {
 public:
  using GrabProbe = std::function<bool(const std::string& device_node)>;  // a seam: real evdev nodes cannot exist here
  EvdevPassthrough(boost::asio::io_context& io, Passthrough& owner, DeviceManager& manager, bool attach_connected,
                   GrabProbe grabbed_elsewhere);
  ~EvdevPassthrough();

  void start();
  void plugged(const EvdevDevice& d);
  void unplugged(const EvdevDevice& d);
  void vm_up(const std::string& vm);
  void vm_down(const std::string& vm);
  void reapply_policy();

 private:
  boost::asio::awaitable<void> attach(EvdevDevice d, std::string vm);
  boost::asio::awaitable<void> detach(EvdevDevice d, std::string vm);
  boost::asio::awaitable<void> move(EvdevDevice d, std::string from, std::optional<std::string> to);
  struct InFlight {  // an attach under way, for as long as its scope lasts
    std::shared_ptr<bool> alive;
    std::set<std::string>& set;
    std::string path;
    ~InFlight();
  };
  void spawn(boost::asio::awaitable<void> work, const char* what);

  boost::asio::io_context& io_;
  Passthrough& owner_;
  DeviceManager& manager_;
  bool attach_connected_;
  GrabProbe grabbed_elsewhere_;
  std::set<std::string> wanted_;     // sys paths: plugged since start, or present at start with -a
  std::set<std::string> in_flight_;  // sys paths with an attach under way: one at a time each
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vhp
