#pragma once
// The reference's state file: {"selected_vms": {id: vm}, "disconnected_devices": [id, …]}, plus
// ours, only while it has entries: "pci_host_drivers": {address: driver}.
// Written atomically (temp file, fsync, rename, fsync of the directory); a corrupt file is moved
// aside with a clear log line and the daemon starts with empty state.
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace vhp {

struct PersistentState {
  std::map<std::string, std::string> selected_vms;  // the user's VM choice for allowedVms devices
  std::set<std::string> disconnected_devices;       // devices the user detached
  // Ours: the driver each PCI device had before we bound it to vfio-pci ("" unbound), to give it back.
  std::map<std::string, std::string> pci_host_drivers;
  // Keys of other managers, kept as read (ghaf-device-manager's crosvm_usb_ports): a host that
  // switches back finds them again.
  std::map<std::string, nlohmann::json> others;
  bool operator==(const PersistentState&) const = default;
};

// A change that could not be written: the request that caused it is answered with this text,
// and the state in memory is as before.
struct StateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StateStore {
 public:
  // `path` empty: in memory only (general.persistency false).
  explicit StateStore(std::string path);

  const PersistentState& state() const { return state_; }
  // Counts the changes made: the same number, the same state.
  std::uint64_t version() const { return version_; }
  // Applies a change to a copy, writes it, and only then makes it the state. Throws StateError
  // when it cannot be written (nothing changes then). A change that changes nothing writes nothing.
  void update(const std::function<void(PersistentState&)>& change);
  void set_selected_vm(const std::string& id, const std::string& vm);
  void set_disconnected(const std::string& id, bool disconnected);

  // Exposed for the crash-safety test; update() calls it. A unique temporary file beside `path`
  // (O_EXCL, O_NOFOLLOW, mode 0600), fsync, rename, fsync of the directory; the directory is opened
  // refusing symbolic links anywhere in its path. Returns the error ("" when written).
  static std::string write_atomically(const std::string& path, const std::string& content);
  static std::string serialize(const PersistentState& state);
  // Throws std::runtime_error for anything that is not the expected shape.
  static PersistentState parse(const std::string& content);

 private:
  void load();
  void remove_leftovers();

  std::string path_;
  PersistentState state_;
  std::uint64_t version_ = 0;
};

}  // namespace vhp
