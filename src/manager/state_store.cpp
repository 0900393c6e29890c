#include "manager/state_store.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace fs = std::filesystem;
using json = nlohmann::json;

StateStore::StateStore(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  remove_leftovers();
  load();
}

// Temporary files of writers that died between create and rename (ours: ".<name>.tmp-…").
void StateStore::remove_leftovers() {
  fs::path target(path_);
  std::string prefix = "." + target.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(target.parent_path().empty() ? "." : target.parent_path(), ec))
    if (entry.path().filename().string().starts_with(prefix) && entry.is_regular_file(ec)) fs::remove(entry.path(), ec);
}

std::string StateStore::serialize(const PersistentState& s) {
  json j{{"selected_vms", s.selected_vms}, {"disconnected_devices", s.disconnected_devices}};
  if (!s.pci_host_drivers.empty()) j["pci_host_drivers"] = s.pci_host_drivers;  // ours; absent, the file is the reference's
  for (const auto& [key, value] : s.others) j[key] = value;
  return j.dump(2) + "\n";
}

PersistentState StateStore::parse(const std::string& content) {
  auto j = json::parse(content, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("not a JSON object");
  PersistentState s;
  if (auto it = j.find("selected_vms"); it != j.end()) {
    if (!it->is_object()) throw std::runtime_error("selected_vms is not an object");
    for (const auto& [id, vm] : it->items()) {
      if (!vm.is_string()) throw std::runtime_error("selected_vms." + id + " is not a string");
      s.selected_vms[id] = vm.get<std::string>();
    }
  }
  if (auto it = j.find("disconnected_devices"); it != j.end()) {
    if (!it->is_array()) throw std::runtime_error("disconnected_devices is not a list");
    for (const auto& id : *it) {
      if (!id.is_string()) throw std::runtime_error("disconnected_devices holds a non-string");
      s.disconnected_devices.insert(id.get<std::string>());
    }
  }
  if (auto it = j.find("pci_host_drivers"); it != j.end()) {
    if (!it->is_object()) throw std::runtime_error("pci_host_drivers is not an object");
    for (const auto& [address, driver] : it->items()) {
      if (!driver.is_string()) throw std::runtime_error("pci_host_drivers." + address + " is not a string");
      s.pci_host_drivers[address] = driver.get<std::string>();
    }
  }
  for (const auto& [key, value] : j.items())
    if (key != "selected_vms" && key != "disconnected_devices" && key != "pci_host_drivers") s.others[key] = value;
  return s;
}

void StateStore::load() {
  std::ifstream in(path_);
  if (!in) return;  // first start
  std::stringstream content;
  content << in.rdbuf();
  try {
    state_ = parse(content.str());
  } catch (const std::exception& e) {
    auto stamp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::string aside = path_ + ".corrupt-" + std::to_string(stamp);
    std::error_code ec;
    fs::rename(path_, aside, ec);
    spdlog::error("state: {} is unreadable ({}); moved it to {} and starting with empty state", path_, e.what(),
                  ec ? "(could not move: " + ec.message() + ")" : aside);
    state_ = {};
  }
}

namespace {

// The directory, opened without following a symbolic link anywhere in its path (openat2's
// RESOLVE_NO_SYMLINKS; where the kernel lacks it, at least not the last component).
int open_directory(const fs::path& dir) {
  std::string path = dir.empty() ? "." : dir.string();
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
  if (fd < 0 && (errno == ENOSYS || errno == EPERM))  // no openat2 (old kernel, or a seccomp filter)
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return fd;
}

std::string unique_name(const std::string& base) {
  static std::uint64_t counter = 0;
  auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  return "." + base + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" + std::to_string(stamp);
}

}  // namespace

std::string StateStore::write_atomically(const std::string& path, const std::string& content) {
  fs::path target(path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  int dir = open_directory(target.parent_path());
  if (dir < 0) {
    int err = errno;
    return target.parent_path().string() + ": " + (err == ELOOP ? "a symbolic link in the path" : std::strerror(err));
  }
  std::string base = target.filename().string(), temp = unique_name(base);
  std::string error;
  int fd = ::openat(dir, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = std::strerror(errno);
  } else {
    for (std::size_t done = 0; error.empty() && done < content.size();) {
      ssize_t n = ::write(fd, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) error = n < 0 ? std::strerror(errno) : "nothing written";
      else done += static_cast<std::size_t>(n);
    }
    if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
    if (::close(fd) != 0 && error.empty()) error = std::strerror(errno);
    // rename replaces whatever is at the name (a planted symlink included) without following it
    if (error.empty() && ::renameat(dir, temp.c_str(), dir, base.c_str()) != 0) error = std::strerror(errno);
    if (!error.empty()) ::unlinkat(dir, temp.c_str(), 0);
  }
  if (error.empty()) ::fsync(dir);  // make the rename itself durable
  ::close(dir);
  return error.empty() ? "" : path + ": " + error;
}

void StateStore::update(const std::function<void(PersistentState&)>& change) {
  PersistentState next = state_;
  change(next);
  if (next == state_) return;
  if (!path_.empty()) {
    if (auto error = write_atomically(path_, serialize(next)); !error.empty()) {
      spdlog::error("state: cannot write {}; nothing changed", error);
      throw StateError("Cannot save the state: " + error);
    }
  }
  state_ = std::move(next);
  ++version_;
}

void StateStore::set_selected_vm(const std::string& id, const std::string& vm) {
  update([&](PersistentState& s) { s.selected_vms[id] = vm; });
}

void StateStore::set_disconnected(const std::string& id, bool disconnected) {
  update([&](PersistentState& s) {
    if (disconnected) s.disconnected_devices.insert(id);
    else s.disconnected_devices.erase(id);
  });
}

}  // namespace vhp
