#pragma once
// The outgoing messages of one client: a byte-bounded queue its writer coroutine drains, and
// sleeps on while it is empty. Shared by the API connections and the Thunder WebSocket sessions.
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace vhp {

class SendQueue {
 public:
  static constexpr std::size_t kMaxBuffers = 64;  // below IOV_MAX (1024), and what one wakeup should write

  SendQueue(const boost::asio::any_io_executor& ex, std::size_t limit_bytes) : limit_(limit_bytes), wake_(ex) {}

  // One message, shared by every queue it is in (an event sent to many clients is one buffer).
  using Message = std::shared_ptr<const std::string>;

  // False, and nothing queued, when the message would take the queue over its limit:
  // the client is not reading and the caller drops it. A shared message counts in full.
  bool push(Message message) {
    if (bytes_ + message->size() > limit_) return false;
    bytes_ += message->size();
    queue_.push_back(std::move(message));
    wake_.cancel();
    return true;
  }
  bool push(std::string message) { return push(std::make_shared<const std::string>(std::move(message))); }
  bool empty() const { return queue_.empty(); }
  std::size_t bytes() const { return bytes_; }
  const std::string& front() const { return *queue_.front(); }  // stays valid while more is pushed
  void pop() {
    bytes_ -= queue_.front()->size();
    queue_.pop_front();
  }
  // The first messages, up to `max_bytes` (at least one), as one gather write's buffers: a client
  // behind by many events gets them in one system call. They stay valid while more is pushed.
  std::vector<boost::asio::const_buffer> front_buffers(std::size_t max_bytes) const {
    std::vector<boost::asio::const_buffer> buffers;
    std::size_t taken = 0;
    for (const auto& m : queue_) {
      if (!buffers.empty() && (taken + m->size() > max_bytes || buffers.size() == kMaxBuffers)) break;
      buffers.emplace_back(m->data(), m->size());
      taken += m->size();
    }
    return buffers;
  }
  void clear() {
    queue_.clear();
    bytes_ = 0;
  }
  void pop(std::size_t count) {
    for (; count > 0 && !queue_.empty(); --count) pop();
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
  std::deque<Message> queue_;
  boost::asio::steady_timer wake_;
};

}  // namespace vhp
