#pragma once
// The host side of PCI passthrough: a device's IOMMU group bound to vfio-pci the way the kernel
// documents it (driver/unbind, driver_override, drivers_probe; then /dev/vfio/<group> appears),
// and given back to its host driver later. Refuses to unbind a controller that holds a mounted
// filesystem of the host. Runs on the event loop: the only wait (for the VFIO node) is inotify
// with a deadline.
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "device/block_devices.h"

namespace vhp {

struct VfioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};


class VfioBinding {
 public:
  static constexpr const char* kDriver = "vfio-pci";

  VfioBinding(boost::asio::io_context& io, HostInterfaces paths = {}, std::chrono::milliseconds node_timeout = std::chrono::seconds(3));

  // Whether the vfio-pci driver is there to bind to (the reference's check_vfio).
  bool available() const;
  // The driver bound to `address` now (nothing when unbound).
  std::optional<std::string> driver(const std::string& address) const;
  // The members of `address`'s IOMMU group, sorted, itself included; throws VfioError without a group.
  std::vector<std::string> group_members(const std::string& address) const;

  // What bind_group would rebind: each member of the group that is not on vfio-pci yet, with the
  // driver it has now ("" for none). Bridges stay as they are: vfio-pci does not take them and VFIO
  // accepts a group whose bridges keep pcieport. Throws VfioError (no IOMMU group, or a member
  // holds a filesystem the host has mounted).
  std::map<std::string, std::string> plan(const std::string& address) const;
  // Rebinds the plan's members to vfio-pci and waits for /dev/vfio/<group>. Returns the drivers
  // they had. Throws VfioError; then every member it had touched is given back first.
  boost::asio::awaitable<std::map<std::string, std::string>> bind_group(std::string address);
  // Unbinds `address` from vfio-pci, clears its driver_override and binds `driver` (empty: lets the
  // kernel pick, through drivers_probe). Throws VfioError.
  void give_back(const std::string& address, const std::string& driver) const;

 private:
  std::string device_dir(const std::string& address) const;
  bool is_bridge(const std::string& address) const;
  void write(const std::string& file, const std::string& value) const;

  boost::asio::io_context& io_;
  HostInterfaces paths_;
  std::chrono::milliseconds node_timeout_;
};

}  // namespace vhp
