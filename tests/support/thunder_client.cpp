#include "support/thunder_client.h"

#include <chrono>
#include <stdexcept>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

namespace vhp::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

HttpResult http(const std::string& method, int port, const std::string& target, const std::string& body, const std::string& headers) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to port " + std::to_string(port));
  }
  std::string request = method + " " + target + " HTTP/1.1\r\n" + headers + "Content-Type: application/json\r\n" +
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) throw std::runtime_error("write");
  std::string response;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  HttpResult r;
  auto header_end = response.find("\r\n\r\n");
  if (response.size() < 12 || header_end == std::string::npos) throw std::runtime_error("no HTTP response");
  r.status = std::stoi(response.substr(9, 3));
  r.headers = response.substr(0, header_end);
  r.body = response.substr(header_end + 4);
  return r;
}

struct WsClient::Impl {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;
  std::string protocol;

  template <class Start>
  void run(Start start, const char* what, int timeout_ms = 5000) {
    bool done = false;
    beast::error_code result;
    start([&](beast::error_code ec, std::size_t = 0) {
      done = true;
      result = ec;
    });
    io.restart();
    io.run_for(std::chrono::milliseconds(timeout_ms));
    if (!done) {
      beast::get_lowest_layer(ws).close();
      io.restart();
      io.run();
      throw std::runtime_error(std::string(what) + ": timed out");
    }
    if (result) throw beast::system_error(result, what);
  }
};

WsClient::WsClient(int port, const std::string& target, const std::string& subprotocol, Headers headers, int receive_buffer)
    : impl_(std::make_unique<Impl>()) {
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  if (receive_buffer > 0) {
    auto& socket = beast::get_lowest_layer(impl_->ws).socket();
    socket.open(endpoint.protocol());
    socket.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
  }
  impl_->run([&](auto done) { beast::get_lowest_layer(impl_->ws).async_connect(endpoint, [done](beast::error_code ec) { done(ec); }); },
             "connect");
  impl_->ws.set_option(websocket::stream_base::decorator([subprotocol, headers](websocket::request_type& req) {
    if (!subprotocol.empty()) req.set(beast::http::field::sec_websocket_protocol, subprotocol);
    for (const auto& [name, value] : headers) req.set(name, value);
  }));
  websocket::response_type response;
  impl_->run([&](auto done) { impl_->ws.async_handshake(response, "localhost", target, [done](beast::error_code ec) { done(ec); }); },
             "handshake");
  impl_->protocol = std::string(response[beast::http::field::sec_websocket_protocol]);
}

WsClient::~WsClient() {
  beast::error_code ignored;
  beast::get_lowest_layer(impl_->ws).socket().close(ignored);
}

const std::string& WsClient::accepted_subprotocol() const { return impl_->protocol; }

void WsClient::send(const std::string& text) {
  impl_->run([&](auto done) { impl_->ws.async_write(asio::buffer(text), done); }, "write");
}

std::string WsClient::read(int timeout_ms) {
  impl_->run([&](auto done) { impl_->ws.async_read(impl_->buffer, done); }, "read", timeout_ms);
  auto text = beast::buffers_to_string(impl_->buffer.data());
  impl_->buffer.consume(impl_->buffer.size());
  return text;
}

}  // namespace vhp::test
