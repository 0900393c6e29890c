#pragma once
// A scripted QMP server for what real QEMU cannot be made to do here (hang, answer garbage). It
// speaks the real protocol otherwise: QEMU 7.2's greeting (or another version's), qmp_capabilities, replies carrying the
// request's id, one client at a time (the next waits in the backlog, as with QEMU's monitor).
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vhp::test {

class FakeQmp {
 public:
  // The raw line to send for a command (without "\r\n"; "" sends nothing), or nothing: then
  // qmp_capabilities and query-status are answered as QEMU does, and anything else with silence.
  using Answer = std::function<std::optional<std::string>(const nlohmann::json& request)>;

  FakeQmp(std::string path, Answer answer, std::pair<int, int> qemu_version = {7, 2});
  ~FakeQmp();

  int connections() const { return connections_; }
  std::vector<std::string> commands() const;  // every command received, in order

  // A reply line as QEMU writes it: {"return": …, "id": …}.
  static std::string reply(const nlohmann::json& request, const nlohmann::json& value);

 private:
  void serve(int client);

  std::string path_;
  Answer answer_;
  std::string greeting_;
  int fd_ = -1;
  std::atomic<bool> stop_ = false;
  std::atomic<int> connections_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> commands_;
  std::thread thread_;
};

}  // namespace vhp::test
