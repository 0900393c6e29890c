#include "policy/module_resolver.h"

#include <dlfcn.h>
#include <libkmod.h>

#include <spdlog/spdlog.h>

namespace vhp {
namespace {

// libkmod, opened with dlopen at the first question, as systemd does: a config without driver
// rules never loads it, nor the libcrypto it needs (together 1.5 MiB of the idle daemon's RSS).
struct Kmod {
  void* handle = nullptr;
  decltype(&kmod_new) new_ctx = nullptr;
  decltype(&kmod_load_resources) load_resources = nullptr;
  decltype(&kmod_unref) unref = nullptr;
  decltype(&kmod_module_new_from_lookup) lookup = nullptr;
  decltype(&kmod_list_next) list_next = nullptr;
  decltype(&kmod_module_get_module) get_module = nullptr;
  decltype(&kmod_module_get_path) get_path = nullptr;
  decltype(&kmod_module_unref) module_unref = nullptr;
  decltype(&kmod_module_unref_list) unref_list = nullptr;

  // Null when the library or one of its symbols is missing (the reason logged once).
  static std::unique_ptr<Kmod> open() {
    auto k = std::make_unique<Kmod>();
    k->handle = ::dlopen("libkmod.so.2", RTLD_NOW | RTLD_LOCAL);
    bool complete = k->handle && bind(k->handle, "kmod_new", k->new_ctx) && bind(k->handle, "kmod_load_resources", k->load_resources) &&
                    bind(k->handle, "kmod_unref", k->unref) && bind(k->handle, "kmod_module_new_from_lookup", k->lookup) &&
                    bind(k->handle, "kmod_list_next", k->list_next) && bind(k->handle, "kmod_module_get_module", k->get_module) &&
                    bind(k->handle, "kmod_module_get_path", k->get_path) && bind(k->handle, "kmod_module_unref", k->module_unref) &&
                    bind(k->handle, "kmod_module_unref_list", k->unref_list);
    if (complete) return k;
    const char* why = ::dlerror();
    spdlog::warn("libkmod.so.2 cannot be used ({}): driverPath rules match no device", why ? why : "unknown");
    return nullptr;
  }
  ~Kmod() {
    if (handle) ::dlclose(handle);
  }

 private:
  template <typename F>
  static bool bind(void* handle, const char* name, F& function) {
    function = reinterpret_cast<F>(::dlsym(handle, name));
    return function != nullptr;
  }
};

class KmodResolver : public ModuleResolver {
 public:
  KmodResolver() = default;
  ~KmodResolver() override {
    if (ctx_) kmod_->unref(ctx_);
  }
  KmodResolver(const KmodResolver&) = delete;
  KmodResolver& operator=(const KmodResolver&) = delete;

  std::vector<std::string> module_paths(const std::string& modalias) override {
    auto cached = cache_.find(modalias);
    if (cached != cache_.end()) return cached->second;
    std::vector<std::string> paths;
    kmod_list* list = nullptr;
    if (open() && kmod_->lookup(ctx_, modalias.c_str(), &list) >= 0) {
      for (kmod_list* it = list; it; it = kmod_->list_next(list, it)) {
        kmod_module* mod = kmod_->get_module(it);
        if (const char* path = kmod_->get_path(mod)) paths.emplace_back(path);
        kmod_->module_unref(mod);
      }
      kmod_->unref_list(list);
    }
    return cache_.emplace(modalias, std::move(paths)).first->second;
  }

 private:
  bool open() {
    if (!tried_) {
      tried_ = true;
      kmod_ = Kmod::open();
      if (kmod_ && (ctx_ = kmod_->new_ctx(nullptr, nullptr))) kmod_->load_resources(ctx_);
    }
    return ctx_ != nullptr;
  }

  bool tried_ = false;
  std::unique_ptr<Kmod> kmod_;
  kmod_ctx* ctx_ = nullptr;
  std::map<std::string, std::vector<std::string>> cache_;
};

}  // namespace

std::unique_ptr<ModuleResolver> make_kmod_resolver() { return std::make_unique<KmodResolver>(); }

}  // namespace vhp
