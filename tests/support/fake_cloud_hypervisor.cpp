#include "support/fake_cloud_hypervisor.h"

#include <unistd.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace vhp::test {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using json = nlohmann::json;

FakeCloudHypervisor::FakeCloudHypervisor(std::string socket_path)
    : path_(std::move(socket_path)), acceptor_(io_, asio::local::stream_protocol::endpoint(path_)) {
  thread_ = std::thread([this] { serve(); });
}

FakeCloudHypervisor::~FakeCloudHypervisor() {
  stop_ = true;
  boost::system::error_code ec;
  asio::local::stream_protocol::socket wake(io_);
  wake.connect(asio::local::stream_protocol::endpoint(path_), ec);  // the blocked accept returns
  thread_.join();
  ::unlink(path_.c_str());
}

void FakeCloudHypervisor::set_state(std::string state) {
  std::lock_guard lock(mutex_);
  state_ = std::move(state);
}
void FakeCloudHypervisor::answer_next(std::string target, unsigned status, std::string body) {
  std::lock_guard lock(mutex_);
  answers_[target] = {status, std::move(body)};
}
void FakeCloudHypervisor::delay_next(std::string target, std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  delays_[target] = delay;
}
void FakeCloudHypervisor::garble_next(std::string target) {
  std::lock_guard lock(mutex_);
  garbled_[target] = true;
}
std::map<std::string, std::string> FakeCloudHypervisor::devices() const {
  std::lock_guard lock(mutex_);
  return devices_;
}

void FakeCloudHypervisor::serve() {
  while (true) {
    asio::local::stream_protocol::socket socket(io_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    if (stop_) return;
    if (ec) continue;
    boost::beast::flat_buffer buffer;
    beast_http::request<beast_http::string_body> req;
    beast_http::read(socket, buffer, req, ec);
    if (ec) continue;
    std::string target(req.target());
    beast_http::response<beast_http::string_body> res{beast_http::status::ok, 11};
    std::chrono::milliseconds delay{0};
    bool garbled = false;
    {
      std::lock_guard lock(mutex_);
      delay = std::exchange(delays_[target], std::chrono::milliseconds(0));
      garbled = std::exchange(garbled_[target], false);
      auto body = json::parse(req.body(), nullptr, false);
      if (auto it = answers_.find(target); it != answers_.end()) {
        res.result(it->second.first);
        res.body() = it->second.second;
        answers_.erase(it);
      } else if (target == "/api/v1/vm.info" && req.method() == beast_http::verb::get) {
        json devices = json::array();
        for (const auto& [id, path] : devices_) devices.push_back({{"path", path}, {"iommu", false}, {"id", id}, {"pci_segment", 0}});
        res.body() = json{{"state", state_}, {"memory_actual_size", 1073741824}, {"config", {{"devices", devices}}}}.dump();
        res.set(beast_http::field::content_type, "application/json");
      } else if (target == "/api/v1/vm.add-device" && req.method() == beast_http::verb::put && body.is_object()) {
        std::string id = body.value("id", "_vfio" + std::to_string(devices_.size()));
        if (devices_.contains(id)) {
          res.result(beast_http::status::internal_server_error);
          res.body() = "Error from API: The VM could not add the device: Failed to add the device: Identifier " + id + " is not unique";
        } else {
          devices_[id] = body.value("path", "");
          res.body() = json{{"id", id}, {"bdf", "0000:00:0" + std::to_string(3 + devices_.size()) + ".0"}}.dump();
          res.set(beast_http::field::content_type, "application/json");
        }
      } else if (target == "/api/v1/vm.remove-device" && req.method() == beast_http::verb::put && body.is_object()) {
        if (devices_.erase(body.value("id", ""))) res.result(beast_http::status::no_content);
        else {
          res.result(beast_http::status::not_found);
          res.body() = "Error from API: The VM could not remove the device: No device with id " + body.value("id", "");
        }
      } else {
        res.result(beast_http::status::bad_request);
        res.body() = "Error from API: bad request";
      }
    }
    std::this_thread::sleep_for(delay);
    if (garbled) {
      asio::write(socket, asio::buffer(std::string("\x01\x02 not http\r\n\r\n")), ec);
      continue;
    }
    res.prepare_payload();
    beast_http::write(socket, res, ec);
  }
}

}  // namespace vhp::test
