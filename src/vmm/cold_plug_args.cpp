#include "vmm/cold_plug_args.h"

#include <map>

#include "vmm/vm.h"

namespace vhp {

std::vector<std::string> cold_plug_args(const std::string& vm_type, const ColdPlugPlan& plan) {
  using Renderer = std::vector<std::string> (*)(const ColdPlugPlan&);
  static const std::map<std::string, Renderer> renderers{
      {"qemu", qemu_cold_plug_args},
      {"crosvm", crosvm_cold_plug_args},
      {"cloud-hypervisor", cloud_hypervisor_cold_plug_args},
  };
  auto it = renderers.find(vm_type);
  if (it == renderers.end()) throw VmError("Unsupported vm type: " + vm_type);
  return it->second(plan);
}

}  // namespace vhp
