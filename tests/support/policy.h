#pragma once
// Policies for tests, from JSON text, with a module table instead of the running kernel's.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace vhp::test {

// Answers module_paths() from a table keyed by modalias prefix ("usb:v0B95p1790"), and records the questions.
struct FakeModules : ModuleResolver {
  std::map<std::string, std::vector<std::string>> table;
  std::vector<std::string> asked;
  std::vector<std::string> module_paths(const std::string& modalias) override {
    asked.push_back(modalias);
    for (const auto& [prefix, paths] : table)
      if (modalias.starts_with(prefix)) return paths;
    return {};
  }
};

inline std::shared_ptr<const Policy> make_policy(const std::string& config_json,
                                                 std::shared_ptr<ModuleResolver> modules = std::make_shared<FakeModules>()) {
  return std::make_shared<const Policy>(parse_config(nlohmann::json::parse(config_json), "test"), std::move(modules));
}

// Every non-hub USB device, and the PCI classes of the realistic host, to vm1.
inline const char* kAllToVm1 = R"({
  "vms": [{"name": "vm1", "type": "qemu", "socket": "/tmp/vm1.sock"}],
  "usbPassthrough": [{"targetVm": "vm1", "allow": [{"vendorName": ".*"}]}],
  "pciPassthrough": [{"targetVm": "vm1", "allow": [{"deviceClass": 2}, {"deviceClass": 3}, {"deviceClass": 4},
                                                   {"deviceClass": 5}, {"deviceClass": 12}]}]
})";

}  // namespace vhp::test
