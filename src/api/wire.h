#pragma once
// The manager's typed facts as the vhotplug API's JSON, byte for byte what the reference sends.
#include <optional>

#include <nlohmann/json.hpp>

#include "manager/daemon_status.h"
#include "manager/events.h"

namespace vhp {

// The notification for an event; nothing for events the API does not carry (VM up/down).
std::optional<nlohmann::ordered_json> to_wire(const ManagerEvent& event);
// A list entry: the device object plus `allowed_vms` and `vm` (PCI: `iommu_member` when set).
nlohmann::ordered_json to_wire(const UsbListing& listing);
nlohmann::ordered_json to_wire(const PciListing& listing);
nlohmann::ordered_json to_wire(const EvdevListing& listing);  // ours: + allowed_vms, vm, tag
nlohmann::ordered_json to_wire(const CommandResult& result);
// `status` (ours): times as ISO 8601 UTC, durations in seconds (status_wire.cpp).
nlohmann::ordered_json to_wire(const DaemonStatus& status);

}  // namespace vhp
