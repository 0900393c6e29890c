// libFuzzer: arbitrary bytes as cloud-hypervisor's vm.info body: read or refused, never an
// exception, whatever the members' types.
#include <cstdint>
#include <string_view>

#include "vmm/cloud_hypervisor_info.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vhp::parse_vm_info(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
