#pragma once
// The Thunder USBHub facade on one port: HTTP POST and WebSocket at /jsonrpc (and
// /jsonrpc/<callsign>), announce/revoke to subscribed WebSocket clients. Boost.Beast, one loop.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "manager/device_manager.h"
#include "policy/config.h"
#include "thunder/jsonrpc.h"

namespace vhp::thunder {

class WsSession;

class ThunderServer {
 public:
  ThunderServer(boost::asio::io_context& io, DeviceManager& manager, const ThunderConfig& config);
  ~ThunderServer();
  ThunderServer(const ThunderServer&) = delete;
  ThunderServer& operator=(const ThunderServer&) = delete;

  void start();  // throws std::runtime_error when it cannot listen
  void stop();
  unsigned short port() const;
  std::size_t client_count() const { return clients_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
  void on_device_event(const DeviceEvent& event);
  nlohmann::ordered_json metadata(const UsbDevice& d) const;

  boost::asio::io_context& io_;
  DeviceManager& manager_;
  ThunderConfig config_;
  JsonRpc rpc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  Subscription devices_;
  std::set<std::shared_ptr<WsSession>> sessions_;
  std::size_t clients_ = 0;
  std::map<boost::asio::ip::address, std::size_t> websockets_;  // per peer
  // Connections waiting for their next request, by age: the oldest makes room when the client
  // limit is reached, so idle sockets cannot lock out a client that has something to ask.
  std::map<std::uint64_t, boost::asio::ip::tcp::socket*> idle_;
  std::uint64_t next_idle_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vhp::thunder
