#include "api/wire.h"

namespace vhp {

using ordered_json = nlohmann::ordered_json;

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

template <class Listing>
ordered_json list_entry(const Listing& l) {
  auto entry = to_json(l.device);
  entry["allowed_vms"] = l.allowed_vms;
  entry["vm"] = l.vm ? ordered_json(*l.vm) : ordered_json(nullptr);
  return entry;
}

}  // namespace

std::optional<ordered_json> to_wire(const ManagerEvent& event) {
  return std::visit(
      Overloaded{
          [](const UsbConnected& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "usb_connected"}, {"usb_device", to_json(e.device)}};
          },
          [](const UsbDisconnected& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "usb_disconnected"}, {"usb_device", to_json(e.device)}};
          },
          [](const UsbAttached& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "usb_attached"}, {"usb_device", to_json(e.device)}, {"vm", e.vm}};
          },
          [](const UsbDetached& e) -> std::optional<ordered_json> {  // the reference sends only the node here
            return ordered_json{{"event", "usb_detached"}, {"usb_device", {{"device_node", e.device.device_node}}}, {"vm", e.vm}};
          },
          [](const UsbSelectVm& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "usb_select_vm"}, {"usb_device", to_json(e.device)}, {"allowed_vms", e.allowed_vms}};
          },
          [](const PciConnected& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "pci_connected"}, {"pci_device", to_json(e.device)}};
          },
          [](const PciDisconnected& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "pci_disconnected"}, {"pci_device", to_json(e.device)}};
          },
          [](const PciAttached& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "pci_attached"}, {"pci_device", to_json(e.device)}, {"vm", e.vm}};
          },
          [](const PciDetached& e) -> std::optional<ordered_json> {
            return ordered_json{{"event", "pci_detached"}, {"pci_device", to_json(e.device)}, {"vm", e.vm}};
          },
          [](const VmStarted&) -> std::optional<ordered_json> { return std::nullopt; },
          [](const VmStopped&) -> std::optional<ordered_json> { return std::nullopt; },
      },
      event);
}

ordered_json to_wire(const UsbListing& listing) { return list_entry(listing); }

ordered_json to_wire(const PciListing& listing) {
  auto entry = list_entry(listing);
  if (listing.iommu_member) entry["iommu_member"] = true;
  return entry;
}

ordered_json to_wire(const EvdevListing& listing) {
  auto entry = to_json(listing.device);
  entry["allowed_vms"] = std::vector<std::string>{listing.target_vm};
  entry["vm"] = listing.vm ? ordered_json(*listing.vm) : ordered_json(nullptr);
  entry["tag"] = listing.tag ? ordered_json(*listing.tag) : ordered_json(nullptr);
  return entry;
}

ordered_json to_wire(const CommandResult& result) {
  if (!result.error && result.vmm_args) return {{"result", "ok"}, {"vmm_args", *result.vmm_args}};
  if (!result.error) return {{"result", "ok"}};
  return {{"result", "failed"}, {"error", *result.error}};
}

}  // namespace vhp
