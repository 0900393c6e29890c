#pragma once
// What `crosvm run -s <socket>` keeps while its VM runs: a listening SOCK_SEQPACKET socket that
// takes each control connection (and here hangs up at once: the command-line stand-in answers).
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vhp::test {

class ControlSocket {
 public:
  explicit ControlSocket(std::string path) : path_(std::move(path)) { open(); }
  ~ControlSocket() { close(); }
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  void open() {  // the VM starts (again): a new socket, another inode
    fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.size() >= sizeof addr.sun_path || ::pipe2(stop_, O_CLOEXEC) != 0) throw std::runtime_error("control socket " + path_);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error("control socket " + path_ + ": " + std::strerror(errno));
    acceptor_ = std::thread([fd = fd_, stop = stop_[0]] {
      pollfd fds[2] = {{fd, POLLIN, 0}, {stop, POLLIN, 0}};
      while (::poll(fds, 2, -1) >= 0 && !(fds[1].revents & POLLIN))
        if (fds[0].revents & POLLIN)
          if (int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC); c >= 0) ::close(c);
    });
  }
  void close() {  // the VM stops: crosvm removes its socket
    if (fd_ < 0) return;
    (void)!::write(stop_[1], "x", 1);
    acceptor_.join();
    ::close(stop_[0]), ::close(stop_[1]);
    ::close(fd_), ::unlink(path_.c_str());
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1, stop_[2] = {-1, -1};
  std::thread acceptor_;
};

}  // namespace vhp::test
