#pragma once
// What QEMU's `query-pci` answer says about hot-plug: the ports a device can go into, and whether
// a device is on the bus. The answer is a list of buses, each with devices; a bridge (a
// pcie-root-port) carries `pci_bridge.devices`, recursively.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp::qemu_pci {

// Bridges with an id of their own (`qdev_id`) and nothing behind them, in bus order: where the
// reference hot-plugs (its "empty bridges"; Ghaf creates them as pcie-root-ports `pci_hotplug_N`).
std::vector<std::string> free_ports(const nlohmann::json& query_pci);

// Whether a device with this qdev_id is on any bus.
bool has_device(const nlohmann::json& query_pci, const std::string& qdev_id);

}  // namespace vhp::qemu_pci
