#pragma once
// Log lines that carry what they are about as structured fields: the device, the VM and the API
// caller. The journal sink stores them as VHOTPLUG_DEVICE=, VHOTPLUG_VM= and VHOTPLUG_CALLER= (so
// `journalctl VHOTPLUG_VM=net-vm` finds a VM's story); other sinks print only the text.
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace vhp {

class LogFields {
 public:
  LogFields& device(std::string id) { device_ = std::move(id); return *this; }
  LogFields& vm(std::string name) { vm_ = std::move(name); return *this; }
  LogFields& caller(std::string who) { caller_ = std::move(who); return *this; }
  const std::string& device() const { return device_; }
  const std::string& vm() const { return vm_; }
  const std::string& caller() const { return caller_; }

  // The fields of the line this thread is logging now (null outside log()): sinks run
  // synchronously in the logging thread, so the journal sink reads them from here.
  static const LogFields* current() { return current_; }

  template <typename... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    if (!spdlog::should_log(level)) return;
    const LogFields* outer = std::exchange(current_, this);
    try {
      spdlog::log(level, fmt, std::forward<Args>(args)...);
    } catch (...) {
      current_ = outer;
      throw;
    }
    current_ = outer;
  }
  template <typename... Args>
  void debug(spdlog::format_string_t<Args...> fmt, Args&&... args) const { log(spdlog::level::debug, fmt, std::forward<Args>(args)...); }
  template <typename... Args>
  void info(spdlog::format_string_t<Args...> fmt, Args&&... args) const { log(spdlog::level::info, fmt, std::forward<Args>(args)...); }
  template <typename... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) const { log(spdlog::level::warn, fmt, std::forward<Args>(args)...); }
  template <typename... Args>
  void error(spdlog::format_string_t<Args...> fmt, Args&&... args) const { log(spdlog::level::err, fmt, std::forward<Args>(args)...); }

 private:
  std::string device_, vm_, caller_;
  static inline thread_local const LogFields* current_ = nullptr;
};

inline LogFields about_vm(std::string name) { return LogFields().vm(std::move(name)); }

}  // namespace vhp
