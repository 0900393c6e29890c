#pragma once
// The reference's state file: {"selected_vms": {id: vm}, "disconnected_devices": [id, …]}.
// Written atomically (temp file, fsync, rename, fsync of the directory); a corrupt file is moved
// aside with a clear log line and the daemon starts with empty state.
#include <map>
#include <optional>
#include <set>
#include <string>

namespace vhp {

struct PersistentState {
  std::map<std::string, std::string> selected_vms;  // the user's VM choice for allowedVms devices
  std::set<std::string> disconnected_devices;       // devices the user detached
  bool operator==(const PersistentState&) const = default;
};

class StateStore {
 public:
  // `path` empty: in memory only (general.persistency false).
  explicit StateStore(std::string path);

  const PersistentState& state() const { return state_; }
  // Apply a change and persist it; a failed write is logged and the change kept in memory.
  void set_selected_vm(const std::string& id, const std::string& vm);
  void set_disconnected(const std::string& id, bool disconnected);

  // Exposed for the crash-safety test; the setters call it.
  static bool write_atomically(const std::string& path, const std::string& content);
  static std::string serialize(const PersistentState& state);
  // Throws std::runtime_error for anything that is not the expected shape.
  static PersistentState parse(const std::string& content);

 private:
  void load();
  void save();

  std::string path_;
  PersistentState state_;
};

}  // namespace vhp
