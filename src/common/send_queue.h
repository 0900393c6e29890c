#pragma once
// The outgoing messages of one client: a byte-bounded queue its writer coroutine drains, and
// sleeps on while it is empty. Shared by the API connections and the Thunder WebSocket sessions.
#include <cstddef>
#include <deque>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace vhp {

class SendQueue {
 public:
  SendQueue(const boost::asio::any_io_executor& ex, std::size_t limit_bytes) : limit_(limit_bytes), wake_(ex) {}

  // False, and nothing queued, when the message would take the queue over its limit:
  // the client is not reading and the caller drops it.
  bool push(std::string message) {
    if (bytes_ + message.size() > limit_) return false;
    bytes_ += message.size();
    queue_.push_back(std::move(message));
    wake_.cancel();
    return true;
  }
  bool empty() const { return queue_.empty(); }
  std::size_t bytes() const { return bytes_; }
  const std::string& front() const { return queue_.front(); }  // stays valid while more is pushed
  void pop() {
    bytes_ -= queue_.front().size();
    queue_.pop_front();
  }

  // Returns when something is pushed or wake() is called (a close, say).
  boost::asio::awaitable<void> wait() {
    boost::system::error_code ignored;
    wake_.expires_at(boost::asio::steady_timer::time_point::max());
    co_await wake_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  }
  void wake() { wake_.cancel(); }

 private:
  std::size_t limit_;
  std::size_t bytes_ = 0;
  std::deque<std::string> queue_;
  boost::asio::steady_timer wake_;
};

}  // namespace vhp
