#include "device/evdev_device.h"

#include <cstring>

#include "device/json_util.h"
#include "device/printable.h"

namespace vhp {
namespace {

std::optional<std::string> value(const char* v) { return v && *v ? std::optional<std::string>(v) : std::nullopt; }

// EVIOCGNAME answers the input device's name, which sysfs shows as the parent inputN's `name`:
// read there, so that no device node is opened on the event loop.
std::string input_name(udev_device* dev) {
  if (udev_device* parent = udev_device_get_parent_with_subsystem_devtype(dev, "input", nullptr))
    if (auto name = value(udev_device_get_sysattr_value(parent, "name"))) return *name;
  std::string name = value(udev_device_get_property_value(dev, "NAME")).value_or("");
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
  return name;
}

}  // namespace

bool is_evdev_device(udev_device* dev) {
  const char* subsystem = udev_device_get_subsystem(dev);
  const char* sys_name = udev_device_get_sysname(dev);
  return subsystem && std::strcmp(subsystem, "input") == 0 && sys_name && std::strncmp(sys_name, "event", 5) == 0 &&
         value(udev_device_get_property_value(dev, "ID_INPUT")) == "1" &&
         value(udev_device_get_property_value(dev, "ID_BUS")) != "usb";
}

EvdevDevice read_evdev_device(udev_device* dev) {
  EvdevDevice d;
  d.sys_path = udev_device_get_syspath(dev);
  d.sys_name = udev_device_get_sysname(dev);
  d.name = input_name(dev);
  d.bus = value(udev_device_get_property_value(dev, "ID_BUS"));
  d.device_node = value(udev_device_get_devnode(dev)).value_or("/dev/input/" + d.sys_name);
  d.path_tag = value(udev_device_get_property_value(dev, "ID_PATH_TAG"));
  for (auto* p = udev_device_get_properties_list_entry(dev); p; p = udev_list_entry_get_next(p))
    d.properties.emplace(udev_list_entry_get_name(p), value(udev_list_entry_get_value(p)).value_or(""));
  return d;
}

nlohmann::ordered_json to_json(const EvdevDevice& d) {
  return {
      {"name", d.name},
      {"sys_name", d.sys_name},
      {"bus", optional_string(d.bus)},
      {"device_node", d.device_node},
      {"path_tag", optional_string(d.path_tag)},
  };
}

std::string friendly_name(const EvdevDevice& d) { return printable(d.name) + " (" + d.device_node + ")"; }

}  // namespace vhp
