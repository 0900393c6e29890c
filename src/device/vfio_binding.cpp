#include "device/vfio_binding.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/async_event.h"
#include "common/path_watch.h"
#include "device/block_devices.h"

namespace vhp {

namespace asio = boost::asio;
namespace fs = std::filesystem;

VfioBinding::VfioBinding(asio::io_context& io, HostInterfaces paths, std::chrono::milliseconds node_timeout)
    : io_(io), paths_(std::move(paths)), node_timeout_(node_timeout) {}

std::string VfioBinding::device_dir(const std::string& address) const { return paths_.sys + "/bus/pci/devices/" + address; }

bool VfioBinding::available() const {
  std::error_code ec;
  return fs::exists(paths_.sys + "/bus/pci/drivers/" + kDriver, ec);
}

std::optional<std::string> VfioBinding::driver(const std::string& address) const {
  std::error_code ec;
  auto link = fs::read_symlink(device_dir(address) + "/driver", ec);
  if (ec) return std::nullopt;
  return link.filename().string();
}

std::vector<std::string> VfioBinding::group_members(const std::string& address) const {
  std::error_code ec;
  auto dir = device_dir(address) + "/iommu_group/devices";
  std::vector<std::string> members;
  for (const auto& entry : fs::directory_iterator(dir, ec)) members.push_back(entry.path().filename().string());
  if (ec || members.empty()) throw VfioError("PCI device " + address + " has no IOMMU group (is the IOMMU enabled?)");
  std::ranges::sort(members);
  return members;
}

// sysfs attributes take one write(2) each; a short or failed write is the kernel's refusal.
void VfioBinding::write(const std::string& file, const std::string& value) const {
  int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);  // as `echo v > attr`; never through a link
  if (fd < 0) throw VfioError("cannot open " + file + ": " + std::strerror(errno));
  auto n = ::write(fd, value.data(), value.size());
  int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size()))
    throw VfioError("cannot write '" + value + "' to " + file + ": " + (n < 0 ? std::strerror(error) : "short write"));
}

asio::awaitable<std::map<std::string, std::string>> VfioBinding::bind_group(std::string address) {
  auto members = group_members(address);
  std::error_code ec;
  auto group = fs::read_symlink(device_dir(address) + "/iommu_group", ec).filename().string();
  if (!available())
    throw VfioError(std::string("the ") + kDriver + " driver is not loaded (load the vfio-pci module)");
  // Nothing is unbound while any member holds a filesystem the host has mounted (its boot disk).
  std::vector<std::string> to_bind;
  for (const auto& member : members) {
    if (driver(member) == kDriver) continue;
    auto mounts = mounts_behind(device_dir(member), paths_.sys, paths_.mountinfo);
    if (!mounts.empty()) {
      std::string list;
      for (const auto& m : mounts) list += (list.empty() ? "" : ", ") + m;
      throw VfioError("PCI device " + member + (member == address ? "" : " (in the IOMMU group of " + address + ")") +
                      " holds the host's mounted filesystems: " + list + "; it stays on the host");
    }
    to_bind.push_back(member);
  }

  // Watch before the writes: the node can appear the moment the first member binds.
  std::string node = paths_.dev + "/vfio/" + group;
  auto appeared = std::make_shared<AsyncEvent>(io_.get_executor());
  PathWatch watch(io_, node, std::chrono::milliseconds(100), [node, appeared] {
    std::error_code e;
    if (fs::exists(node, e)) appeared->set();
  });
  watch.start();

  std::map<std::string, std::string> previous;
  for (const auto& member : to_bind) {
    auto had = driver(member);
    if (had) write(device_dir(member) + "/driver/unbind", member);
    previous[member] = had.value_or("");
    write(device_dir(member) + "/driver_override", kDriver);
    write(paths_.sys + "/bus/pci/drivers_probe", member);
    spdlog::info("pci {}: bound to {} (was {})", member, kDriver, had.value_or("unbound"));
  }
  auto waited_from = std::chrono::steady_clock::now();
  bool present = fs::exists(node, ec);
  if (!present) present = co_await appeared->wait(node_timeout_);
  spdlog::debug("pci {}: {} {} after {} us", address, node, present ? "appeared" : "did not appear",
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - waited_from).count());
  if (!present)
    throw VfioError("VFIO node " + node + " did not appear within " + std::to_string(node_timeout_.count()) + " ms");
  co_return previous;
}

void VfioBinding::give_back(const std::string& address, const std::string& host_driver) const {
  if (driver(address) == kDriver) write(device_dir(address) + "/driver/unbind", address);
  write(device_dir(address) + "/driver_override", "\n");  // an empty override clears it
  if (!host_driver.empty()) write(paths_.sys + "/bus/pci/drivers/" + host_driver + "/bind", address);
  else write(paths_.sys + "/bus/pci/drivers_probe", address);
  spdlog::info("pci {}: given back to {}", address, host_driver.empty() ? "the kernel's choice of driver" : host_driver);
}

}  // namespace vhp
