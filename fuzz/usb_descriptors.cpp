// libFuzzer: arbitrary bytes as a sysfs `descriptors` file, the first byte also naming the active
// configuration. The parser stays in bounds (ASan), ends, and returns interfaces sorted by number, each
// number once, each field a byte.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "device/usb_descriptors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto check = [](const std::vector<vhp::UsbInterface>& interfaces) {
    for (size_t n = 0; n < interfaces.size(); ++n) {
      const auto& i = interfaces[n];
      if (n > 0 && interfaces[n - 1].number >= i.number) std::abort();
      for (int field : {i.number, i.interface_class, i.interface_subclass, i.interface_protocol})
        if (field < 0 || field > 0xff) std::abort();
    }
  };
  check(vhp::interfaces_from_descriptors(std::span(data, size)));
  if (size > 0) check(vhp::interfaces_from_descriptors(std::span(data, size), data[0]));
  return 0;
}
