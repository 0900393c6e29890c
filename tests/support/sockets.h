#pragma once
// Small socket helpers for tests.
#include <chrono>
#include <functional>
#include <string>
#include <utility>

namespace vhp::test {

int free_tcp_port();  // a port on 127.0.0.1 nobody listens on right now
int connect_unix(const std::string& path);  // a connected fd, or -1

// An owned descriptor, closed when it goes.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd();
  int get() const { return fd_; }

 private:
  int fd_;
};

Fd tcp_connect(int port);  // a TCP connection to 127.0.0.1:port; throws when refused
bool unix_socket_accepts(const std::string& path);
// Polls `done` every 10 ms until it holds or `limit` passes; returns whether it held.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(10));
// Reads one '\n'-terminated line from a raw fd (without the '\n'); "" on end of stream or timeout.
std::string read_line_fd(int fd, std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace vhp::test
