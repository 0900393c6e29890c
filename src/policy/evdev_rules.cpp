#include "policy/evdev_rules.h"

#include <algorithm>
#include <strings.h>

namespace vhp {

bool EvdevSelector::matches(const EvdevDevice& d) const {
  if (!enabled) return false;
  if (name && !name->source().empty() && name->matches(d.name)) return true;
  if (path_tag && !path_tag->source().empty() && path_tag->matches(d.path_tag.value_or(""))) return true;
  if (property && value && !property->empty() && !value->empty()) {
    auto it = d.properties.find(*property);
    // Python's casefold() equality, for the ASCII values udev properties hold.
    if (it != d.properties.end() && !it->second.empty() && it->second.size() == value->size() &&
        ::strcasecmp(it->second.c_str(), value->c_str()) == 0)
      return true;
  }
  return false;
}

bool EvdevRuleGroup::matches(const EvdevDevice& d) const {
  auto hit = [&](const EvdevSelector& s) { return s.matches(d); };
  return std::ranges::any_of(allow, hit) && std::ranges::none_of(deny, hit);
}

}  // namespace vhp
