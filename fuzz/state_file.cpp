// libFuzzer: arbitrary bytes as the state file. Reading either gives a state or throws
// std::runtime_error (the daemon then moves the file aside); a state read is written back and read
// again to the same state, crosvm port entries included.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "manager/state_store.h"
#include "manager/stored_crosvm_usb_ports.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vhp::PersistentState state;
  try {
    state = vhp::StateStore::parse(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const std::runtime_error&) {
    return 0;
  }
  if (vhp::StateStore::parse(vhp::StateStore::serialize(state)) != state) std::abort();
  vhp::StateStore store("");  // in memory: the crosvm port book read from what was parsed
  store.update([&](vhp::PersistentState& s) { s = state; });
  vhp::StoredCrosvmUsbPorts book(store);
  for (const auto& [sys_name, port] : book.ports())
    if (port.port < 0 || port.port > 255) std::abort();
  return 0;
}
