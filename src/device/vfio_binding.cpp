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

bool VfioBinding::is_bridge(const std::string& address) const {
  std::ifstream in(device_dir(address) + "/class");
  unsigned long code = 0;
  in >> std::hex >> code;  // "0x060400"
  return in && (code >> 8) == 0x0604;
}

std::map<std::string, std::string> VfioBinding::plan(const std::string& address) const {
  if (!available()) throw VfioError(std::string("the ") + kDriver + " driver is not loaded (load the vfio-pci module)");
  std::map<std::string, std::string> to_bind;
  for (const auto& member : group_members(address)) {
    if (driver(member) == kDriver || is_bridge(member)) continue;
    // Nothing is unbound while any member holds a filesystem the host has mounted (its boot disk).
    auto mounts = mounts_behind(device_dir(member), paths_);
    if (!mounts.empty())
      throw VfioError("PCI device " + member + (member == address ? "" : " (in the IOMMU group of " + address + ")") +
                      " holds the host's mounted filesystems: " + describe(mounts) + "; it stays on the host");
    to_bind[member] = driver(member).value_or("");
  }
  return to_bind;
}

asio::awaitable<std::map<std::string, std::string>> VfioBinding::bind_group(std::string address) {
  auto to_bind = plan(address);
  std::error_code ec;
  auto group = fs::read_symlink(device_dir(address) + "/iommu_group", ec).filename().string();

  // Watch before the writes: the node can appear the moment the first member binds.
  std::string node = paths_.dev + "/vfio/" + group;
  auto appeared = std::make_shared<AsyncEvent>(io_.get_executor());
  PathWatch watch(io_, node, std::chrono::milliseconds(100), [node, appeared] {
    std::error_code e;
    if (fs::exists(node, e)) appeared->set();
  });
  watch.start();

  std::map<std::string, std::string> touched;  // given back if anything fails
  std::string failure;
  try {
    for (const auto& [member, had] : to_bind) {
      touched[member] = had;
      if (!had.empty()) write(device_dir(member) + "/driver/unbind", member);
      write(device_dir(member) + "/driver_override", kDriver);
      write(paths_.sys + "/bus/pci/drivers_probe", member);
      spdlog::info("pci {}: bound to {} (was {})", member, kDriver, had.empty() ? "unbound" : had);
    }
  } catch (const VfioError& e) {
    failure = e.what();
  }
  if (failure.empty()) {
    auto waited_from = std::chrono::steady_clock::now();
    bool present = fs::exists(node, ec);
    if (!present) present = co_await appeared->wait(node_timeout_);
    spdlog::debug("pci {}: {} {} after {} us", address, node, present ? "appeared" : "did not appear",
                  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - waited_from).count());
    if (!present) failure = "VFIO node " + node + " did not appear within " + std::to_string(node_timeout_.count()) + " ms";
  }
  if (failure.empty()) co_return to_bind;
  for (const auto& [member, had] : touched) {
    try {
      give_back(member, had);
    } catch (const VfioError& e) {
      spdlog::error("pci {}: giving it back after a failed binding failed too: {}", member, e.what());
    }
  }
  throw VfioError(failure);
}

void VfioBinding::give_back(const std::string& address, const std::string& host_driver) const {
  auto now = driver(address);
  if (now && now != kDriver) {  // someone bound it already: only our override goes
    write(device_dir(address) + "/driver_override", "\n");
    return;
  }
  if (now == kDriver) write(device_dir(address) + "/driver/unbind", address);
  write(device_dir(address) + "/driver_override", "\n");  // an empty override clears it
  if (!host_driver.empty()) write(paths_.sys + "/bus/pci/drivers/" + host_driver + "/bind", address);
  else write(paths_.sys + "/bus/pci/drivers_probe", address);
  spdlog::info("pci {}: given back to {}", address, host_driver.empty() ? "the kernel's choice of driver" : host_driver);
}

}  // namespace vhp
