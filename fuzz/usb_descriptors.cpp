// libFuzzer: arbitrary bytes as a sysfs `descriptors` file. The parser stays in bounds (ASan) and returns
// interfaces sorted by number, each number once, each field a byte, driver and modalias empty.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "device/usb_descriptors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto interfaces = vhp::interfaces_from_descriptors(std::span(data, size));
  for (size_t n = 0; n < interfaces.size(); ++n) {
    const auto& i = interfaces[n];
    if (n > 0 && interfaces[n - 1].number >= i.number) std::abort();
    for (int field : {i.number, i.interface_class, i.interface_subclass, i.interface_protocol})
      if (field < 0 || field > 0xff) std::abort();
    if (!i.driver.empty() || !i.modalias.empty()) std::abort();
  }
  return 0;
}
