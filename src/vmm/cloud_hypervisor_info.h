#pragma once
// What cloud-hypervisor's GET /api/v1/vm.info says, read defensively: its state, and the host PCI
// devices in its config (those under /sys/bus/pci/devices/, with their ids). Pure: fuzzed.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vhp {

struct ChVmInfo {
  std::string state;  // "Running", "Created", …; "" when it says none
  struct Device {
    std::string id, address;  // id "" when it has none; address 0000:00:14.3
  };
  std::vector<Device> devices;
};

// Nothing when the body is not a JSON object; members of unexpected types count as absent.
std::optional<ChVmInfo> parse_vm_info(std::string_view body);

}  // namespace vhp
