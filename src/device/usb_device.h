#pragma once
// A USB device as captured when it appeared (sysfs is gone by the time it is removed).
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp {

struct UsbInterface {
  int number = 0;
  int interface_class = 0;
  int interface_subclass = 0;
  int interface_protocol = 0;
  bool operator==(const UsbInterface&) const = default;
};

// Link speed as sysfs `speed` reports it (Mbit/s: 1.5, 12, 480, 5000, 10000, 20000).
enum class UsbSpeed { Unknown, Low, Full, High, Super, SuperPlus, SuperPlusX2 };
UsbSpeed usb_speed_from_sysfs(std::string_view mbps);

struct UsbDevice {
  std::string sys_path;     // /sys/devices/…/3-2.1
  std::string sys_name;     // 3-2.1 (usbN for a root hub)
  std::string devpath;      // 2.1 (0 for a root hub)
  std::string device_node;  // /dev/bus/usb/003/012
  std::string vid, pid;     // lowercase 4-digit hex
  std::optional<std::string> vendor_name, product_name;  // hwdb names, else the device's own strings
  std::optional<std::string> interfaces;                  // udev's ID_USB_INTERFACES, e.g. ":030101:0b0000:"
  std::optional<std::string> serial;
  std::optional<std::string> manufacturer, product;       // the device's own string descriptors
  int device_class = 0, device_subclass = 0, device_protocol = 0;
  int bcd_device = 0;
  int busnum = 0, devnum = 0;
  std::vector<int> ports;   // devpath as numbers; empty for a root hub
  std::string removable;    // fixed | removable | unknown | "" when sysfs does not say
  bool is_hub = false;
  UsbSpeed speed = UsbSpeed::Unknown;
  bool configured = false;   // has an active configuration
  bool self_powered = false; // bmAttributes bit 6 of the active configuration
  int language_id = 0;       // LANGID the kernel read the strings in (0x0409 when strings exist; sysfs has no table)
  std::string parent_sys_name;  // the parent USB device (hub); empty for a root hub
  int parent_devnum = 0;        // its device number; 0 for a root hub
  std::string driver;
  std::vector<UsbInterface> interface_list;

  int root_port() const { return ports.empty() ? 0 : ports.front(); }
  int port_number() const { return ports.empty() ? 0 : ports.back(); }
  int level() const { return static_cast<int>(ports.size()); }
  std::string device_name() const;  // "BBB/DDD", as RDK names USB devices
  bool operator==(const UsbDevice&) const = default;
};

// The reference's device object, key order and types included:
// device_node, vid, pid, vendor_name, product_name, interfaces, device_class, device_subclass,
// device_protocol, busnum, devnum, portnum, serial, sys_name.
nlohmann::ordered_json to_json(const UsbDevice& d);

}  // namespace vhp
