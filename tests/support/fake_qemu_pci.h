#pragma once
// A QEMU monitor for PCI hot-plug where VFIO cannot run: a FakeQmp whose every answer is one
// captured from QEMU 7.2 (tests/data/qmp, see its README), adapted to what has been added so far:
// query-pci with the devices behind their root ports, device_add refused on an occupied port or a
// duplicate id, device_del followed by DEVICE_DELETED (as a guest that releases the device), and
// qom-list / qom-get showing each vfio-pci with its `host`.
#include <map>
#include <mutex>
#include <string>

#include "support/fake_qmp.h"

namespace vhp::test {

class FakeQemuPci {
 public:
  explicit FakeQemuPci(std::string socket_path);

  std::map<std::string, std::string> held() const;  // host address → id
  const FakeQmp& monitor() const { return qmp_; }

 private:
  struct Added {
    std::string host, bus;
  };
  std::optional<std::string> answer(const nlohmann::json& request);

  mutable std::mutex mutex_;
  std::map<std::string, Added> added_;  // id →
  FakeQmp qmp_;                         // last: its thread calls answer()
};

}  // namespace vhp::test
