#pragma once
// An asynchronous QMP client on the event loop: greeting, capabilities negotiation, commands with
// ids and timeouts, and events. One connection; the owner reconnects by making a new client.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "common/async_event.h"

namespace vhp {

// A QMP error reply ({"error":{"class","desc"}}), or a local failure: class "Timeout" or "Disconnected".
struct QmpError : std::runtime_error {
  QmpError(std::string error_class, const std::string& desc) : std::runtime_error(desc), error_class(std::move(error_class)) {}
  std::string error_class;
};

class QmpClient : public std::enable_shared_from_this<QmpClient> {
 public:
  using Duration = std::chrono::steady_clock::duration;

  // An event someone is waiting for; register it before sending the command that causes it.
  struct EventWaiter {
    std::string name;
    std::function<bool(const nlohmann::json& data)> matches;
    AsyncEvent arrived;
    nlohmann::json data;
  };

  explicit QmpClient(boost::asio::any_io_executor ex);
  ~QmpClient();

  // Connects to the QMP socket, reads the greeting and negotiates capabilities. Throws QmpError.
  boost::asio::awaitable<void> connect(const std::string& socket_path, Duration timeout);
  // Runs a command and returns its "return" value. Throws QmpError.
  boost::asio::awaitable<nlohmann::json> execute(const std::string& command, nlohmann::json arguments, Duration timeout);
  std::shared_ptr<EventWaiter> expect_event(std::string name, std::function<bool(const nlohmann::json&)> matches);

  void close();
  bool connected() const { return connected_; }
  // Called once when an established connection ends (by the peer or by close()).
  std::function<void()> on_closed;

 private:
  struct Pending {
    explicit Pending(const boost::asio::any_io_executor& ex) : done(ex) {}
    AsyncEvent done;
    nlohmann::json reply;
  };

  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<nlohmann::json> read_message(Duration timeout);  // during connect only
  void dispatch(const nlohmann::json& message);
  void fail_all();

  boost::asio::local::stream_protocol::socket socket_;
  std::string input_;
  bool connected_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  std::vector<std::weak_ptr<EventWaiter>> waiters_;
};

}  // namespace vhp
