#pragma once
// One QMP session on a VM's monitor socket: connect, greeting, capabilities, then commands and
// events. Used by one operation at a time (the VM's queue guarantees it). QEMU runs a session's
// commands in the order sent and answers them in that order, so an operation may send a command
// behind another before reading the first answer; with the "oob" capability, enabled whenever the
// greeting offers it, QEMU also reads the commands queued behind the one it runs (without it, it
// reads nothing more until it has answered). Events that arrive meanwhile are kept for
// wait_event(). Every read and write has a deadline; a malformed, unexpected or oversized message
// is a QmpError, never another exception.
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>  // before Boost 1.74's awaitable.hpp

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

namespace vhp {

// QEMU's error reply ({"error":{"class","desc"}}: class is QEMU's), or a local failure:
// "Timeout", "Disconnected" (cannot connect, or the connection ended), "Protocol" (not QMP).
struct QmpError : std::runtime_error {
  QmpError(std::string error_class, const std::string& desc) : std::runtime_error(desc), error_class(std::move(error_class)) {}
  bool local() const { return error_class == "Timeout" || error_class == "Disconnected" || error_class == "Protocol"; }
  std::string error_class;
};

class QmpConnection : public std::enable_shared_from_this<QmpConnection> {
 public:
  using Duration = std::chrono::steady_clock::duration;
  static constexpr std::size_t kMaxMessageBytes = 1024 * 1024;
  static constexpr std::size_t kMaxKeptEvents = 64;

  explicit QmpConnection(boost::asio::any_io_executor ex);
  ~QmpConnection();

  // Connects, reads the greeting and negotiates capabilities, all within `timeout`.
  boost::asio::awaitable<void> open(const std::string& socket_path, Duration timeout);
  // Writes a command without waiting for its answer; its id, for receive().
  boost::asio::awaitable<std::uint64_t> send(const std::string& command, nlohmann::json arguments, Duration timeout);
  // The "return" value of the command sent as `id` (`command` names it in errors). Answers to
  // commands sent before it and not received are skipped.
  boost::asio::awaitable<nlohmann::json> receive(std::uint64_t id, const std::string& command, Duration timeout);
  // The data of the first event `name` (received already or still to come) that `matches` accepts.
  boost::asio::awaitable<nlohmann::json> wait_event(const std::string& name,
                                                    std::function<bool(const nlohmann::json&)> matches, Duration timeout);
  // The monitor's process (SO_PEERCRED), when the kernel can tell.
  std::optional<pid_t> peer_pid();
  // Whether the greeting named QEMU `major`.`minor` or later (false when it named no version).
  bool qemu_at_least(int major, int minor) const { return qemu_version_ >= std::pair{major, minor}; }
  bool is_open() const { return open_; }
  void close();

 private:
  // The next message, a JSON object.
  boost::asio::awaitable<nlohmann::json> read_message(Duration timeout);
  // Keeps an event for wait_event(); false when `message` is not an event.
  bool keep_if_event(nlohmann::json& message);
  boost::asio::awaitable<void> write_line(const std::string& line, Duration timeout);
  void arm(Duration timeout);  // the deadline of the next read or write
  void disarm();

  boost::asio::local::stream_protocol::socket socket_;
  boost::asio::steady_timer deadline_;
  std::uint64_t generation_ = 0;  // a deadline handler for an earlier step must not touch this one
  bool timed_out_ = false;
  bool open_ = false;
  std::string input_;
  std::uint64_t next_id_ = 1;
  std::pair<int, int> qemu_version_{0, 0};  // major, minor, from the greeting
  std::deque<nlohmann::json> events_;  // (name, data) objects: {"event":…, "data":…}
};

}  // namespace vhp
