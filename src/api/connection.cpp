#include "api/connection.h"

#include <malloc.h>

#include <algorithm>
#include <array>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/log_fields.h"

namespace vhp {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxWriteBytes = 256 * 1024;  // one gather write of queued lines
// A client dropped with this much unsent: malloc keeps the freed space in its heap unless told to
// give it back, and a few stalled subscribers would leave the daemon megabytes larger for good.
constexpr std::size_t kTrimAfterBytes = 512 * 1024;

// The log fields of a line about a client: its caller identity (none for a refused one, which has no session).
LogFields about_client(const Session& session) {
  return session.caller.transport.empty() ? LogFields() : LogFields().caller(session.caller.identity());
}

}  // namespace

Connection::Connection(Socket socket, std::string peer, Protocol& protocol, ConnectionLimits limits, OnClosed on_closed,
                       RunCommand run_command, PendingEvents pending_events, Session session)
    : socket_(std::move(socket)),
      peer_(std::move(peer)),
      protocol_(protocol),
      limits_(limits),
      on_closed_(std::move(on_closed)),
      run_command_(std::move(run_command)),
      pending_events_(std::move(pending_events)),
      session_(std::move(session)),
      queue_(socket_.get_executor(), limits.send_queue_bytes),
      deadline_(socket_.get_executor()),
      first_request_(socket_.get_executor()) {}

// An exception out of a connection's coroutine is a bug: log it and drop that client, never lose it silently.
std::function<void(std::exception_ptr)> Connection::on_failure() {
  return [self = shared_from_this()](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      about_client(self->session_).error("api: {}: {}; closing the connection", self->peer_, ex.what());
    }
    self->close();
  };
}

Connection::~Connection() {
  if (queue_.bytes() < kTrimAfterBytes) return;
  queue_.clear();
  ::malloc_trim(0);
}

void Connection::start() {
  auto self = shared_from_this();
  first_request_.expires_after(limits_.first_request_timeout);
  first_request_.async_wait([weak = std::weak_ptr<Connection>(self)](boost::system::error_code ec) {
    auto conn = weak.lock();
    if (ec || !conn) return;
    about_client(conn->session_)
        .info("api: {} sent no complete request within {} ms; closing", conn->peer_, conn->limits_.first_request_timeout.count());
    conn->close();
  });
  asio::co_spawn(socket_.get_executor(), [self] { return self->read_loop(); }, on_failure());
  asio::co_spawn(socket_.get_executor(), [self] { return self->write_loop(); }, on_failure());
}

void Connection::refuse(const std::string& line) {
  close_after_flush_ = true;
  send(line);
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), [self] { return self->write_loop(); }, on_failure());
}

void Connection::send(std::string line) { send(std::make_shared<const std::string>(std::move(line))); }

void Connection::send(SendQueue::Message line) {
  if (closed_ || queue_.push(std::move(line))) return;
  about_client(session_).warn("api: {} is not reading ({} bytes waiting); disconnecting it", peer_, queue_.bytes());
  close();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  queue_.wake();
  deadline_.cancel();
  first_request_.cancel();
  if (on_closed_) on_closed_(this);
}

asio::awaitable<void> Connection::read_loop() {
  auto self = shared_from_this();
  while (!closed_ && !close_after_flush_) {
    boost::system::error_code ec;
    // One byte beyond the limit is the '\n' that ends a line of exactly max_line_bytes.
    std::size_t n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(input_, limits_.max_line_bytes + 1),
                                                    '\n', asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::not_found) {  // answered; the rest of that line is skipped and the next one served
      about_client(session_).warn("api: {} sent a line over {} bytes; skipping it", peer_, limits_.max_line_bytes);
      send(Protocol::to_line(Protocol::line_too_long(limits_.max_line_bytes)));
      input_.clear();
      if (!co_await skip_line()) {
        close();
        co_return;
      }
      first_request_.cancel();  // a whole line came, however long: the client is not idle
      continue;
    }
    if (ec) {  // end of stream, reset, or closed by us
      close();
      co_return;
    }
    first_request_.cancel();
    auto outcome = protocol_.handle(std::string_view(input_.data(), n - 1), session_);
    input_.erase(0, n);
    if (outcome.command) {
      // Events the command causes reach this connection's queue before its response does.
      // (No co_await inside ?: — GCC 12 destroys the result too early there.)
      nlohmann::ordered_json response = Protocol::failed("Attach and detach are not available");
      if (run_command_) response = co_await run_command_(*outcome.command);
      send(Protocol::to_line(response));
      continue;
    }
    send(outcome.response_line());
    if (outcome.replay_pending_selects && pending_events_)
      for (const auto& event : pending_events_()) send(Protocol::to_line(event));
  }
}

asio::awaitable<bool> Connection::skip_line() {
  std::array<char, 4096> chunk;
  while (!closed_) {
    boost::system::error_code ec;
    std::size_t n = co_await socket_.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
    auto end = chunk.begin() + static_cast<std::ptrdiff_t>(n);
    if (auto newline = std::find(chunk.begin(), end, '\n'); newline != end) {
      input_.assign(newline + 1, end);  // the start of the next request
      co_return true;
    }
  }
  co_return false;
}

asio::awaitable<void> Connection::write_loop() {
  auto self = shared_from_this();
  std::weak_ptr<Connection> weak = self;
  while (!closed_) {
    if (queue_.empty()) {
      if (close_after_flush_) {
        close();
        break;
      }
      co_await queue_.wait();
      continue;
    }
    deadline_.expires_after(limits_.send_timeout);
    deadline_.async_wait([weak](boost::system::error_code ec) {
      auto conn = weak.lock();
      if (ec || !conn) return;
      about_client(conn->session_).warn("api: sending to {} timed out; disconnecting it", conn->peer_);
      conn->close();
    });
    boost::system::error_code ec;
    auto buffers = queue_.front_buffers(kMaxWriteBytes);
    co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
    deadline_.cancel();
    if (ec) {
      close();
      break;
    }
    queue_.pop(buffers.size());
  }
}

}  // namespace vhp
