#pragma once
// Runs a coroutine to completion on a test's own loop, rethrowing what it throws.
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include "support/event_loop.h"

namespace vhp::test {

template <class T>
T complete(boost::asio::io_context& io, boost::asio::awaitable<T> work,
           std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  std::optional<T> result;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result = std::move(value);
  });
  if (!run_until(io, [&] { return result.has_value() || error; }, limit)) throw std::runtime_error("coroutine did not finish");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

inline void complete(boost::asio::io_context& io, boost::asio::awaitable<void> work,
                     std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  bool done = false;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  if (!run_until(io, [&] { return done; }, limit)) throw std::runtime_error("coroutine did not finish");
  if (error) std::rethrow_exception(error);
}

// Starts a coroutine without waiting; `done` and `error` (its exception's text) are set when it ends.
struct Finished {
  bool done = false;
  std::string error;
};
inline void start(boost::asio::io_context& io, boost::asio::awaitable<void> work, Finished& finished) {
  boost::asio::co_spawn(io, std::move(work), [&finished](std::exception_ptr e) {
    finished.done = true;
    try {
      if (e) std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      finished.error = ex.what();
    }
  });
}

}  // namespace vhp::test
