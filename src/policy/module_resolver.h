#pragma once
// modalias → kernel module file paths, for `driverPath` rules. The reference runs `modprobe -R`
// and `modinfo -n` per event; we ask libkmod in-process. Tests inject their own resolver.
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vhp {

class ModuleResolver {
 public:
  virtual ~ModuleResolver() = default;
  // Paths of the modules that would bind to this modalias (builtin modules have none).
  virtual std::vector<std::string> module_paths(const std::string& modalias) = 0;
};

// libkmod over the running kernel's /lib/modules, loaded at the first question; answers are cached
// per modalias. With no module directory (a kernel without modules) or no libkmod every answer is
// empty.
std::unique_ptr<ModuleResolver> make_kmod_resolver();

}  // namespace vhp
