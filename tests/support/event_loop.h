#pragma once
#include <chrono>
#include <functional>

#include <boost/asio/io_context.hpp>

namespace vhp::test {

// Runs the loop until `done` holds or `limit` passes; returns whether `done` held.
// The limit only turns a hang into a failure; no test asserts on how long anything took.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace vhp::test
