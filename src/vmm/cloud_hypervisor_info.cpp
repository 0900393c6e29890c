#include "vmm/cloud_hypervisor_info.h"

#include <nlohmann/json.hpp>

namespace vhp {

std::optional<ChVmInfo> parse_vm_info(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  ChVmInfo info;
  if (auto it = j.find("state"); it != j.end() && it->is_string()) info.state = it->get<std::string>();
  auto config = j.find("config");
  if (config == j.end() || !config->is_object()) return info;
  auto devices = config->find("devices");
  if (devices == config->end() || !devices->is_array()) return info;
  static const std::string prefix = "/sys/bus/pci/devices/";
  for (const auto& d : *devices) {
    if (!d.is_object()) continue;
    auto path = d.find("path");
    if (path == d.end() || !path->is_string()) continue;
    auto text = path->get<std::string>();
    if (!text.starts_with(prefix)) continue;
    auto address = text.substr(prefix.size());
    if (address.ends_with('/')) address.pop_back();
    auto id = d.find("id");
    info.devices.push_back({id != d.end() && id->is_string() ? id->get<std::string>() : "", address});
  }
  return info;
}

}  // namespace vhp
