#pragma once
// evdevPassthrough rules: which VM gets a (non-USB) input device, matched as the reference does.
#include <optional>
#include <string>
#include <vector>

#include "device/evdev_device.h"
#include "policy/usb_rules.h"  // Pattern

namespace vhp {

// One `allow`/`deny` entry. Its criteria are OR-ed: name (the input device's name), pathTag
// (ID_PATH_TAG), a udev property equal to value (case-insensitively).
struct EvdevSelector {
  bool enabled = true;
  std::optional<Pattern> name, path_tag;
  std::optional<std::string> property, value;

  bool matches(const EvdevDevice& d) const;
};

struct EvdevRuleGroup {
  bool enabled = true;
  std::string description;
  std::optional<std::string> target_vm;
  std::vector<EvdevSelector> allow, deny;
  std::optional<std::string> tag;

  bool matches(const EvdevDevice& d) const;  // some allow entry and no deny entry
};

}  // namespace vhp
