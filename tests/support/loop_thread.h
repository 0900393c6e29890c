#pragma once
// Runs an io_context on its own thread, so a test can drive in-process servers through real
// sockets from the test thread. Everything the servers own is touched on the loop only.
#include <functional>
#include <future>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace vhp::test {

class LoopThread {
 public:
  explicit LoopThread(boost::asio::io_context& io) : io_(io), work_(io.get_executor()) {}
  ~LoopThread() { stop([] {}); }

  void start() { thread_ = std::thread([this] { io_.run(); }); }
  bool running() const { return thread_.joinable(); }

  // Runs `f` on the loop and returns its result.
  template <class F>
  auto run(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  // Runs `last` on the loop (closing servers), then ends the loop and joins.
  void stop(const std::function<void()>& last) {
    if (!thread_.joinable()) return;
    run([&] {
      last();
      return 0;
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  boost::asio::io_context& io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace vhp::test
