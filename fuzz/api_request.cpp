// libFuzzer: one request line through the vhotplug API parser and dispatcher.
// Whatever the bytes, the outcome is a command to run or one JSON line with a "result".
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/protocol.h"

namespace {

struct NoModules : vhp::ModuleResolver {
  std::vector<std::string> module_paths(const std::string&) override { return {}; }
};

vhp::DeviceRegistry& registry() {
  static vhp::DeviceRegistry r = [] {
    vhp::DeviceRegistry reg;
    vhp::UsbDevice key;
    key.sys_path = "/sys/devices/usb1/1-2", key.sys_name = "1-2", key.device_node = "/dev/bus/usb/001/003";
    key.vid = "1050", key.pid = "0407", key.busnum = 1, key.devnum = 3, key.ports = {2};
    key.product_name = "Yubikey";
    reg.upsert(key);
    vhp::PciDevice nic;
    nic.address = "0000:00:14.3", nic.vid = "8086", nic.did = "A0F0";
    reg.upsert(nic);
    return reg;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vhp::StateStore store("");
  static vhp::DeviceManager manager(registry(), std::make_shared<const vhp::Policy>(vhp::parse_config(nlohmann::json::parse(R"({
      "vms": [{"name": "vm1", "type": "qemu", "socket": "/a"}],
      "usbPassthrough": [{"targetVm": "vm1", "tag": "t", "allow": [{"vendorName": ".*"}]}],
      "pciPassthrough": [{"targetVm": "vm1", "pciIommuAddAll": true, "allow": [{"address": "0000:00:14.3"}]}]})"), "fuzz"),
      std::make_shared<NoModules>()), store);
  static vhp::Protocol protocol(manager);
  vhp::Session session;
  auto outcome = protocol.handle(std::string_view(reinterpret_cast<const char*>(data), size), session);
  if (int(outcome.command.has_value()) + int(outcome.response.has_value()) + int(outcome.line.has_value()) != 1) std::abort();  // exactly one
  if (outcome.command) return 0;  // attach/detach: run by the daemon, not here
  auto line = outcome.response_line();
  if (!nlohmann::json::parse(line).contains("result") || line.back() != '\n' || line.find('\n') != line.size() - 1) std::abort();
  return 0;
}
