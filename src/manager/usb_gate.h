#pragma once
// usbAuthorization: with `enable`, the host uses only the USB devices it is meant to. New devices
// start unauthorized (never configured, no host driver); hubs are authorized so that devices behind
// them appear; a device is authorized just before it goes to a VM, and unauthorized again when the
// VM refuses it or lets it go; hostAllow devices are the host's, authorized. With
// `deauthorizeUnmatched`, devices present at start that no rule sends to a VM are unauthorized,
// except the host's own disk (held_by_host). Rules still match an unauthorized device: its
// interfaces are read from its descriptors (udev_reader).
#include <string>

#include "device/usb_authorizer.h"
#include "manager/device_manager.h"

namespace vhp {

class UsbGate {
 public:
  explicit UsbGate(DeviceManager& manager) : manager_(manager), authorizer_(manager.host()) {}

  bool enabled() const { return enabled_; }
  void start();  // decides `enable` for the daemon's life: a reload cannot turn it on or off
  void plugged(const UsbDevice& d);  // a hub or a hostAllow device: authorized
  // Throws VmError ("Failed to authorize …", the reference's text) when it cannot.
  void before_attach(const UsbDevice& d);
  void attach_failed(const UsbDevice& d);
  void left_vm(const UsbDevice& d);  // still plugged in: unauthorized, unless the host may have it

 private:
  void set(const UsbDevice& d, bool authorized, const char* why);

  DeviceManager& manager_;
  UsbAuthorizer authorizer_;
  bool enabled_ = false;
};

}  // namespace vhp
