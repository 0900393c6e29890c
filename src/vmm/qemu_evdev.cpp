// QemuVm's input-device operations: virtio-input-host-pci hot-plug of a host evdev node.
#include "vmm/qemu_vm.h"

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

std::string QemuVm::evdev_id(const std::string& sys_name) { return "evdev-" + sys_name; }

asio::awaitable<void> QemuVm::attach_evdev(EvdevDevice device) {
  std::string node = device.device_node, id = evdev_id(device.sys_name);
  Body body = [this, node, id](QmpConnection& c) -> asio::awaitable<void> {
    json args{{"driver", "virtio-input-host-pci"}, {"evdev", node}};
    co_await plug_into_port(c, std::move(args), id, false);
  };
  co_await borrowed("device_add", std::move(body));
}

asio::awaitable<void> QemuVm::detach_evdev(EvdevDevice device) {
  std::string id = evdev_id(device.sys_name);
  Body body = [this, id](QmpConnection& c) -> asio::awaitable<void> { co_await unplug_by_id(c, id); };
  co_await borrowed("device_del", std::move(body));
}

}  // namespace vhp
