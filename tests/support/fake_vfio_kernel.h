#pragma once
// What the kernel does when vhotplugd binds PCI devices in a umockdev testbed, where sysfs is plain
// files: a write to a driver's `unbind` drops the device's `driver` link, a write to `bind` sets
// it, a write to `/sys/bus/pci/drivers_probe` binds the device to its `driver_override`, and a
// vfio-pci binding creates `/dev/vfio/<group>` (removed when the group's last member leaves
// vfio-pci). Those three kinds of files are FIFOs read by a thread of its own, so every write is
// seen once and in order, as the kernel sees them; `driver_override` stays a plain file.
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vhp::test {

class FakeVfioKernel {
 public:
  // Creates /sys/bus/pci/drivers/<d>/{bind,unbind} for each driver (vfio-pci always), drivers_probe
  // and /dev/vfio. `creates_nodes` false: vfio-pci binds, but no /dev/vfio/<group> ever appears.
  FakeVfioKernel(std::string testbed_root, std::vector<std::string> drivers, bool creates_nodes = true);
  ~FakeVfioKernel();
  FakeVfioKernel(const FakeVfioKernel&) = delete;
  FakeVfioKernel& operator=(const FakeVfioKernel&) = delete;

  std::string driver(const std::string& address) const;       // "" when unbound
  std::string override_of(const std::string& address) const;  // driver_override, trimmed
  // What was written, in order: "drivers_probe 0000:00:14.3", "e1000e/unbind 0000:00:14.3", …
  std::vector<std::string> writes() const;

 private:
  struct Fifo {
    std::string name;  // "drivers_probe", "e1000e/unbind"
    int fd = -1;
  };
  void run();
  void handle(const std::string& file, const std::string& address);
  void set_driver(const std::string& address, const std::string& driver);
  std::string sys(const std::string& path) const { return root_ + "/sys" + path; }

  std::string root_;
  bool creates_nodes_;
  int stop_[2] = {-1, -1};
  int copy_[2] = {-1, -1};  // tee()'s target: a FIFO's bytes are looked at before they are read out
  std::vector<Fifo> fifos_;  // every unbind, every bind, drivers_probe: the order each round reads them
  mutable std::mutex mutex_;
  std::vector<std::string> writes_;
  std::thread thread_;
};

}  // namespace vhp::test
