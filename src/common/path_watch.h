#pragma once
// Tells when a file may have appeared, gone or changed (a VM's control socket): inotify on its
// directory, filtered by name. Where the directory cannot be watched (it does not exist yet), it
// calls `changed` every `fallback` interval instead and tries the watch again each time.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

namespace vhp {

class PathWatch {
 public:
  PathWatch(boost::asio::io_context& io, std::string path, std::chrono::milliseconds fallback, std::function<void()> changed);
  ~PathWatch();
  PathWatch(const PathWatch&) = delete;
  PathWatch& operator=(const PathWatch&) = delete;

  void start();
  void stop();
  bool watching() const;  // inotify is in place (no fallback timer)

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the pending handlers, which outlive a stop()
};

}  // namespace vhp
