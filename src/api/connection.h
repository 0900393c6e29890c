#pragma once
// One API client: reads newline-delimited requests, answers them in order, and carries events.
// Everything it sends goes through one bounded queue, so a response and an event never interleave
// inside a line, and a client that stops reading is dropped instead of slowing anyone else.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api/protocol.h"
#include "common/send_queue.h"

namespace vhp {

struct ConnectionLimits {
  std::size_t max_line_bytes;
  std::size_t send_queue_bytes;
  std::chrono::milliseconds send_timeout;
  std::chrono::milliseconds first_request_timeout;  // no complete request by then: closed
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;
  using OnClosed = std::function<void(Connection*)>;
  // Runs attach/detach; the connection answers with its result. Requests on one connection are answered in order.
  using RunCommand = std::function<boost::asio::awaitable<nlohmann::ordered_json>(const Command&)>;
  // usb_select_vm events still pending, for a connection that just enabled notifications.
  using PendingEvents = std::function<std::vector<nlohmann::ordered_json>()>;

  Connection(Socket socket, std::string peer, Protocol& protocol, ConnectionLimits limits, OnClosed on_closed,
             RunCommand run_command = {}, PendingEvents pending_events = {}, Session session = {});
  ~Connection();

  void start();                          // serve requests
  void refuse(const std::string& line);  // send one line, then close; reads nothing
  void send(std::string line);           // queue a line ('\n' included)
  void send(SendQueue::Message line);    // the same, shared with other connections (an event)
  void close();

  bool wants_notifications() const { return session_.notifications; }
  const Grant* grant() const { return session_.grant.get(); }  // nullptr: no permissions configured
  const std::string& peer() const { return peer_; }

 private:
  std::function<void(std::exception_ptr)> on_failure();
  boost::asio::awaitable<void> read_loop();
  // Reads and drops bytes up to the next '\n' (the end of an over-long line); false when the stream ended.
  boost::asio::awaitable<bool> skip_line();
  boost::asio::awaitable<void> write_loop();

  Socket socket_;
  std::string peer_;
  Protocol& protocol_;
  ConnectionLimits limits_;
  OnClosed on_closed_;
  RunCommand run_command_;
  PendingEvents pending_events_;
  Session session_;
  std::string input_;
  SendQueue queue_;
  bool close_after_flush_ = false;
  bool closed_ = false;
  boost::asio::steady_timer deadline_;  // a write that takes longer than send_timeout drops the client
  boost::asio::steady_timer first_request_;  // a connection that never sends a complete request is closed
};

}  // namespace vhp
