#pragma once
// Serialises coroutines: one holder at a time, the others wait in order. Single-threaded.
#include <deque>
#include <memory>

#include "common/async_event.h"

namespace vhp {

class AsyncMutex {
 public:
  class Lock {
   public:
    explicit Lock(AsyncMutex* m) : mutex_(m) {}
    Lock(Lock&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
    Lock& operator=(Lock&&) = delete;
    ~Lock() {
      if (mutex_) mutex_->unlock();
    }

   private:
    AsyncMutex* mutex_;
  };

  explicit AsyncMutex(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

  boost::asio::awaitable<Lock> lock() {
    if (locked_) {
      auto turn = std::make_shared<AsyncEvent>(ex_);
      waiters_.push_back(turn);
      while (!co_await turn->wait(std::chrono::hours(24))) {
      }
    }
    locked_ = true;  // handed over by unlock(), or free
    co_return Lock(this);
  }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  void unlock() {
    locked_ = false;
    if (waiters_.empty()) return;
    auto next = waiters_.front();
    waiters_.pop_front();
    locked_ = true;  // reserved for `next`: nobody may slip in before it resumes
    next->set();
  }

  boost::asio::any_io_executor ex_;
  bool locked_ = false;
  std::deque<std::shared_ptr<AsyncEvent>> waiters_;
};

}  // namespace vhp
