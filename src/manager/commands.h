#pragma once
// API requests that act on devices, parsed and type-checked by the protocol, run by Passthrough.
#include <optional>
#include <string>
#include <variant>

namespace vhp {

// Which device(s) a request means. Precedence, as the reference: device_node, bus+port, tag, vid+pid.
struct DeviceSelector {
  std::optional<std::string> device_node;
  std::optional<int> bus;
  std::optional<std::string> port;  // "2" is the root port (as the reference); "2.1" a full port path (ours)
  std::optional<std::string> tag;
  std::optional<std::string> vid, pid;  // lowercase

  enum class Kind { None, Node, Place, Tag, Ids };
  // The criterion that applies, by the precedence above.
  Kind kind() const {
    if (device_node) return Kind::Node;
    if (bus && port) return Kind::Place;
    if (tag) return Kind::Tag;
    if (vid && pid) return Kind::Ids;
    return Kind::None;
  }
};

struct UsbAttach {
  DeviceSelector selector;
  std::optional<std::string> vm;
};

struct UsbDetach {
  DeviceSelector selector;
};

using Command = std::variant<UsbAttach, UsbDetach>;

}  // namespace vhp
