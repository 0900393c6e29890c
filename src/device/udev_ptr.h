#pragma once
// unique_ptr owners for libudev's reference-counted objects.
#include <memory>

#include <libudev.h>

namespace vhp {

template <class T, T* (*Unref)(T*)>
struct UdevUnref {
  void operator()(T* p) const { Unref(p); }
};

using UdevPtr = std::unique_ptr<udev, UdevUnref<udev, udev_unref>>;
using UdevDevicePtr = std::unique_ptr<udev_device, UdevUnref<udev_device, udev_device_unref>>;
using UdevMonitorPtr = std::unique_ptr<udev_monitor, UdevUnref<udev_monitor, udev_monitor_unref>>;

}  // namespace vhp
