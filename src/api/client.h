#pragma once
// A blocking client for the vhotplug API, as vhotplugctl and scripts use it.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vhp {

struct ClientOptions {
  std::string transport = "unix";  // unix | tcp | vsock
  std::string path = "/var/lib/vhotplug/vhotplug.sock";
  std::string host = "127.0.0.1";
  int port = 2000;
  unsigned cid = 2;     // the host
  int timeout_ms = 30'000;  // per read or write; 0 waits forever (listen)
};

// "vsock" inside a VM (the local CID is a guest's), otherwise "unix": the reference CLI's default.
std::string default_transport();

// The daemon could not be reached; `error_number` is the errno (ECONNREFUSED, ENOENT, …).
struct ConnectError : std::runtime_error {
  ConnectError(const std::string& what, int error_number) : std::runtime_error(what), error_number(error_number) {}
  int error_number;
};

class ApiClient {
 public:
  explicit ApiClient(const ClientOptions& options);  // connects; throws ConnectError
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  void send(const nlohmann::json& message);  // one line
  void send_raw(std::string_view bytes);     // exactly these bytes
  std::string read_line();  // without '\n'; throws on end of stream
  nlohmann::json request(const nlohmann::json& message);  // send, then the next line parsed

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vhp
