#pragma once
// A host input device (an evdev node, /dev/input/eventN) that is not on USB: a laptop's built-in
// keyboard, touchpad, lid switch. USB input devices pass through as USB devices instead.
#include <map>
#include <optional>
#include <string>

#include <libudev.h>
#include <nlohmann/json.hpp>

namespace vhp {

struct EvdevDevice {
  std::string sys_path;                 // /sys/devices/…/input/input3/event3
  std::string sys_name;                 // event3
  std::string name;                     // the input device's name (what EVIOCGNAME answers)
  std::optional<std::string> bus;       // ID_BUS: i8042, platform, …
  std::string device_node;              // /dev/input/event3
  std::optional<std::string> path_tag;  // ID_PATH_TAG
  std::map<std::string, std::string> properties;  // every udev property, for `property`+`value` rules
  bool operator==(const EvdevDevice&) const = default;
};

// The reference's passthrough candidates: subsystem input, named event*, ID_INPUT=1, not on USB.
bool is_evdev_device(udev_device* dev);
EvdevDevice read_evdev_device(udev_device* dev);

// The reference's EvdevInfo.to_dict: name, sys_name, bus, device_node, path_tag.
nlohmann::ordered_json to_json(const EvdevDevice& d);
std::string friendly_name(const EvdevDevice& d);  // "AT Translated Set 2 keyboard (/dev/input/event3)"

}  // namespace vhp
