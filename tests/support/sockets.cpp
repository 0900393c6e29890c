#include "support/sockets.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vhp::test {

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd tcp_connect(int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  return fd;
}

bool unix_socket_accepts(const std::string& path) {
  int fd = connect_unix(path);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string read_line_fd(int fd, std::chrono::milliseconds limit) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    // Looks at what has come, then takes it up to the '\n' only: what follows stays for the next call.
    char chunk[65536];
    std::size_t want = 1;  // not a socket (no peeking): a byte at a time
    if (auto seen = ::recv(fd, chunk, sizeof chunk, MSG_PEEK); seen > 0) {
      auto* end = static_cast<char*>(std::memchr(chunk, '\n', static_cast<std::size_t>(seen)));
      want = end ? static_cast<std::size_t>(end - chunk) + 1 : static_cast<std::size_t>(seen);
    } else if (seen == 0 || errno != ENOTSOCK) {
      return "";
    }
    auto got = ::read(fd, chunk, want);
    if (got <= 0) return "";
    auto taken = static_cast<std::size_t>(got);
    if (chunk[taken - 1] == '\n') return line.append(chunk, taken - 1);
    line.append(chunk, taken);
  }
}

}  // namespace vhp::test
