#pragma once
// An RAII umockdev testbed plus builders for devices shaped like real ones (attributes as the kernel
// writes them, properties as udev adds them). Requires enter_mock_environment() first.
#include <map>
#include <string>
#include <vector>

typedef struct _UMockdevTestbed UMockdevTestbed;

namespace vhp::test {

using Strings = std::map<std::string, std::string>;

struct UsbInterfaceSpec {
  int cls = 0, subclass = 0, protocol = 0;
  std::string driver{};  // empty: unbound
};

struct UsbSpec {
  std::string parent{};     // sysfs path of the hub or controller it hangs off
  std::string name{};       // kernel name: "3-2.1", or "usb3" for a root hub
  int busnum = 1, devnum = 2;
  std::string vid = "1d6b", pid = "0002";
  std::string manufacturer{}, product{}, serial{};  // empty: the device has no such string
  int cls = 0, subclass = 0, protocol = 0;
  std::string speed = "480";
  std::string removable = "removable";
  std::string driver = "usb";
  bool self_powered = false;
  std::vector<UsbInterfaceSpec> interfaces{};
  bool udev_properties = true;  // add what udev's usb_id builtin adds (ID_VENDOR_ID, ID_USB_INTERFACES…)
  Strings extra_properties{};     // e.g. ID_VENDOR_FROM_DATABASE; replaces generated ones
  Strings attribute_overrides{};  // replace attributes, e.g. with malformed values
  bool dev_node = false;  // create /dev/bus/usb/BBB/DDD, so that QEMU (under the preload) can open it
};

struct PciSpec {
  std::string address{};  // 0000:00:14.0
  std::string vendor = "8086", device = "a0ed";
  std::string subsystem_vendor = "17aa", subsystem_device = "22d8";
  unsigned class_code = 0x0c0330;
  std::string driver{};   // empty: unbound
  int iommu_group = -1; // <0: no IOMMU group
  Strings extra_properties{};
};

class Testbed {
 public:
  Testbed();
  ~Testbed();
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  // Each returns the new device's sysfs path (/sys/devices/…).
  std::string add_device(const std::string& subsystem, const std::string& name, const std::string& parent,
                         const Strings& attributes, const Strings& properties);
  std::string add_pci(const PciSpec& spec);
  std::string add_usb(const UsbSpec& spec);  // with its interfaces
  // A real plug: everything in sysfs (descriptors included), then the "add" uevent. (umockdev's own
  // automatic "add" comes before the binary descriptors exist, too early for libusb in QEMU.)
  std::string plug(const UsbSpec& spec);

  void set_link(const std::string& sys_path, const std::string& name, const std::string& target);
  // Writes (or replaces) a binary sysfs attribute, such as a USB device's raw `descriptors`.
  void set_binary_attribute(const std::string& sys_path, const std::string& name, std::vector<unsigned char> bytes);
  void uevent(const std::string& sys_path, const std::string& action);
  // A real unplug: the "remove" uevent, then the sysfs entry (and its /dev node) disappears.
  void unplug(const std::string& sys_path);
  std::string sys_dir() const;  // where the testbed's /sys lives on disk

 private:
  void add_dev_node(const std::string& sys_path, int busnum, int devnum);

  UMockdevTestbed* tb_;
  std::map<std::string, std::pair<std::string, int>> dev_nodes_;  // sys_path → node file, open fd
};

// sysfs path of a PCI device the testbed made at the top level.
std::string pci_path(const std::string& address);

}  // namespace vhp::test
