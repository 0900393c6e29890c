#pragma once
// Clients for the Thunder facade in tests: raw HTTP/1.1 and a WebSocket whose every step has a timeout.
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vhp::test {

struct HttpResult {
  int status = 0;
  std::string headers, body;
};

// One request on a fresh connection, e.g. http("POST", port, "/jsonrpc", body); `headers` are its
// header lines (each ending in CRLF), Content-Type and Content-Length added.
HttpResult http(const std::string& method, int port, const std::string& target, const std::string& body,
                const std::string& headers = "Host: localhost\r\nConnection: close\r\n");

using Headers = std::vector<std::pair<std::string, std::string>>;

class WsClient {
 public:
  // Connects to ws://127.0.0.1:port<target>, offering `subprotocol` when not empty. A non-zero
  // `receive_buffer` sets SO_RCVBUF before connecting: a client that stops reading then holds
  // kilobytes in the kernel, not the megabytes loopback TCP would grow to.
  WsClient(int port, const std::string& target = "/jsonrpc", const std::string& subprotocol = "notification", Headers headers = {},
           int receive_buffer = 0);
  ~WsClient();
  const std::string& accepted_subprotocol() const;
  void send(const std::string& text);
  std::string read(int timeout_ms = 5000);  // throws on timeout or close
  std::string call(const std::string& text) {
    send(text);
    return read();
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vhp::test
