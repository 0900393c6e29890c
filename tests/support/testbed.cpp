#include "support/testbed.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {

// The binary sysfs `descriptors` attribute: the device descriptor, then one configuration with the
// spec's interfaces (one interrupt endpoint each). libusb (and so QEMU) reads devices from it.
std::vector<guint8> descriptors(const UsbSpec& s) {
  auto vid = static_cast<unsigned>(std::stoul(s.vid, nullptr, 16)), pid = static_cast<unsigned>(std::stoul(s.pid, nullptr, 16));
  std::vector<guint8> d = {18, 1, 0x00, 0x02, static_cast<guint8>(s.cls), static_cast<guint8>(s.subclass),
                           static_cast<guint8>(s.protocol), 64, static_cast<guint8>(vid & 0xff), static_cast<guint8>(vid >> 8),
                           static_cast<guint8>(pid & 0xff), static_cast<guint8>(pid >> 8), 0x00, 0x01,
                           static_cast<guint8>(s.manufacturer.empty() ? 0 : 1), static_cast<guint8>(s.product.empty() ? 0 : 2),
                           static_cast<guint8>(s.serial.empty() ? 0 : 3), 1};
  auto total = static_cast<unsigned>(9 + s.interfaces.size() * 16);
  std::vector<guint8> config = {9, 2, static_cast<guint8>(total & 0xff), static_cast<guint8>(total >> 8),
                                static_cast<guint8>(s.interfaces.size()), 1, 0,
                                static_cast<guint8>(s.self_powered ? 0xc0 : 0x80), 50};
  d.insert(d.end(), config.begin(), config.end());
  for (size_t n = 0; n < s.interfaces.size(); ++n) {
    const auto& i = s.interfaces[n];
    std::vector<guint8> intf = {9, 4, static_cast<guint8>(n), 0, 1, static_cast<guint8>(i.cls), static_cast<guint8>(i.subclass),
                                static_cast<guint8>(i.protocol), 0, 7, 5, static_cast<guint8>(0x81 + n), 3, 8, 0, 10};
    d.insert(d.end(), intf.begin(), intf.end());
  }
  return d;
}

}  // namespace

void Testbed::add_dev_node(const std::string& sys_path, int busnum, int devnum) {
  gchar* root = umockdev_testbed_get_root_dir(tb_);
  char rel[32];
  std::snprintf(rel, sizeof rel, "/dev/bus/usb/%03d/%03d", busnum, devnum);
  std::string node = std::string(root) + rel;
  g_free(root);
  fs::create_directories(fs::path(node).parent_path());
  ::unlink(node.c_str());
  if (::mkfifo(node.c_str(), 0666) != 0) throw std::runtime_error("mkfifo " + node);
  // A full FIFO: QEMU's poll on the node never fires, so an attached device costs it no CPU.
  int fd = ::open(node.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  std::vector<char> zeros(4096);
  while (::write(fd, zeros.data(), zeros.size()) > 0) {
  }
  dev_nodes_[sys_path] = {node, fd};
}

Testbed::Testbed() : tb_(umockdev_testbed_new()) {
  if (!tb_) throw std::runtime_error("umockdev_testbed_new failed");
}

Testbed::~Testbed() {
  for (auto& [path, node] : dev_nodes_) ::close(node.second);
  g_object_unref(tb_);
}

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
                {"class", "0x" + hex(s.class_code, 6)},
                {"driver_override", "(null)"}};  // as the kernel shows it unset
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

  if (s.dev_node) attrs["dev"] = "189:" + std::to_string((s.busnum - 1) * 128 + s.devnum - 1);
  std::string path = add_device("usb", s.name, s.parent, attrs, props);
  auto raw = descriptors(s);
  umockdev_testbed_set_attribute_binary(tb_, path.c_str(), "descriptors", raw.data(), raw.size());
  if (s.dev_node) add_dev_node(path, s.busnum, s.devnum);
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

std::string Testbed::plug(const UsbSpec& spec) {
  auto path = add_usb(spec);
  uevent(path, "add");
  return path;
}

void Testbed::set_link(const std::string& sys_path, const std::string& name, const std::string& target) {
  gchar* root = umockdev_testbed_get_root_dir(tb_);
  std::error_code ignored;  // umockdev refuses to replace a link, as rebinding a driver does
  fs::remove(fs::path(root + sys_path) / name, ignored);
  g_free(root);
  umockdev_testbed_set_attribute_link(tb_, sys_path.c_str(), name.c_str(), target.c_str());
}

void Testbed::set_binary_attribute(const std::string& sys_path, const std::string& name,
                                   std::vector<unsigned char> bytes) {  // a copy: umockdev takes a non-const buffer
  umockdev_testbed_set_attribute_binary(tb_, sys_path.c_str(), name.c_str(), bytes.data(), bytes.size());
}

void Testbed::uevent(const std::string& sys_path, const std::string& action) {
  umockdev_testbed_uevent(tb_, sys_path.c_str(), action.c_str());
}

void Testbed::unplug(const std::string& sys_path) {
  uevent(sys_path, "remove");
  umockdev_testbed_remove_device(tb_, sys_path.c_str());
  // umockdev 0.17 leaves the bus links of the device and its interfaces behind, and then cannot add
  // a device of that name again: drop every link that now points nowhere.
  std::error_code ec;
  for (const char* bus : {"usb", "pci"})
    for (const auto& entry : fs::directory_iterator(fs::path(sys_dir()) / "bus" / bus / "devices", ec))
      if (entry.is_symlink() && !fs::exists(entry.path(), ec)) fs::remove(entry.path(), ec);
  if (auto it = dev_nodes_.find(sys_path); it != dev_nodes_.end()) {
    ::close(it->second.second);
    ::unlink(it->second.first.c_str());
    dev_nodes_.erase(it);
  }
}

std::string Testbed::sys_dir() const {
  gchar* dir = umockdev_testbed_get_sys_dir(tb_);
  std::string result = dir;
  g_free(dir);
  return result;
}

}  // namespace vhp::test
