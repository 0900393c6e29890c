#pragma once
// Serialises coroutines: one holder at a time, the others wait in order. Single-threaded.
// A Lock keeps the mutex's state alive, so a coroutine frame destroyed late (at shutdown) never
// touches freed memory.
#include <algorithm>
#include <deque>
#include <memory>
#include <optional>

#include "common/async_event.h"

namespace vhp {

class AsyncMutex {
  struct State {
    bool locked = false;
    std::deque<std::shared_ptr<AsyncEvent>> waiters;
  };

 public:
  class Lock {
   public:
    explicit Lock(std::shared_ptr<State> state) : state_(std::move(state)) {}
    Lock(Lock&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    Lock& operator=(Lock&&) = delete;
    ~Lock() {
      if (state_) unlock(*state_);
    }

   private:
    std::shared_ptr<State> state_;
  };

  explicit AsyncMutex(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

  // The lock, or nothing when `timeout` passed while waiting for it.
  boost::asio::awaitable<std::optional<Lock>> lock(std::chrono::steady_clock::duration timeout) {
    auto state = state_;
    if (state->locked) {
      auto turn = std::make_shared<AsyncEvent>(ex_);
      state->waiters.push_back(turn);
      if (!co_await turn->wait(timeout)) {
        std::erase(state->waiters, turn);
        co_return std::nullopt;
      }
    }
    state->locked = true;  // handed over by unlock(), or free
    co_return Lock(state);
  }
  boost::asio::awaitable<Lock> lock() {
    while (true)
      if (auto held = co_await lock(std::chrono::hours(24))) co_return std::move(*held);
  }
  std::size_t waiting() const { return state_->waiters.size(); }

 private:
  static void unlock(State& state) {
    state.locked = false;
    if (state.waiters.empty()) return;
    auto next = state.waiters.front();
    state.waiters.pop_front();
    state.locked = true;  // reserved for `next`: nobody may slip in before it resumes
    next->set();
  }

  boost::asio::any_io_executor ex_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace vhp
