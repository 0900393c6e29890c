#include "api/client.h"

#include <stdexcept>

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

namespace vhp {

namespace asio = boost::asio;
using generic = asio::generic::stream_protocol;

std::string default_transport() {
  int fd = ::open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "unix";
  unsigned cid = VMADDR_CID_ANY;
  bool guest = ::ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) == 0 && cid != VMADDR_CID_HOST && cid != VMADDR_CID_ANY && cid != 1;  // 1: VMADDR_CID_LOCAL
  ::close(fd);
  return guest ? "vsock" : "unix";
}

struct ApiClient::Impl {
  asio::io_context io;
  generic::socket socket{io};
  std::string buffer;
  int timeout_ms = 0;

  // Runs one asynchronous operation to completion, or until the timeout closes the socket.
  // (Asio's blocking calls poll without a timeout; SO_RCVTIMEO does not reach them.)
  template <class Start>
  void run(Start start, const char* what) {
    boost::system::error_code result = asio::error::would_block;
    std::size_t transferred = 0;
    start([&](boost::system::error_code ec, std::size_t n = 0) {
      result = ec;
      transferred = n;
    });
    io.restart();
    if (timeout_ms > 0) io.run_for(std::chrono::milliseconds(timeout_ms));
    else io.run();
    if (result == asio::error::would_block) {
      boost::system::error_code ignored;
      socket.close(ignored);
      io.restart();
      io.run();
      throw std::runtime_error(std::string(what) + ": no answer within " + std::to_string(timeout_ms) + " ms");
    }
    if (result) throw boost::system::system_error(result, what);
    last_transferred = transferred;
  }
  std::size_t last_transferred = 0;
};

ApiClient::ApiClient(const ClientOptions& o) : impl_(std::make_unique<Impl>()) {
  boost::system::error_code ec;
  std::string where;
  if (o.transport == "unix") {
    where = "unix " + o.path;
    impl_->socket.connect(asio::local::stream_protocol::endpoint(o.path), ec);
  } else if (o.transport == "tcp") {
    where = "tcp " + o.host + ":" + std::to_string(o.port);
    auto address = asio::ip::make_address(o.host, ec);
    if (!ec) impl_->socket.connect(asio::ip::tcp::endpoint(address, static_cast<unsigned short>(o.port)), ec);
  } else if (o.transport == "vsock") {
    where = "vsock " + std::to_string(o.cid) + ":" + std::to_string(o.port);
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = o.cid;
    addr.svm_port = static_cast<unsigned>(o.port);
    impl_->socket.connect(generic::endpoint(&addr, sizeof addr), ec);
  } else {
    throw std::runtime_error("unknown transport '" + o.transport + "'");
  }
  if (ec) throw ConnectError("cannot connect to " + where + ": " + ec.message(), ec.value());
  impl_->timeout_ms = o.timeout_ms;
}

ApiClient::~ApiClient() = default;

void ApiClient::send(const nlohmann::json& message) { send_raw(message.dump() + "\n"); }

void ApiClient::send_raw(std::string_view bytes) {
  impl_->run([&](auto done) { asio::async_write(impl_->socket, asio::buffer(bytes.data(), bytes.size()), done); }, "write");
}

std::string ApiClient::read_line() {
  impl_->run([&](auto done) { asio::async_read_until(impl_->socket, asio::dynamic_buffer(impl_->buffer), '\n', done); },
             "read");
  std::size_t n = impl_->last_transferred;
  std::string line = impl_->buffer.substr(0, n - 1);
  impl_->buffer.erase(0, n);
  return line;
}

nlohmann::json ApiClient::request(const nlohmann::json& message) {
  send(message);
  return nlohmann::json::parse(read_line());
}

}  // namespace vhp
