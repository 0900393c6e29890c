#include "device/udev_reader.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "device/parse.h"
#include "device/sysfs_dir.h"
#include "device/usb_descriptors.h"

namespace vhp {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> non_empty(const char* value) {
  if (value == nullptr) return std::nullopt;
  auto v = trim(value);
  if (v.empty()) return std::nullopt;
  return std::string(v);
}

// Typed access to one device's udev properties and its sysfs attributes (read relative to its
// directory, opened once), with errors naming the field.
class Fields {
 public:
  explicit Fields(udev_device* dev) : dev_(dev), dir_(udev_device_get_syspath(dev)) {}

  std::optional<std::string> prop(const char* name) const { return non_empty(udev_device_get_property_value(dev_, name)); }
  std::optional<std::string> attr(const char* name) const {
    auto value = dir_.read(name);
    return value ? non_empty(value->c_str()) : std::nullopt;
  }
  // The first present of a property and then an attribute.
  std::optional<std::string> prop_or_attr(const char* property, const char* attribute) const {
    if (auto v = prop(property)) return v;
    return attr(attribute);
  }

  static long number(const std::optional<std::string>& text, int base, const char* what) {
    if (!text) throw DeviceReadError(std::string("missing ") + what);
    auto v = parse_number(*text, base);
    if (!v) throw DeviceReadError(std::string("unparsable ") + what + " '" + *text + "'");
    return *v;
  }
  // Optional numeric value: 0 when absent, an error when present but malformed.
  static int optional_number(const std::optional<std::string>& text, int base, long max, const char* what) {
    if (!text) return 0;
    long v = number(text, base, what);
    if (v > max) throw DeviceReadError(std::string("out-of-range ") + what + " '" + *text + "'");
    return static_cast<int>(v);
  }
  int attr_number(const char* name, int base, long max) const { return optional_number(attr(name), base, max, name); }

  const SysfsDir& dir() const { return dir_; }

 private:
  udev_device* dev_;
  SysfsDir dir_;
};

std::string hex4(const std::optional<std::string>& text, const char* what) {
  long v = Fields::number(text, 16, what);
  if (v > 0xFFFF) throw DeviceReadError(std::string("out-of-range ") + what + " '" + *text + "'");
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04lx", v);
  return buf;
}

std::vector<int> parse_ports(const std::string& devpath) {
  std::vector<int> ports;
  if (devpath == "0") return ports;  // root hub
  std::string_view rest = devpath;
  while (true) {
    auto dot = rest.find('.');
    auto port = parse_number(rest.substr(0, dot), 10);
    if (!port || *port == 0 || *port > 255) throw DeviceReadError("malformed devpath '" + devpath + "'");
    ports.push_back(static_cast<int>(*port));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return ports;
}

// The hub a device hangs off is the directory holding its own, for every device but a root hub (whose
// parent is its controller): one file read rather than a udev device for the hub.
void read_parent_hub(UsbDevice& d, const Fields& f) {
  if (d.ports.empty()) return;  // a root hub
  auto text = f.attr("../devnum");
  if (!text) return;  // no USB device above (only a test's sysfs hangs one elsewhere)
  d.parent_sys_name = fs::path(d.sys_path).parent_path().filename().string();
  d.parent_devnum = static_cast<int>(parse_number(*text, 10).value_or(0));
}

// udev's ID_USB_INTERFACES format: ":" + "ccsspp:" for each distinct interface.
std::optional<std::string> interfaces_string(const std::vector<UsbInterface>& list) {
  if (list.empty()) return std::nullopt;
  std::string s = ":";
  for (const auto& i : list) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%02x%02x%02x", i.interface_class, i.interface_subclass, i.interface_protocol);
    if (s.find(std::string(":") + buf + ":") == std::string::npos) s += std::string(buf) + ":";
  }
  return s;
}

bool lists_hub_interface(const std::optional<std::string>& interfaces) {
  if (!interfaces) return false;
  std::string_view s = *interfaces;
  for (size_t pos = 0; (pos = s.find(':', pos)) != std::string_view::npos && pos + 2 < s.size(); ++pos) {
    if (s.substr(pos + 1, 2) == "09") return true;
  }
  return false;
}

}  // namespace

bool is_usb_device(udev_device* dev) {
  const char* subsystem = udev_device_get_subsystem(dev);
  const char* devtype = udev_device_get_devtype(dev);
  return subsystem && devtype && std::string_view(subsystem) == "usb" && std::string_view(devtype) == "usb_device";
}

bool is_pci_device(udev_device* dev) {
  const char* subsystem = udev_device_get_subsystem(dev);
  return subsystem && std::string_view(subsystem) == "pci";
}

UsbDevice read_usb_device(udev_device* dev) {
  Fields f(dev);
  UsbDevice d;
  d.sys_path = udev_device_get_syspath(dev);
  d.sys_name = udev_device_get_sysname(dev);
  d.busnum = static_cast<int>(Fields::number(f.prop_or_attr("BUSNUM", "busnum"), 10, "busnum"));
  d.devnum = static_cast<int>(Fields::number(f.prop_or_attr("DEVNUM", "devnum"), 10, "devnum"));
  if (d.busnum == 0 || d.busnum > 999 || d.devnum == 0 || d.devnum > 999)
    throw DeviceReadError("out-of-range bus/device number " + std::to_string(d.busnum) + "/" + std::to_string(d.devnum));
  d.vid = hex4(f.prop_or_attr("ID_VENDOR_ID", "idVendor"), "idVendor");
  d.pid = hex4(f.prop_or_attr("ID_MODEL_ID", "idProduct"), "idProduct");

  if (const char* node = udev_device_get_devnode(dev)) d.device_node = node;
  else if (auto name = f.prop("DEVNAME")) d.device_node = *name;
  else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "/dev/bus/usb/%03d/%03d", d.busnum, d.devnum);
    d.device_node = buf;
  }

  auto dash = d.sys_name.find('-');
  d.devpath = f.attr("devpath").value_or(dash == std::string::npos ? "0" : d.sys_name.substr(dash + 1));
  d.ports = parse_ports(d.devpath);

  d.device_class = f.attr_number("bDeviceClass", 16, 0xFF);
  d.device_subclass = f.attr_number("bDeviceSubClass", 16, 0xFF);
  d.device_protocol = f.attr_number("bDeviceProtocol", 16, 0xFF);
  d.bcd_device = f.attr_number("bcdDevice", 16, 0xFFFF);

  d.manufacturer = f.attr("manufacturer");
  d.product = f.attr("product");
  d.vendor_name = f.prop("ID_VENDOR_FROM_DATABASE");
  if (!d.vendor_name) d.vendor_name = f.prop("ID_VENDOR");
  if (!d.vendor_name) d.vendor_name = d.manufacturer;
  d.product_name = f.prop("ID_MODEL_FROM_DATABASE");
  if (!d.product_name) d.product_name = f.prop("ID_MODEL");
  if (!d.product_name) d.product_name = d.product;
  auto serial_attribute = f.attr("serial");
  d.serial = f.prop("ID_SERIAL_SHORT");
  if (!d.serial) d.serial = serial_attribute;
  d.language_id = (d.manufacturer || d.product || serial_attribute) ? 0x0409 : 0;

  d.removable = f.attr("removable").value_or("");
  d.speed = usb_speed_from_sysfs(f.attr("speed").value_or(""));
  auto configuration = f.attr("bConfigurationValue");  // empty while unconfigured
  d.configured = configuration.has_value();
  d.self_powered = d.configured && (f.attr_number("bmAttributes", 16, 0xFF) & 0x40) != 0;
  read_parent_hub(d, f);
  // As libudev: the event's DRIVER when it names one, else the link as it is now.
  if (auto drv = f.prop("DRIVER")) d.driver = *drv;
  else if (auto link = f.dir().link_name("driver")) d.driver = *link;

  // One read of the raw descriptors rather than a udev device per interface directory: they are there
  // from the add uevent on, for an unauthorized (never configured) device too.
  if (auto descriptors = read_descriptors_file(f.dir())) {
    std::optional<int> active;
    if (configuration) active = Fields::optional_number(configuration, 10, 0xFF, "bConfigurationValue");
    d.interface_list = interfaces_from_descriptors(*descriptors, active);
  }
  d.interfaces = f.prop("ID_USB_INTERFACES");
  if (!d.interfaces) d.interfaces = interfaces_string(d.interface_list);
  d.is_hub = d.device_class == 9 || lists_hub_interface(d.interfaces) ||
             std::ranges::any_of(d.interface_list, [](const UsbInterface& i) { return i.interface_class == 9; });
  return d;
}

namespace {

// "8086:A0F0" → {"8086", "A0F0"}
std::optional<std::pair<std::string, std::string>> split_pair(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  auto colon = text->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::pair{text->substr(0, colon), text->substr(colon + 1)};
}

// sysfs "0x8086" → "8086", the form udev's PCI_ID uses.
std::optional<std::string> udev_hex(const std::optional<std::string>& sysfs) {
  if (!sysfs) return std::nullopt;
  std::string_view v = *sysfs;
  if (v.starts_with("0x") || v.starts_with("0X")) v.remove_prefix(2);
  return to_upper(std::string(v));
}

int hex16(const std::string& text, const char* what) {
  long v = Fields::number(text, 16, what);
  if (v > 0xFFFF) throw DeviceReadError(std::string("out-of-range ") + what + " '" + text + "'");
  return static_cast<int>(v);
}

void read_iommu_group(PciDevice& d) {
  std::error_code ec;
  auto link = fs::read_symlink(fs::path(d.sys_path) / "iommu_group", ec);
  if (ec) return;  // no IOMMU, or not in a group
  auto group = parse_number(link.filename().string(), 10);
  if (!group || *group > 1'000'000) return;
  d.iommu_group = static_cast<int>(*group);
  for (const auto& entry : fs::directory_iterator(fs::path(d.sys_path) / "iommu_group" / "devices", ec))
    d.iommu_group_members.push_back(entry.path().filename().string());
  if (std::ranges::find(d.iommu_group_members, d.address) == d.iommu_group_members.end())
    d.iommu_group_members.push_back(d.address);
  std::ranges::sort(d.iommu_group_members);
}

}  // namespace

PciDevice read_pci_device(udev_device* dev) {
  Fields f(dev);
  PciDevice d;
  d.sys_path = udev_device_get_syspath(dev);
  d.address = udev_device_get_sysname(dev);
  if (const char* drv = udev_device_get_driver(dev)) d.driver = drv;

  auto ids = split_pair(f.prop("PCI_ID"));
  if (!ids) {
    auto vendor = udev_hex(f.attr("vendor"));
    auto device = udev_hex(f.attr("device"));
    if (!vendor || !device) throw DeviceReadError("missing PCI_ID and vendor/device attributes");
    ids = std::pair{*vendor, *device};
  }
  d.vid = ids->first;
  d.did = ids->second;
  d.vendor_id = hex16(d.vid, "PCI vendor id");
  d.device_id = hex16(d.did, "PCI device id");

  if (auto cls = f.prop_or_attr("PCI_CLASS", "class")) {
    long v = Fields::number(cls, 16, "PCI class");
    if (v > 0xFFFFFF) throw DeviceReadError("out-of-range PCI class '" + *cls + "'");
    d.pci_class = static_cast<int>(v >> 16);
    d.pci_subclass = static_cast<int>((v >> 8) & 0xFF);
    d.pci_prog_if = static_cast<int>(v & 0xFF);
  }
  if (auto subsys = split_pair(f.prop("PCI_SUBSYS_ID"))) {
    d.subsystem_vendor_id = subsys->first;
    d.subsystem_id = subsys->second;
  } else {
    d.subsystem_vendor_id = udev_hex(f.attr("subsystem_vendor"));
    d.subsystem_id = udev_hex(f.attr("subsystem_device"));
  }
  d.vendor_name = f.prop("ID_VENDOR_FROM_DATABASE");
  d.device_name = f.prop("ID_MODEL_FROM_DATABASE");
  read_iommu_group(d);
  return d;
}

}  // namespace vhp
