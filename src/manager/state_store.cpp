#include "manager/state_store.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

namespace fs = std::filesystem;
using json = nlohmann::json;

StateStore::StateStore(std::string path) : path_(std::move(path)) {
  if (!path_.empty()) load();
}

std::string StateStore::serialize(const PersistentState& s) {
  json j{{"selected_vms", s.selected_vms}, {"disconnected_devices", s.disconnected_devices}};
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

bool StateStore::write_atomically(const std::string& path, const std::string& content) {
  fs::path target(path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return false;
  }
  int dir = ::open(target.parent_path().empty() ? "." : target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {  // make the rename itself durable
    ::fsync(dir);
    ::close(dir);
  }
  return true;
}

void StateStore::save() {
  if (path_.empty()) return;
  if (!write_atomically(path_, serialize(state_)))
    spdlog::error("state: cannot write {}: {}; the change is kept in memory", path_, std::strerror(errno));
}

void StateStore::set_selected_vm(const std::string& id, const std::string& vm) {
  if (state_.selected_vms[id] == vm) return;
  state_.selected_vms[id] = vm;
  save();
}

void StateStore::set_disconnected(const std::string& id, bool disconnected) {
  bool changed = disconnected ? state_.disconnected_devices.insert(id).second : state_.disconnected_devices.erase(id) > 0;
  if (changed) save();
}

}  // namespace vhp
