#include "thunder/metadata.h"

#include <algorithm>

namespace vhp::thunder {

using ordered_json = nlohmann::ordered_json;

const char* bus_speed(UsbSpeed speed) {
  switch (speed) {
    case UsbSpeed::Low: return "SPEED_LOW";
    case UsbSpeed::High: return "SPEED_HIGH";
    case UsbSpeed::Super:
    case UsbSpeed::SuperPlus:
    case UsbSpeed::SuperPlusX2: return "SPEED_SUPER";  // IUSBHub has nothing faster
    case UsbSpeed::Full:
    case UsbSpeed::Unknown: break;                    // unknown: the USB 1.1 baseline
  }
  return "SPEED_FULL";
}

const char* status(const UsbDevice& d) {
  if (!d.configured) return "STATUS_NO_DEVICE_CONNECTED";
  return d.self_powered ? "STATUS_SELF_POWERED" : "STATUS_ACTIVE";
}

namespace {

ordered_json product_info(int language_id, const std::string& serial, const std::string& manufacturer, const std::string& product) {
  return {{"languageId", language_id}, {"serialNumber", serial}, {"manufacturer", manufacturer}, {"product", product}};
}

}  // namespace

ordered_json device_metadata(const UsbDevice& d, bool switchable, const std::string& device_path) {
  // Class 0 (per interface) is refined for mass storage, as RDK's USBDevice does: storage clients key on class 8.
  int cls = d.device_class, subclass = d.device_subclass;
  if (cls == 0) {
    auto storage = std::ranges::find_if(d.interface_list, [](const UsbInterface& i) { return i.interface_class == 8; });
    if (storage != d.interface_list.end()) cls = 8, subclass = storage->interface_subclass;
  }
  bool strings = d.language_id != 0;
  auto empty = product_info(0, "", "", "");
  return {
      {"deviceName", d.device_name()},
      {"parentId", d.parent_devnum ? (d.busnum << 8) | d.parent_devnum : 0},
      {"status", status(d)},
      {"deviceLevel", d.level()},
      {"portNumber", d.port_number()},
      {"protocol", d.device_protocol},
      {"busSpeed", bus_speed(d.speed)},
      {"serialNumber", d.serial.value_or("")},
      {"flags", switchable ? "FLAGS_SWITCHABLE" : "FLAGS_AVAILABLE"},
      {"vendorId", std::stoi(d.vid, nullptr, 16)},
      {"productId", std::stoi(d.pid, nullptr, 16)},
      {"deviceClass", cls},
      {"deviceSubclass", subclass},
      {"devicePath", device_path},
      {"features", 0},
      {"numLanguageIds", strings ? 1 : 0},
      // languageId is a uint8 in IUSBHub: the LANGID's low byte, its primary language (0x0409 → 9).
      {"productInfo1", strings ? product_info(d.language_id & 0xFF, d.serial.value_or(""), d.manufacturer.value_or(""),
                                              d.product.value_or(""))
                               : empty},
      {"productInfo2", empty},
      {"productInfo3", empty},
      {"productInfo4", empty},
  };
}

}  // namespace vhp::thunder
