#pragma once
// What an accept loop does when accept fails (EMFILE, ENFILE, ENOBUFS, …): the pending connection
// stays in the backlog and would fail again at once, so it pauses instead of spinning, and logs
// once per episode, not once per attempt.
#include <chrono>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

class AcceptBackoff {
 public:
  explicit AcceptBackoff(std::string who, std::chrono::milliseconds pause = std::chrono::milliseconds(100))
      : who_(std::move(who)), pause_(pause) {}

  boost::asio::awaitable<void> failed(boost::asio::any_io_executor ex, const boost::system::error_code& ec) {
    if (!failing_)
      spdlog::warn("{}: accept failed: {}; trying again every {} ms until it works", who_, ec.message(), pause_.count());
    failing_ = true;
    ++failures_;
    boost::asio::steady_timer timer(ex);
    timer.expires_after(pause_);
    boost::system::error_code ignored;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  }
  void succeeded() {
    if (failing_) spdlog::info("{}: accepting again after {} failed attempts", who_, failures_);
    failing_ = false;
    failures_ = 0;
  }

 private:
  std::string who_;
  std::chrono::milliseconds pause_;
  bool failing_ = false;
  long failures_ = 0;
};

}  // namespace vhp
