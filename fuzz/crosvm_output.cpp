// libFuzzer: arbitrary bytes as what `crosvm usb list|attach` and `crosvm vfio list` print. Each
// reader gives an answer or nothing; ports stay within crosvm's u8.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "vmm/crosvm_output.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string out(reinterpret_cast<const char*>(data), size);
  if (auto ports = vhp::parse_usb_list(out))
    for (const auto& [port, ids] : *ports)
      if (port < 0 || port > 255 || ids.find(':') == std::string::npos) std::abort();
  if (auto port = vhp::parse_usb_attached(out); port && (*port < 0 || *port > 255)) std::abort();
  if (auto paths = vhp::parse_vfio_list(out))
    for (const auto& p : *paths)
      if (p.empty()) std::abort();
  return 0;
}
