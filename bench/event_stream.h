#pragma once
// An API subscriber for the benchmarks: every event line with the moment it arrived, read by a
// thread of its own.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/sockets.h"

namespace vhp::bench {

using clock_type = std::chrono::steady_clock;

class EventStream {
 public:
  explicit EventStream(const std::string& socket) : fd_(vhp::test::connect_unix(socket)) {
    std::string enable = "{\"action\":\"enable_notifications\"}\n";
    if (fd_.get() < 0 || ::write(fd_.get(), enable.data(), enable.size()) != static_cast<ssize_t>(enable.size()))
      throw std::runtime_error("cannot subscribe to events");
    // Subscribed once the answer is here: an event published before then is not sent to us.
    std::string buffer;
    char chunk[65536];
    while (buffer.find('\n') == std::string::npos) {
      pollfd p{fd_.get(), POLLIN, 0};
      auto n = ::poll(&p, 1, 10000) > 0 ? ::read(fd_.get(), chunk, sizeof chunk) : 0;
      if (n <= 0) throw std::runtime_error("no answer to enable_notifications");
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    auto answer = nlohmann::json::parse(buffer.substr(0, buffer.find('\n')), nullptr, false);
    if (!answer.is_object() || answer.value("result", "") != "ok")
      throw std::runtime_error("enable_notifications refused: " + buffer.substr(0, buffer.find('\n')));
    buffer.erase(0, buffer.find('\n') + 1);
    reader_ = std::jthread([this, buffer = std::move(buffer)](std::stop_token stop) mutable {
      char chunk[65536];
      while (!stop.stop_requested()) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        auto n = ::read(fd_.get(), chunk, sizeof chunk);
        if (n <= 0) return;  // the daemon went
        auto at = clock_type::now();
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::lock_guard lock(mutex_);
        for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
          events_.push_back({at, nlohmann::json::parse(buffer.substr(0, nl), nullptr, false)});
          buffer.erase(0, nl + 1);
        }
        arrived_.notify_all();
      }
    });
  }

  // When each of `nodes`' `event` arrived, as far as they did within `limit` (the events read on
  // the way are consumed).
  std::map<std::string, clock_type::time_point> collect(const std::string& event, const std::set<std::string>& nodes,
                                                         std::chrono::milliseconds limit) {
    std::map<std::string, clock_type::time_point> seen;
    std::unique_lock lock(mutex_);
    auto deadline = clock_type::now() + limit;
    while (seen.size() < nodes.size()) {
      while (!events_.empty()) {
        auto [at, e] = events_.front();
        events_.pop_front();
        if (!e.is_object() || e.value("event", "") != event) continue;
        if (auto node = e["usb_device"].value("device_node", ""); nodes.contains(node)) seen.emplace(node, at);
      }
      if (seen.size() < nodes.size() && arrived_.wait_until(lock, deadline) == std::cv_status::timeout && events_.empty()) break;
    }
    return seen;
  }

  // When the next `event` about the USB device at `node` arrived (consumed with the events before
  // it), or nothing within `limit`.
  std::optional<clock_type::time_point> wait(const std::string& event, const std::string& node, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    auto deadline = clock_type::now() + limit;
    for (;;) {
      while (!events_.empty()) {
        auto [at, e] = events_.front();
        events_.pop_front();
        if (e.is_object() && e.value("event", "") == event && e["usb_device"].value("device_node", "") == node) return at;
      }
      if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout && events_.empty()) return std::nullopt;
    }
  }

 private:
  vhp::test::Fd fd_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::pair<clock_type::time_point, nlohmann::json>> events_;
  std::jthread reader_;  // last: stopped and joined first
};

}  // namespace vhp::bench
