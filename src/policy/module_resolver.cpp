#include "policy/module_resolver.h"

#include <libkmod.h>

namespace vhp {
namespace {

class KmodResolver : public ModuleResolver {
 public:
  KmodResolver() : ctx_(kmod_new(nullptr, nullptr)) {
    if (ctx_) kmod_load_resources(ctx_);
  }
  ~KmodResolver() override {
    if (ctx_) kmod_unref(ctx_);
  }
  KmodResolver(const KmodResolver&) = delete;
  KmodResolver& operator=(const KmodResolver&) = delete;

  std::vector<std::string> module_paths(const std::string& modalias) override {
    auto cached = cache_.find(modalias);
    if (cached != cache_.end()) return cached->second;
    std::vector<std::string> paths;
    kmod_list* list = nullptr;
    if (ctx_ && kmod_module_new_from_lookup(ctx_, modalias.c_str(), &list) >= 0) {
      kmod_list* it;
      kmod_list_foreach(it, list) {
        kmod_module* mod = kmod_module_get_module(it);
        if (const char* path = kmod_module_get_path(mod)) paths.emplace_back(path);
        kmod_module_unref(mod);
      }
      kmod_module_unref_list(list);
    }
    return cache_.emplace(modalias, std::move(paths)).first->second;
  }

 private:
  kmod_ctx* ctx_;
  std::map<std::string, std::vector<std::string>> cache_;
};

}  // namespace

std::unique_ptr<ModuleResolver> make_kmod_resolver() { return std::make_unique<KmodResolver>(); }

}  // namespace vhp
