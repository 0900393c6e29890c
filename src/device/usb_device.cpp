#include "device/usb_device.h"

#include <cstdio>

#include "device/json_util.h"

namespace vhp {

UsbSpeed usb_speed_from_sysfs(std::string_view mbps) {
  if (mbps == "1.5") return UsbSpeed::Low;
  if (mbps == "12") return UsbSpeed::Full;
  if (mbps == "480") return UsbSpeed::High;
  if (mbps == "5000") return UsbSpeed::Super;
  if (mbps == "10000") return UsbSpeed::SuperPlus;
  if (mbps == "20000") return UsbSpeed::SuperPlusX2;
  return UsbSpeed::Unknown;
}

std::string UsbDevice::device_name() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%03d/%03d", busnum % 1000, devnum % 1000);
  return buf;
}

nlohmann::ordered_json to_json(const UsbDevice& d) {
  return {
      {"device_node", d.device_node},
      {"vid", d.vid},
      {"pid", d.pid},
      {"vendor_name", optional_string(d.vendor_name)},
      {"product_name", optional_string(d.product_name)},
      {"interfaces", optional_string(d.interfaces)},
      {"device_class", d.device_class},
      {"device_subclass", d.device_subclass},
      {"device_protocol", d.device_protocol},
      {"busnum", d.busnum},
      {"devnum", d.devnum},
      {"portnum", d.root_port()},
      {"serial", optional_string(d.serial)},
      {"sys_name", d.sys_name},
  };
}

}  // namespace vhp
