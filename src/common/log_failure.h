#pragma once
// The completion handler for a coroutine started with co_spawn: an exception that escapes it is a
// bug, so it is logged with what the coroutine was doing instead of being dropped (as
// boost::asio::detached does, silently).
#include <exception>
#include <string>

#include <spdlog/spdlog.h>

namespace vhp {

inline auto log_failure(std::string what) {
  return [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{} failed unexpectedly: {}", what, ex.what());
    } catch (...) {
      spdlog::error("{} failed unexpectedly", what);
    }
  };
}

}  // namespace vhp
