#pragma once
// USB rule groups (`usbPassthrough`) and the reference's matching semantics, exactly.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device/usb_device.h"
#include "policy/module_resolver.h"

namespace re2 {
class RE2;
}

namespace vhp {

// A rule's regular expression, as the reference's Python re.match(pattern, text, re.IGNORECASE):
// anchored at the start only, case-insensitive. RE2 runs it, in time linear in the text: no
// device string can stall the event loop. Throws std::invalid_argument with RE2's reason.
class Pattern {
 public:
  explicit Pattern(std::string source);
  const std::string& source() const { return source_; }
  bool matches(const std::string& text) const;

 private:
  std::string source_;
  std::shared_ptr<const re2::RE2> regex_;
};

// One `allow`/`deny` entry. Its criteria are OR-ed, in this order: vendorId+productId, vendorName or
// productName, bus+port, deviceClass, interfaceClass, driverPath. `removable` is an AND gate.
struct UsbSelector {
  bool enabled = true;
  std::string description;
  std::optional<std::string> vendor_id, product_id;  // lowercase; both needed
  std::optional<Pattern> vendor_name, product_name;
  std::optional<int> bus;
  std::optional<int> root_port;              // "port": 2 (the reference: first element of the port chain)
  std::optional<std::vector<int>> port_path; // "port": "2.1" (ours: exact port path)
  int device_class = 0, device_subclass = 0, device_protocol = 0;           // 0: absent / wildcard
  int interface_class = 0, interface_subclass = 0, interface_protocol = 0;
  std::optional<Pattern> driver_path;
  enum class Removable { Absent, List, NotAList } removable_kind = Removable::Absent;
  std::vector<std::string> removable;  // lowercase

  bool matches(const UsbDevice& d, ModuleResolver& modules) const;
};

struct UsbRuleGroup {
  bool enabled = true;
  std::string description;
  std::optional<std::string> target_vm;
  std::vector<std::string> allowed_vms;
  std::vector<UsbSelector> allow, deny;
  bool skip_on_suspend = false;
  std::optional<std::string> tag;

  // allow matched and no deny matched (within this group only).
  bool matches(const UsbDevice& d, ModuleResolver& modules) const;
};

// The device's interfaces as the reference reads them: from the ID_USB_INTERFACES string.
struct InterfaceTriple {
  int cls, subclass, protocol;
};
std::vector<InterfaceTriple> parse_interfaces(const std::optional<std::string>& interfaces);

// The modaliases a driverPath rule resolves, one per interface as the kernel writes them.
std::vector<std::string> usb_modaliases(const UsbDevice& d);

}  // namespace vhp
