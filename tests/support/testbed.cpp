#include "support/testbed.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <umockdev.h>

namespace vhp::test {
namespace {

namespace fs = std::filesystem;

// NULL-terminated "k", "v", "k", "v", … array for umockdev_testbed_add_devicev.
class KeyValues {
 public:
  explicit KeyValues(const Strings& map) {
    for (const auto& [k, v] : map) {
      storage_.push_back(k);
      storage_.push_back(v);
    }
    for (auto& s : storage_) ptrs_.push_back(s.data());
    ptrs_.push_back(nullptr);
  }
  char** get() { return ptrs_.data(); }

 private:
  std::vector<std::string> storage_;
  std::vector<char*> ptrs_;
};

std::string hex(unsigned value, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*x", width, value);
  return buf;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string HEX(unsigned value, int width) { return upper(hex(value, width)); }

std::string udev_encode(std::string s) {  // udev's ID_VENDOR/ID_MODEL replace blanks with '_'
  for (auto& c : s)
    if (c == ' ') c = '_';
  return s;
}

}  // namespace

std::string pci_path(const std::string& address) { return "/sys/devices/" + address; }

Testbed::Testbed() : tb_(umockdev_testbed_new()) {
  if (!tb_) throw std::runtime_error("umockdev_testbed_new failed");
}

Testbed::~Testbed() { g_object_unref(tb_); }

std::string Testbed::add_device(const std::string& subsystem, const std::string& name, const std::string& parent,
                                const Strings& attributes, const Strings& properties) {
  KeyValues attrs(attributes), props(properties);
  gchar* path = umockdev_testbed_add_devicev(tb_, subsystem.c_str(), name.c_str(),
                                             parent.empty() ? nullptr : parent.c_str(), attrs.get(), props.get());
  if (!path) throw std::runtime_error("umockdev could not add " + name);
  std::string result = path;
  g_free(path);
  return result;
}

std::string Testbed::add_pci(const PciSpec& s) {
  std::string upper_vendor = upper(s.vendor), upper_device = upper(s.device);
  Strings attrs{{"vendor", "0x" + s.vendor},
                {"device", "0x" + s.device},
                {"subsystem_vendor", "0x" + s.subsystem_vendor},
                {"subsystem_device", "0x" + s.subsystem_device},
                {"class", "0x" + hex(s.class_code, 6)}};
  Strings props{{"PCI_ID", upper_vendor + ":" + upper_device},
                {"PCI_SUBSYS_ID", upper(s.subsystem_vendor) + ":" + upper(s.subsystem_device)},
                {"PCI_CLASS", HEX(s.class_code, 1)},
                {"PCI_SLOT_NAME", s.address},
                {"MODALIAS", "pci:v0000" + upper_vendor + "d0000" + upper_device}};
  for (const auto& [k, v] : s.extra_properties) props[k] = v;
  std::string path = add_device("pci", s.address, "", attrs, props);
  if (!s.driver.empty()) set_link(path, "driver", "../../bus/pci/drivers/" + s.driver);
  if (s.iommu_group >= 0) {
    std::string group = "kernel/iommu_groups/" + std::to_string(s.iommu_group);
    fs::create_directories(fs::path(sys_dir()) / group / "devices");
    fs::create_symlink("../../../../devices/" + s.address, fs::path(sys_dir()) / group / "devices" / s.address);
    set_link(path, "iommu_group", "../../" + group);
  }
  return path;
}

std::string Testbed::add_usb(const UsbSpec& s) {
  bool root_hub = s.name.starts_with("usb");
  std::string devpath = root_hub ? "0" : s.name.substr(s.name.find('-') + 1);
  char node[32];
  std::snprintf(node, sizeof node, "/dev/bus/usb/%03d/%03d", s.busnum, s.devnum);

  Strings attrs{{"busnum", std::to_string(s.busnum)},
                {"devnum", std::to_string(s.devnum)},
                {"devpath", devpath},
                {"idVendor", s.vid},
                {"idProduct", s.pid},
                {"bcdDevice", "0100"},
                {"bDeviceClass", hex(s.cls, 2)},
                {"bDeviceSubClass", hex(s.subclass, 2)},
                {"bDeviceProtocol", hex(s.protocol, 2)},
                {"bNumInterfaces", " " + std::to_string(s.interfaces.size())},
                {"bConfigurationValue", "1"},
                {"bmAttributes", s.self_powered ? "c0" : "80"},
                {"speed", s.speed},
                {"removable", s.removable}};
  if (!s.manufacturer.empty()) attrs["manufacturer"] = s.manufacturer;
  if (!s.product.empty()) attrs["product"] = s.product;
  if (!s.serial.empty()) attrs["serial"] = s.serial;
  for (const auto& [k, v] : s.attribute_overrides) attrs[k] = v;

  char busnum[8], devnum[8];
  std::snprintf(busnum, sizeof busnum, "%03d", s.busnum);
  std::snprintf(devnum, sizeof devnum, "%03d", s.devnum);
  Strings props{{"DEVNAME", node},
                {"DEVTYPE", "usb_device"},
                {"BUSNUM", busnum},
                {"DEVNUM", devnum},
                {"PRODUCT", s.vid + "/" + s.pid + "/100"},
                {"TYPE", std::to_string(s.cls) + "/" + std::to_string(s.subclass) + "/" + std::to_string(s.protocol)}};
  if (s.udev_properties) {
    props["ID_VENDOR_ID"] = s.vid;
    props["ID_MODEL_ID"] = s.pid;
    if (!s.manufacturer.empty()) props["ID_VENDOR"] = udev_encode(s.manufacturer);
    if (!s.product.empty()) props["ID_MODEL"] = udev_encode(s.product);
    if (!s.serial.empty()) props["ID_SERIAL_SHORT"] = s.serial;
    if (!s.interfaces.empty()) {
      std::string list = ":";
      for (const auto& i : s.interfaces) {
        std::string entry = hex(i.cls, 2) + hex(i.subclass, 2) + hex(i.protocol, 2) + ":";
        if (list.find(":" + entry) == std::string::npos) list += entry;
      }
      props["ID_USB_INTERFACES"] = list;
    }
  }
  for (const auto& [k, v] : s.extra_properties) props[k] = v;

  std::string path = add_device("usb", s.name, s.parent, attrs, props);
  if (!s.driver.empty()) set_link(path, "driver", "../../../bus/usb/drivers/" + s.driver);
  for (size_t n = 0; n < s.interfaces.size(); ++n) {
    const auto& i = s.interfaces[n];
    std::string name = s.name + ":1." + std::to_string(n);
    std::string modalias = "usb:v" + upper(s.vid) + "p" + upper(s.pid) + "d0100dc" + HEX(s.cls, 2) + "dsc" +
                           HEX(s.subclass, 2) + "dp" + HEX(s.protocol, 2) + "ic" + HEX(i.cls, 2) + "isc" +
                           HEX(i.subclass, 2) + "ip" + HEX(i.protocol, 2) + "in" + HEX(static_cast<unsigned>(n), 2);
    std::string ipath = add_device("usb", name, path,
                                   {{"bInterfaceNumber", hex(static_cast<unsigned>(n), 2)},
                                    {"bInterfaceClass", hex(i.cls, 2)},
                                    {"bInterfaceSubClass", hex(i.subclass, 2)},
                                    {"bInterfaceProtocol", hex(i.protocol, 2)},
                                    {"modalias", modalias}},
                                   {{"DEVTYPE", "usb_interface"}, {"MODALIAS", modalias}});
    if (!i.driver.empty()) set_link(ipath, "driver", "../../../../bus/usb/drivers/" + i.driver);
  }
  return path;
}

void Testbed::set_attribute(const std::string& sys_path, const std::string& name, const std::string& value) {
  umockdev_testbed_set_attribute(tb_, sys_path.c_str(), name.c_str(), value.c_str());
}

void Testbed::set_link(const std::string& sys_path, const std::string& name, const std::string& target) {
  gchar* root = umockdev_testbed_get_root_dir(tb_);
  std::error_code ignored;  // umockdev refuses to replace a link, as rebinding a driver does
  fs::remove(fs::path(root + sys_path) / name, ignored);
  g_free(root);
  umockdev_testbed_set_attribute_link(tb_, sys_path.c_str(), name.c_str(), target.c_str());
}

void Testbed::uevent(const std::string& sys_path, const std::string& action) {
  umockdev_testbed_uevent(tb_, sys_path.c_str(), action.c_str());
}

void Testbed::unplug(const std::string& sys_path) {
  uevent(sys_path, "remove");
  umockdev_testbed_remove_device(tb_, sys_path.c_str());
}

std::string Testbed::sys_dir() const {
  gchar* dir = umockdev_testbed_get_sys_dir(tb_);
  std::string result = dir;
  g_free(dir);
  return result;
}

}  // namespace vhp::test
