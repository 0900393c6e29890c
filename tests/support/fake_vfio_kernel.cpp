#include "support/fake_vfio_kernel.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vhp::test {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kAddressLength = 12;  // 0000:00:14.3: writes are addresses, so a read splits into them

std::string trimmed(const fs::path& file) {
  std::ifstream in(file);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s == "(null)" ? "" : s;  // how the kernel shows an unset driver_override
}

}  // namespace

FakeVfioKernel::FakeVfioKernel(std::string testbed_root, std::vector<std::string> drivers, bool creates_nodes)
    : root_(std::move(testbed_root)), creates_nodes_(creates_nodes) {
  drivers.push_back("vfio-pci");
  if (::pipe2(stop_, O_CLOEXEC) != 0 || ::pipe2(copy_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  fs::create_directories(root_ + "/dev/vfio");
  auto fifo = [&](const std::string& name) {
    auto path = sys("/bus/pci/" + (name == "drivers_probe" ? name : "drivers/" + name));
    fs::remove(path);
    if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path);
    int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);  // read-write: never EOF, writers never block
    if (fd < 0) throw std::runtime_error("open " + path);
    fifos_.push_back({name, fd});
  };
  for (const auto& d : drivers) {
    fs::create_directories(sys("/bus/pci/drivers/" + d));
    fifo(d + "/unbind");
  }
  for (const auto& d : drivers) fifo(d + "/bind");
  fifo("drivers_probe");
  thread_ = std::thread([this] { run(); });
}

FakeVfioKernel::~FakeVfioKernel() {
  char c = 0;
  [[maybe_unused]] auto n = ::write(stop_[1], &c, 1);
  thread_.join();
  for (const auto& f : fifos_) ::close(f.fd);
  ::close(stop_[0]);
  ::close(stop_[1]);
  ::close(copy_[0]);
  ::close(copy_[1]);
}

std::string FakeVfioKernel::driver(const std::string& address) const {
  std::error_code ec;
  auto link = fs::read_symlink(sys("/bus/pci/devices/" + address + "/driver"), ec);
  return ec ? "" : link.filename().string();
}

std::string FakeVfioKernel::override_of(const std::string& address) const {
  return trimmed(sys("/bus/pci/devices/" + address + "/driver_override"));
}

std::vector<std::string> FakeVfioKernel::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

void FakeVfioKernel::run() {
  std::vector<pollfd> fds{{stop_[0], POLLIN, 0}};
  for (const auto& f : fifos_) fds.push_back({f.fd, POLLIN, 0});
  while (true) {
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents) return;
    // Every FIFO, readable or not, unbinds first, then binds, then probes: a device written to one
    // driver's unbind and then another's bind (or drivers_probe) is handled in that order.
    // Handled before it is read out: the writer (sysfs_write_preload) returns once the FIFO is empty.
    for (const auto& f : fifos_) {
      char buffer[4096];
      auto n = ::tee(f.fd, copy_[1], sizeof buffer, SPLICE_F_NONBLOCK);
      if (n <= 0) continue;
      n = ::read(copy_[0], buffer, static_cast<std::size_t>(n));
      if (n <= 0) continue;
      std::string data(buffer, static_cast<std::size_t>(n));
      for (std::size_t at = 0; at + kAddressLength <= data.size(); at += kAddressLength) handle(f.name, data.substr(at, kAddressLength));
      [[maybe_unused]] auto consumed = ::read(f.fd, buffer, static_cast<std::size_t>(n));
    }
  }
}

void FakeVfioKernel::set_driver(const std::string& address, const std::string& driver) {
  auto dir = fs::path(sys("/bus/pci/devices/" + address));
  std::error_code ignored;
  fs::remove(dir / "driver", ignored);
  if (!driver.empty()) fs::create_symlink("../../bus/pci/drivers/" + driver, dir / "driver");
  auto group = fs::read_symlink(dir / "iommu_group", ignored).filename().string();
  if (group.empty() || !creates_nodes_) return;
  auto node = root_ + "/dev/vfio/" + group;
  if (driver == "vfio-pci") {
    std::ofstream(node).flush();
    return;
  }
  for (const auto& member : fs::directory_iterator(sys("/kernel/iommu_groups/" + group + "/devices"), ignored))
    if (this->driver(member.path().filename().string()) == "vfio-pci") return;  // not the group's last one
  fs::remove(node, ignored);
}

void FakeVfioKernel::handle(const std::string& file, const std::string& address) {
  {
    std::lock_guard lock(mutex_);
    writes_.push_back(file + " " + address);
  }
  std::string owner = file.substr(0, file.find('/'));
  if (file == "drivers_probe") {
    if (driver(address).empty() && !override_of(address).empty()) set_driver(address, override_of(address));
  } else if (file.ends_with("/unbind")) {
    if (driver(address) == owner) set_driver(address, "");
  } else if (driver(address).empty()) {  // bind
    set_driver(address, owner);
  }
}

}  // namespace vhp::test
