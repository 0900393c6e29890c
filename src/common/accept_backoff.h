#pragma once
// What an accept loop does when accept fails (EMFILE, ENFILE, ENOBUFS, …): the pending connection
// stays in the backlog and would fail again at once, so the loop pauses (`pause` on its own frame's
// timer) instead of spinning, and this logs once per episode, not once per attempt.
#include <chrono>
#include <string>

#include <boost/system/error_code.hpp>
#include <spdlog/spdlog.h>

namespace vhp {

class AcceptBackoff {
 public:
  static constexpr std::chrono::milliseconds pause{100};

  explicit AcceptBackoff(std::string who) : who_(std::move(who)) {}

  void failed(const boost::system::error_code& ec) {
    if (!failing_)
      spdlog::warn("{}: accept failed: {}; trying again every {} ms until it works", who_, ec.message(), pause.count());
    failing_ = true;
    ++failures_;
  }
  void succeeded() {
    if (failing_) spdlog::info("{}: accepting again after {} failed attempts", who_, failures_);
    failing_ = false;
    failures_ = 0;
  }

 private:
  std::string who_;
  bool failing_ = false;
  long failures_ = 0;
};

}  // namespace vhp
