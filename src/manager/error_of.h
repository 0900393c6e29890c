#pragma once
// Runs an operation and returns its failure's text ("" when it succeeded). Callers log or ignore
// it; a coroutine cannot co_await inside a catch handler, so this is the one place that catches.
#include <exception>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>

namespace vhp {

inline boost::asio::awaitable<std::string> error_of(boost::asio::awaitable<void> operation) {
  std::string error;
  try {
    co_await std::move(operation);
  } catch (const std::exception& e) {
    error = e.what();
  }
  co_return error;
}

}  // namespace vhp
