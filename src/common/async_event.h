#pragma once
// A one-shot event a coroutine can wait for, with a timeout. Single-threaded (the event loop).
#include <chrono>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace vhp {

class AsyncEvent {
 public:
  explicit AsyncEvent(const boost::asio::any_io_executor& ex) : timer_(ex) {}

  void set() {
    set_ = true;
    timer_.cancel();
  }
  bool is_set() const { return set_; }

  // True when set (before or while waiting), false when `timeout` passed first.
  boost::asio::awaitable<bool> wait(std::chrono::steady_clock::duration timeout) {
    if (set_) co_return true;
    timer_.expires_after(timeout);
    boost::system::error_code ignored;
    co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
    co_return set_;
  }

 private:
  boost::asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace vhp
