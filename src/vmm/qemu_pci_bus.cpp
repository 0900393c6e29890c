#include "vmm/qemu_pci_bus.h"

#include <functional>

namespace vhp::qemu_pci {

using json = nlohmann::json;

namespace {

// Calls `visit` on every device object of the answer, bridges' devices included, in bus order.
void each_device(const json& query_pci, const std::function<void(const json&)>& visit) {
  std::function<void(const json&, int)> walk = [&](const json& devices, int depth) {
    if (!devices.is_array() || depth > 32) return;  // 32: deeper than any real bridge chain
    for (const auto& d : devices) {
      if (!d.is_object()) continue;
      visit(d);
      auto bridge = d.find("pci_bridge");
      if (bridge != d.end() && bridge->is_object())
        if (auto inner = bridge->find("devices"); inner != bridge->end()) walk(*inner, depth + 1);
    }
  };
  if (!query_pci.is_array()) return;
  for (const auto& bus : query_pci)
    if (bus.is_object())
      if (auto devices = bus.find("devices"); devices != bus.end()) walk(*devices, 0);
}

std::string qdev_id(const json& d) {
  auto id = d.find("qdev_id");
  return id != d.end() && id->is_string() ? id->get<std::string>() : "";
}

}  // namespace

std::vector<std::string> free_ports(const json& query_pci) {
  std::vector<std::string> ports;
  each_device(query_pci, [&](const json& d) {
    auto bridge = d.find("pci_bridge");
    if (bridge == d.end() || !bridge->is_object() || qdev_id(d).empty()) return;
    auto devices = bridge->find("devices");
    bool empty = devices == bridge->end() || (devices->is_array() && devices->empty());
    if (empty) ports.push_back(qdev_id(d));
  });
  return ports;
}

bool has_device(const json& query_pci, const std::string& id) {
  bool found = false;
  each_device(query_pci, [&](const json& d) { found = found || qdev_id(d) == id; });
  return found;
}

}  // namespace vhp::qemu_pci
