// QemuVm's PCI operations: vfio-pci hot-plug into pcie-root-ports.
#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "common/log_fields.h"
#include "vmm/qemu_pci_bus.h"
#include "vmm/qemu_vm.h"
#include "vmm/qmp_args.h"

namespace vhp {

namespace asio = boost::asio;
using json = nlohmann::json;

asio::awaitable<void> QemuVm::attach_pci(PciDevice device, bool root_bus) {
  std::string address = device.address;
  Body body = [this, address, root_bus](QmpConnection& c) -> asio::awaitable<void> {
    json args{{"driver", "vfio-pci"}, {"host", address}};
    co_await plug_into_port(c, std::move(args), pci_device_id(address), root_bus);
  };
  co_await borrowed("device_add", std::move(body));
}

asio::awaitable<void> QemuVm::plug_into_port(QmpConnection& c, json device, std::string id, bool root_bus) {
  auto before = co_await execute(c, "query-pci", nullptr);
  if (qemu_pci::has_device(before, id)) co_return;  // ours already (added before a daemon restart)
  std::vector<std::optional<std::string>> buses;
  if (root_bus) buses.emplace_back(std::nullopt);
  else
    for (const auto& port : qemu_pci::free_ports(before)) buses.emplace_back(port);
  if (buses.empty()) throw VmError("No available PCI ports found");
  // One attempt per port, and only an occupied slot moves on to the next: any other refusal is the
  // answer (QEMU 7.2 leaks a descriptor for each failed vfio-pci add, so no retry loops). Slot 0
  // explicitly: QEMU would otherwise put a second device behind an occupied root port, at a slot
  // the guest never scans; and a paused VM's query-pci cannot show what is behind its ports.
  std::string error;
  bool added = false, occupied_all = true;
  for (const auto& bus : buses) {
    json args = device;
    args["id"] = id;
    if (bus) args["bus"] = *bus, args["addr"] = "0";
    try {
      co_await execute(c, "device_add", std::move(args));
      added = true;
    } catch (const QmpError& e) {
      error = e.what();
    }
    bool occupied = error.find("already occupied") != std::string::npos || error.find("not available for") != std::string::npos;
    occupied_all = occupied_all && occupied;
    if (added || !occupied) break;
    about_vm(name()).debug("vm {}: port {} is occupied; trying the next", name(), bus.value_or("root"));
  }
  if (!added && occupied_all) throw VmError("No available PCI ports found");  // the reference's text
  if (!added) throw VmError(error);
  // Verified on the bus. Before its firmware ran (a VM started paused) QEMU has not numbered the
  // buses behind its ports, and query-pci shows nothing there: then device_add's word is all there is.
  auto after = co_await execute(c, "query-pci", nullptr);
  bool verifiable = true;
  if (!qemu_pci::has_device(after, id) && !root_bus) {
    auto status = co_await execute(c, "query-status", nullptr);
    verifiable = status.is_object() && status.value("status", "") == "running";
  }
  if (verifiable && !qemu_pci::has_device(after, id)) {
    auto args_del = qmp::by_id(id);
    try {
      co_await execute(c, "device_del", std::move(args_del));
    } catch (const std::exception&) {
    }
    throw VmError("QEMU added " + id + " but it is not on the VM's PCI bus");
  }
}

asio::awaitable<void> QemuVm::detach_pci(VmPciDevice device) {
  Body body = [this, device](QmpConnection& c) -> asio::awaitable<void> {
    std::string id = device.id;
    if (id.empty())  // found by what it is (its host address), not by vendor and device id
      for (const auto& held : co_await scan_pci(c))
        if (held.host == device.host) id = held.id;
    if (!id.empty()) co_await unplug_by_id(c, id);
  };
  co_await borrowed("device_del", std::move(body));
}

asio::awaitable<void> QemuVm::unplug_by_id(QmpConnection& c, std::string id) {
  auto args_del = qmp::by_id(id);
  try {
    co_await execute(c, "device_del", std::move(args_del));
  } catch (const QmpError& e) {
    if (e.error_class != "DeviceNotFound") throw VmError(e.what());
    co_return;  // not there: nothing to detach
  }
  co_await wait_deleted(c, id, timeouts_.pci_deleted, " (its guest did not release the device)");
}

asio::awaitable<std::vector<VmPciDevice>> QemuVm::list_pci() {
  std::vector<VmPciDevice> out;
  Body body = [this, &out](QmpConnection& c) -> asio::awaitable<void> { out = co_await scan_pci(c); };
  co_await borrowed("qom-list", std::move(body));
  co_return out;
}

asio::awaitable<std::vector<VmPciDevice>> QemuVm::scan_pci(QmpConnection& c) {
  std::vector<VmPciDevice> out;
  for (const auto& [id, path] : co_await peripherals(c, "vfio-pci")) {
    auto host_args = qmp::qom_get(path, "host");
    auto host = co_await execute(c, "qom-get", std::move(host_args));
    if (!host.is_string()) throw VmError("VM " + name() + " sent a malformed answer to qom-get: " + host.dump());
    out.push_back({id, host.get<std::string>()});
  }
  co_return out;
}

}  // namespace vhp
