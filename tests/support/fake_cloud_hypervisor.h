#pragma once
// cloud-hypervisor's REST API where no cloud-hypervisor VM can run: HTTP/1.1 on a Unix socket,
// one request per connection, served by its own thread with Beast, with the status codes and
// bodies of cloud-hypervisor's OpenAPI description (vmm/src/api/openapi/cloud-hypervisor.yaml):
// vm.info 200 {state, config.devices}, vm.add-device 200 PciDeviceInfo {id, bdf} (204 while the
// VM is only created), vm.remove-device 204, 404 for an unknown id; plus test controls.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace vhp::test {

class FakeCloudHypervisor {
 public:
  explicit FakeCloudHypervisor(std::string socket_path);
  ~FakeCloudHypervisor();

  void set_state(std::string state);  // "Running", "Created", "Shutdown"
  // The next request for `target` (e.g. "/api/v1/vm.add-device") gets this status and body instead.
  void answer_next(std::string target, unsigned status, std::string body);
  void delay_next(std::string target, std::chrono::milliseconds delay);  // answer it that late
  void garble_next(std::string target);  // answer it with bytes that are not HTTP
  std::map<std::string, std::string> devices() const;  // id → sysfs path

 private:
  void serve();

  std::string path_;
  mutable std::mutex mutex_;
  std::string state_ = "Running";
  std::map<std::string, std::string> devices_;
  std::map<std::string, std::pair<unsigned, std::string>> answers_;
  std::map<std::string, std::chrono::milliseconds> delays_;
  std::map<std::string, bool> garbled_;
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::atomic<bool> stop_ = false;
  std::thread thread_;
};

}  // namespace vhp::test
