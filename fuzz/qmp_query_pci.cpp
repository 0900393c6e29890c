// libFuzzer: arbitrary bytes as QEMU's query-pci answer (the `return` member). Reading it for free
// hot-plug ports and for a device never throws, whatever the types and nesting.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vmm/qemu_pci_bus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto answer = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (answer.is_discarded()) return 0;
  (void)vhp::qemu_pci::free_ports(answer);
  (void)vhp::qemu_pci::has_device(answer, "pci_hotplug_1");
  return 0;
}
