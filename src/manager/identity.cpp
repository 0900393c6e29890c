#include "manager/identity.h"

#include "device/printable.h"

namespace vhp {

std::string friendly_name(const UsbDevice& d) {
  return d.vid + ":" + d.pid + " (" + printable(d.vendor_name.value_or("None")) + " " + printable(d.product_name.value_or("None")) + ")";
}

std::string persistent_id(const UsbDevice& d) {
  std::string base = "usb-" + d.vid + ":" + d.pid + ":";
  if (d.serial) return base + *d.serial;
  return base + "port-" + std::to_string(d.busnum) + "-" + d.devpath;
}

std::vector<std::string> persistent_id_fallbacks(const UsbDevice& d) {
  if (d.serial) return {};
  return {"usb-" + d.vid + ":" + d.pid + ":None"};
}

}  // namespace vhp
